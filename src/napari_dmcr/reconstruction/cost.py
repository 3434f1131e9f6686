"""The cost model of a run: its memory and time, known before it starts.

Both engines check the memory of a run against what the device has free before they allocate
(:func:`check_memory`), and the widget shows :func:`estimate_run` next to Run and clamps its
default size with :func:`largest_fitting_side`. The figures are orders of magnitude, calibrated
on a 2-core CPU (differentiable: the per-slice model :func:`estimate_bytes_per_slice`;
Yeong-Torquato: the measured swap rate, which falls as the S2 range grows).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from napari_dmcr.errors import InputError
from napari_dmcr.reconstruction.schedule import schedule

# Seconds per byte of the per-slice cost model, per iteration (line searches included); CPU: a
# 64^3 core of the cpu preset, 30 + 30 iterations, takes about 60 s on one core (fidelity3d.json).
_SECONDS_PER_COST_BYTE = {"cpu": 7e-10, "cuda": 3e-10}
# A run the widget proposes by default should end within a few minutes; one estimated beyond
# CONFIRM_S asks to be confirmed before it starts.
DEFAULT_RUN_S = 180.0
CONFIRM_S = 15 * 60.0
# Yeong-Torquato trial swaps per second times the S2 range (numba kernel, one core).
_SWAP_LAG_RATE = 1.7e7
# L-BFGS-B keeps 20 correction pairs and about a dozen work vectors per voxel: in float32 on the
# run's device (lbfgsb-torch, the default; SciPy's lbfgsb holds as much in float64 on the host).
_OPTIMIZER_BYTES_PER_VOXEL = 4 * (2 * 20 + 12)
# Field, gradient, best state and preview copy in float32 on the device.
_FIELD_BYTES_PER_VOXEL = 4 * 4
# Current and best lattice, site lists (int64) and the float32 preview.
_ANNEALING_BYTES_PER_VOXEL = 2 + 8 + 4
# Reading and characterizing the target images (labels, indicator and pooled fields, the FFTs of
# the start's S2 fit), per pixel; the strip-wise S3 adds copies of up to STRIP_PIXELS positions
# (benchmarks/results/reconstruct.json: 1024^2 to 5000^2 slices).
_TARGET_BYTES_PER_PIXEL = 64
_STRIP_BYTES_PER_VECTOR = 4 * 3


def estimate_bytes_per_slice(specs, slice_shape):
    """Rough peak memory of one slice's forward and backward pass, in bytes."""
    pixels = slice_shape[0] * slice_shape[1]
    floats = 0.0
    for spec in specs:
        level_pixels = sum(pixels / 4**level for level in range(spec.levels))
        if spec.name == "s3":
            vectors = spec.limit_to**2 + (spec.limit_to - 1) ** 2
            floats += 6 * vectors * level_pixels
        elif spec.name == "gram":
            floats += 1300 * level_pixels
        else:
            floats += 12 * level_pixels
    return 4 * floats


def default_chunk_size(specs, slice_shape, memory_budget_gb=1.0):
    """Slices per chunk so that one chunk stays within ``memory_budget_gb``."""
    return max(1, int(memory_budget_gb * 2**30 // max(estimate_bytes_per_slice(specs, slice_shape), 1)))


def run_chunk_size(specs, shape, chunk_size=None, memory_budget_gb=1.0):
    """Slices per chunk of a run of ``shape``: ``chunk_size`` when given, else the default for its
    largest slices (of its two larger sides)."""
    return chunk_size or default_chunk_size(specs, _slice_shape(shape), memory_budget_gb)


def _slice_shape(shape):
    return tuple(shape) if len(shape) == 2 else tuple(sorted(shape)[1:])


@dataclass
class RunEstimate:
    """What a run will roughly need.

    Attributes
    ----------
    memory_bytes : float
        Peak memory on the device (host memory included when the device is the CPU).
    seconds : float
        Wall time of the whole run.
    available_bytes : float
        Memory the device has free now.
    """

    memory_bytes: float
    seconds: float
    available_bytes: float

    @property
    def fits(self) -> bool:
        return self.memory_bytes <= 0.8 * self.available_bytes

    def summary(self) -> str:
        """One line for the widget, e.g. ``"≈ 120 MB of 20 GB free, ≈ 2 min"``."""
        return (
            f"≈ {_bytes_text(self.memory_bytes)} of {_bytes_text(self.available_bytes)} free, "
            f"≈ {_seconds_text(self.seconds)}"
        )


def available_bytes(device: str) -> float:
    """Free memory of ``"cpu"`` (RAM) or a CUDA device."""
    if device.startswith("cuda"):
        import torch

        return float(torch.cuda.mem_get_info(torch.device(device))[0])
    import psutil

    return float(psutil.virtual_memory().available)


def target_bytes(specs, target_pixels):
    """Peak memory of reading and characterizing target images of ``target_pixels`` pixels."""
    from napari_dmcr.descriptors.descriptor_set import STRIP_PIXELS

    vectors = max((s.limit_to**2 + (s.limit_to - 1) ** 2 for s in specs if s.name == "s3"), default=0)
    strips = _STRIP_BYTES_PER_VECTOR * vectors * min(target_pixels, STRIP_PIXELS)
    return _TARGET_BYTES_PER_PIXEL * target_pixels + strips


def estimate_run(
    shape,
    specs,
    *,
    method,
    device,
    iterations,
    levels=None,
    chunk_size=None,
    max_lag=None,
    target_pixels=0,
    matched_per_swap=1,
    time_limit_s=0.0,
):
    """Estimate memory and time of a run.

    Parameters
    ----------
    shape : tuple of 3 int
        Output shape.
    specs : sequence of DescriptorSpec
        The descriptors (differentiable method).
    method : {"differentiable", "yeong-torquato"}
    device : str
        A resolved device, ``"cpu"`` or ``"cuda[:n]"``.
    iterations : int
        Iterations per multigrid level (differentiable) or trial swaps per voxel (Yeong-Torquato).
    levels : int, optional
        Multigrid levels; when None, the engine's default for a two-phase slice (one level from
        the fitted start).
    chunk_size : int, optional
        Slices per chunk; the engine's default when None.
    max_lag : int, optional
        S2 range of Yeong-Torquato; half the smallest side when None.
    target_pixels : int
        Pixels of the distinct target images, characterized before the run (in host memory).
    matched_per_swap : int
        Labels whose S2 a Yeong-Torquato swap updates: 1 for two phases, 2 for three or more.
    time_limit_s : float
        The optimizer's time limit (differentiable; 0: none): the time estimate stops there.
    """
    voxels = math.prod(shape)
    if method == "yeong-torquato":
        lag = max_lag or min(shape) // 2
        return RunEstimate(
            memory_bytes=_ANNEALING_BYTES_PER_VOXEL * voxels + _TARGET_BYTES_PER_PIXEL * target_pixels,
            seconds=iterations * voxels * lag * matched_per_swap / _SWAP_LAG_RATE,
            available_bytes=available_bytes("cpu"),
        )
    per_slice = estimate_bytes_per_slice(specs, _slice_shape(shape))
    chunk = run_chunk_size(specs, shape, chunk_size)
    field_bytes = _FIELD_BYTES_PER_VOXEL * voxels
    device_bytes = field_bytes + _OPTIMIZER_BYTES_PER_VOXEL * voxels + min(chunk, max(shape)) * per_slice
    levels = levels or schedule("auto", shape)[0]
    # Each coarser level has 8x fewer voxels: the cost of all levels is the finest one's times 8/7;
    # the sharpening stage (two phases) runs as many iterations again at full size.
    level_factor = sum(8.0**-level for level in range(levels)) + 1.0
    cost_per_iteration = 3 * max(shape) * per_slice * level_factor
    rate = _SECONDS_PER_COST_BYTE["cuda" if device.startswith("cuda") else "cpu"]
    return RunEstimate(
        memory_bytes=device_bytes + target_bytes(specs, target_pixels),
        seconds=min(iterations * cost_per_iteration * rate, time_limit_s or math.inf),
        available_bytes=available_bytes(device),
    )


def estimate_settings(settings, method="dmcr", chunk_size=None):
    """The :class:`RunEstimate` of a run from its checked settings (of the differentiable engine,
    ``method="dmcr"``, or of Yeong-Torquato, ``"yt"``), the target images counted: what both
    engines state before they start and an ensemble's banner adds up."""
    from napari_dmcr.labels import distinct_images

    shape = tuple(settings.shape)
    if method == "yt":
        pixels = sum(image.size for image in distinct_images(settings.images))
        swaps_per_voxel = settings.max_swaps / math.prod(shape)
        return estimate_run(
            shape,
            (),
            method="yeong-torquato",
            device="cpu",
            iterations=swaps_per_voxel,
            max_lag=settings.max_lag,
            target_pixels=pixels,
            matched_per_swap=min(2, len(settings.matched)),
        )
    return estimate_run(
        shape,
        settings.specs,
        method="differentiable",
        device=settings.device,
        iterations=settings.max_iter,
        levels=settings.levels,
        chunk_size=chunk_size or settings.chunk_size,
        target_pixels=settings.target.pixels,
        time_limit_s=settings.time_limit_s,
    )


def check_memory(
    shape, specs=(), *, method="differentiable", device="cpu", chunk_size=None, max_lag=None, target_pixels=0
):
    """Refuse a run whose estimated peak memory exceeds what the device has free.

    Raises :class:`InputError` with the estimate and the largest cube side that fits (or, when
    the target images alone do not fit, how much smaller they must be); computes nothing the
    size of the volume or the images, so a huge shape is refused at once. Returns the
    :class:`RunEstimate` of a run that fits (its time for one iteration).
    """
    estimate = estimate_run(
        shape,
        specs,
        method=method,
        device=device,
        iterations=1,
        chunk_size=chunk_size,
        max_lag=max_lag,
        target_pixels=target_pixels,
    )
    if estimate.fits:
        return estimate
    images = estimate_run((4, 4, 4), specs, method=method, device="cpu", iterations=1, target_pixels=target_pixels)
    if not images.fits:
        raise InputError(
            f"the target images ({target_pixels / 1e6:.0f} Mpixels) need about {_bytes_text(images.memory_bytes)} "
            f"to characterize and the machine has {_bytes_text(images.available_bytes)} free; crop or downsample them"
        )
    side = largest_fitting_side(
        max(shape), specs, method=method, device=device, iterations=1, target_pixels=target_pixels
    )
    raise InputError(
        f"a {'x'.join(map(str, shape))} run needs about {_bytes_text(estimate.memory_bytes)} and {device} has "
        f"{_bytes_text(estimate.available_bytes)} free; try a size of at most {side} per side"
        + ("" if method != "differentiable" or device.startswith("cuda") else " or a GPU")
    )


def largest_fitting_side(side, specs, *, method, device, iterations, step=16, max_seconds=None, target_pixels=0):
    """The largest cube side up to ``side`` (then multiples of ``step``) whose run fits the
    device's free memory and, with ``max_seconds``, is estimated to end within it.

    Memory and time grow with the side, so the multiples of ``step`` are bisected: a side of
    10^9 takes some 30 estimates, not 10^8.
    """

    def fits(candidate):
        estimate = estimate_run(
            (candidate,) * 3, specs, method=method, device=device, iterations=iterations, target_pixels=target_pixels
        )
        return estimate.fits and (max_seconds is None or estimate.seconds <= max_seconds)

    if side <= step:
        return max(side, 4)
    if fits(side):
        return side
    low, high = 1, (side - 1) // step  # in multiples of step; one step is the floor, fitting or not
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if fits(middle * step) else (low, middle - 1)
    return low * step


def _bytes_text(size):
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000:
            return f"{size:.0f} {unit}"
        size /= 1000
    return f"{size:.0f} TB"


def _seconds_text(seconds):
    if seconds < 90:
        return f"{max(seconds, 1):.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
