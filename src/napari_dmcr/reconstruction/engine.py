"""Differentiable reconstruction: 2D to 2D and 2D to 3D, as a generator of progress steps.

The field (one phase in [0, 1], or softmax probabilities of every phase when the target has 3+
labels) is optimized so that its slices along every direction match the target descriptors.
Two-phase targets start from a structural model fitted to the target (the level cut of a
Gaussian random field or overlapping spheres, see :mod:`napari_dmcr.reconstruction.starts`) on
one level; a random start instead runs
coarse-to-fine multigrid: level m solves at ``shape / 2**m`` against targets pooled by
``2**m``; each finer level starts from the (bi/tri)linear upsampling of the previous solution.
For two phases a last stage at full size sharpens the field (see :func:`reconstruct`,
``sharpen``), and the result is rounded to labels with exactly the target's phase fractions.

:func:`reconstruct` is a generator: it yields :class:`napari_dmcr.progress.ProgressStep` at most
every ``preview_interval_s`` seconds (and once at the end) and returns a
:class:`ReconstructionResult`. The optimizer runs in a helper thread; closing the generator or
setting the cancel token stops it within one iteration and keeps the best state so far.
"""

from __future__ import annotations

import functools
import math
import time
import warnings

import numpy as np
import torch

from napari_dmcr.errors import DeviceMemoryError
from napari_dmcr.progress import Cancelled, CancelToken, RunSteps, Throttle, drain
from napari_dmcr.reconstruction.allocator import reuse_freed_memory
from napari_dmcr.reconstruction.cost import (
    check_memory,
    default_chunk_size,
    estimate_bytes_per_slice,
    estimate_settings,
)
from napari_dmcr.reconstruction.finish import finished_result, labels_score
from napari_dmcr.reconstruction.loss import level_loss, shape_at_level
from napari_dmcr.reconstruction.optimizers import StopOptimization, run_adam, run_lbfgsb, run_lbfgsb_torch
from napari_dmcr.reconstruction.phases import Phases
from napari_dmcr.reconstruction.relay import relay
from napari_dmcr.reconstruction.result import progress_step
from napari_dmcr.reconstruction.schedule import planned_iterations, stages
from napari_dmcr.reconstruction.settings import check_settings
from napari_dmcr.reconstruction.target_start import target_start


def reconstruct(target, shape, *, cancel=None, **options):
    """Reconstruct a 2D image or 3D volume whose slices match the target's descriptors.

    Parameters
    ----------
    target : array_like, dict or path
        A labeled 2D image (isotropic target), ``{"x": ..., "y": ..., "z": ...}`` three
        orthogonal slices (see :mod:`napari_dmcr.reconstruction.targets` for orientations), or a
        descriptor file (``.npz`` from ``dmcr characterize``): its S3 range and levels replace the
        preset's, descriptors it lacks are dropped, and the run has one multigrid level.
    shape : tuple of int
        Output shape: 2 sizes (2D to 2D) or 3 sizes (z, y, x) (2D to 3D).
    descriptors : str or sequence of DescriptorSpec
        A preset name ("paper": S3 + Gram + TV + volume fraction; "cpu": without Gram; "auto",
        the default: "paper" on a GPU and "cpu" on a CPU, as on the command line) or specs.
    phase : int, optional
        Label whose field is optimized for a two-phase target (default: the minority phase).
        Targets with 3+ labels optimize every phase (softmax parameterization).
    direction_weights : sequence of 3 float
        Weights of the slices normal to z, y and x (3D only).
    optimizer : {"lbfgsb-torch", "lbfgsb", "adam"}
        L-BFGS-B with exact [0, 1] bounds in torch on the field's device (:mod:`lbfgsb_torch`,
        the default), SciPy's L-BFGS-B on the host, or Adam with clamping.
    max_iter : int, optional
        Optimizer iterations per multigrid level (function evaluations may be more; see
        :mod:`optimizers`). Default: 30 from a fitted start, 200 from a random one.
    multigrid_levels : int, optional
        Coarse-to-fine levels (1 = none). Default: 1 from a fitted start, else as many as keep
        the coarsest side >= 16.
    target_residual : float, optional
        Stop a level once the residual (weighted RMS relative descriptor error) is below this.
        Default: 0.1 from a fitted start (a polish, see
        :data:`~napari_dmcr.reconstruction.schedule.TARGET_RESIDUAL`), 0.005 from a random one.
    restarts : int
        Extra runs from other random starts (seeds ``seed + k``); the lowest loss is kept.
    seed : int
        Seed of the random initial field; the same seed gives the same result on a device.
    device : {"auto", "cpu", "cuda"}
    chunk_size : int, optional
        Slices per forward/backward chunk; default from ``memory_budget_gb``.
    memory_budget_gb : float
        Memory one chunk may use when ``chunk_size`` is not given.
    learning_rate : float
        Adam step size.
    target_periodic : bool
        Treat the target images as periodic (reconstructions are always periodic).
    preview_interval_s : float
        Minimum wall time between yielded steps.
    initial : array_like, optional
        Start state of shape ``shape`` instead of the seeded random field: an integer array of
        the target's labels (e.g. an earlier result to refine), or, for a two-phase target, a
        float array in [0, 1], the field of the phase of interest. Coarse multigrid levels start from its average
        pooling. Not combined with ``restarts``.
    sharpen : float
        Steepness beta of the sharpening stage (two phases; 0 turns it off). After the finest
        level, the optimizer goes on for ``max_iter`` more iterations with the field
        ``p(f) = (tanh(beta (f - 1/2)) + tanh(beta / 2)) / (2 tanh(beta / 2))`` of the filtered
        variable f, a smooth map of [0, 1] onto itself that pushes values toward 0 and 1, so that
        the final rounding changes little: without it the relaxed field stays grey in places and
        rounding roughens the interfaces. The iterations run in two rounds, the second with
        steepness 2 beta (continuation, as in topology optimization).
    filter_sigma : float
        The field is the variable filtered by a periodic Gaussian of this standard deviation
        (voxels of each multigrid level; 0 turns it off), then projected in the sharpening
        stage (see :mod:`napari_dmcr.reconstruction.field_maps`).
    match : {"volume", "slices"}
        Match each direction's mean slice descriptor to the target (the volume's statistics), or
        every slice's (see :mod:`napari_dmcr.reconstruction.loss`).
    isotropic_s2 : float
        Weight of the 3D term that holds the volume's S2 along every 3D vector to the target's
        radial S2 (one target image, 3D only; 0 turns it off; see
        :mod:`napari_dmcr.reconstruction.isotropy`).
    start : {"auto", "gaussian", "spheres", "deposited", "packed", "random"}
        The start field: a structural model fitted to the target (seeded) — the level cut of a
        Gaussian random field, overlapping spheres of either label (3D), grains deposited under
        gravity and cemented (3D, a sandstone), or a consolidated packing of spheres for grains
        that touch (3D; never chosen by "auto") — or noise around the phase fraction. "auto":
        of the first three, the one whose slices look most like
        the target (see :mod:`napari_dmcr.reconstruction.starts`; the choice is recorded in
        ``parameters["start_model"]``) for two-phase target images, else random. ``initial``,
        when given, is the start instead.
    time_limit_s : float, optional
        Wall time in seconds after which the optimizer stops and keeps its best state (0: none).
        Default: 60 from a fitted start (a polish), none from a random one
        (:data:`~napari_dmcr.reconstruction.schedule.TIME_LIMIT_S`); a run that reaches it says
        so in its notes and ``parameters["stopped_at_time_limit"]``, and depends on the machine.
    cancel : CancelToken, optional

    Returns
    -------
    RunSteps
        Yields :class:`~napari_dmcr.progress.ProgressStep` and returns (as the value of its
        ``StopIteration``) a :class:`ReconstructionResult`; :func:`run_reconstruction` drains it.
        Its ``estimate`` is the cost model's memory and time, known before the run starts.

    Raises
    ------
    InputError
        At the call, for unusable targets or settings.
    """
    # The options and their defaults live in check_settings (one home); bad ones fail here.
    settings = check_settings(target, shape, **options)
    labels = settings.target.labels
    if len(labels) > 2 and settings.start == "random":
        warnings.warn(
            f"the target has {len(labels)} phases (labels {', '.join(map(str, labels))}): each is optimized, from "
            "a random start, which takes far longer than two phases; if the material has two, segment it to two "
            "labels first",
            stacklevel=2,
        )
    # Slices that cannot be one material: said before any compute, and the run goes on.
    for line in settings.target.warnings:
        warnings.warn(line, stacklevel=2)
    cancel = cancel or CancelToken()
    slice_shape = settings.shape if len(settings.shape) == 2 else tuple(sorted(settings.shape)[1:])
    chunk_size = settings.chunk_size or default_chunk_size(settings.specs, slice_shape, settings.memory_budget_gb)
    check_memory(
        settings.shape,
        settings.specs,
        device=settings.device,
        chunk_size=chunk_size,
        target_pixels=settings.target.pixels,
    )
    estimate = estimate_settings(settings, chunk_size=chunk_size)
    if settings.device == "cpu":
        reuse_freed_memory()
    return RunSteps(relay(lambda emit: _deterministic(_run, settings, chunk_size, cancel, emit), cancel), estimate)


def _deterministic(run, settings, *arguments):
    """Run with cuDNN's deterministic convolutions, so that a seed repeats a run on a GPU."""
    if not settings.device.startswith("cuda"):
        return run(settings, *arguments)
    previous = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        return run(settings, *arguments)
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = previous


def _detached(fields):
    with torch.no_grad():
        return [f.detach().clone() for f in fields]


class _Record:
    """What a run keeps of itself: history, notes, time in the loss, and its progress reports."""

    def __init__(self, settings, emit, total):
        self.start = time.perf_counter()
        self.history, self.notes = [], []
        self.loss_seconds = self.optimize_seconds = 0.0  # in the loss; in the optimizer runs (loss included)
        self.done, self.total = 0, total
        self.throttle = Throttle(settings.preview_interval_s)
        self.emit = emit
        self.shape = settings.shape
        self.start_cut = None  # the first fitted start: the set of the phase (bool); 3+ phases: labels
        self.last_cut = None  # the current restart's fitted start
        self.deadline = self.start + (settings.time_limit_s or math.inf)  # 0: no time limit
        self.timed_out = False

    def out_of_time(self):
        """True, and remembered, once the run has taken its time limit."""
        self.timed_out = self.timed_out or time.perf_counter() >= self.deadline
        return self.timed_out

    def report(self, iteration, stage, loss, errors, preview, force=False):
        """Emit a progress step when the throttle allows; ``preview()`` gives its volume."""
        if force or self.throttle.ready():
            self.emit(progress_step(iteration, self.total, stage, loss, errors, self.start, preview(), self.shape))


def _start_variable(settings, phases, level_shape, restart, parameters, record, cancel):
    """The variable of a restart's first level: the given state, a fitted model or noise."""
    record.last_cut = None
    if settings.initial is not None:
        return phases.start(settings.initial, level_shape, settings.device)
    if settings.start not in ("random", "initial"):
        start, choice, notes = target_start(
            settings.target,
            settings.phase,
            settings.shape,
            settings.seed + restart,
            start=settings.start,
            periodic=settings.target_periodic,
            cancel=cancel,
        )
        if "start_model" not in parameters:  # the first start's
            parameters["start_model"] = choice
            record.notes += notes
        if record.start_cut is None:
            record.start_cut = start
        record.last_cut = start
        if phases.multiphase:
            return phases.start(start, level_shape, settings.device)
        # Soft, not 0/1: L-BFGS-B crawls from variables on their bounds.
        return phases.start(np.where(start, 0.9, 0.1), level_shape, settings.device)
    generator = torch.Generator().manual_seed(settings.seed + restart)
    return phases.initial(level_shape, generator, settings.device)


def _optimize(settings, phases, record, variable, loss_fn, fields, where, stage):
    """One optimizer run (a level or a sharpening round) of :func:`stages`; returns its loss."""
    restart, run, level, sharpening, iterations = where
    base = record.done

    def on_iteration(iteration, evaluations, loss, errors):
        residual = math.sqrt(max(loss, 0.0) / max(loss_fn.total_weight, 1e-12))
        record.history.append({
            "restart": restart, "run": run, "level": level, "stage": "sharpen" if sharpening else "optimize",
            "iteration": iteration, "evaluations": evaluations, "loss": loss, "residual": residual,
            "elapsed": time.perf_counter() - record.start, "errors": dict(errors),
        })  # fmt: skip
        record.report(base + iteration, stage, loss, errors, lambda: phases.preview(fields(variable)))
        if residual <= settings.target_residual or record.out_of_time():
            raise StopOptimization()

    def evaluate(v):
        began = time.perf_counter()
        result = loss_fn.evaluate(fields, v)  # ends in float(): the device has finished
        record.loss_seconds += time.perf_counter() - began
        return result

    bounded = not phases.multiphase
    run_began = time.perf_counter()
    try:
        if settings.optimizer == "lbfgsb":
            loss, _ = run_lbfgsb(variable, evaluate, on_iteration, iterations, bounded)
        elif settings.optimizer == "lbfgsb-torch":
            loss, _ = run_lbfgsb_torch(variable, evaluate, on_iteration, iterations, bounded)
        else:
            loss, _ = run_adam(variable, evaluate, on_iteration, iterations, bounded, settings.learning_rate)
    finally:
        record.optimize_seconds += time.perf_counter() - run_began
    record.done = base + iterations
    return loss


def _run(settings, chunk_size, cancel, emit):
    shape, device = settings.shape, settings.device
    phases = Phases(settings.target, settings.phase, settings.filter_sigma)
    parameters = settings.parameters(int(chunk_size))
    plan = (settings.levels, len(phases.labels), settings.max_iter, settings.sharpen)
    runs = stages(*plan)
    record = _Record(settings, emit, planned_iterations(*plan) * (settings.restarts + 1))
    record.notes.extend([*settings.target.notes, *(f"warning: {line}" for line in settings.target.warnings)])
    best, cancelled, variable, fields = (np.inf, None), False, None, None
    try:
        # The target's full-size descriptors first (into its cache): a cancel while a large slice
        # is characterized leaves no state to score, and the final score reuses them.
        level_loss(settings, phases, 0, chunk_size, cancel)
        for restart in range(settings.restarts + 1):
            variable = None
            for run, (level, sharpening, iterations) in enumerate(runs):
                level_shape = shape_at_level(shape, level)
                # Sharpening rounds steepen the projection: beta, 2 beta, ...
                fields = functools.partial(
                    phases.fields, steepness=settings.sharpen * (run - settings.levels + 1) if sharpening else 0.0
                )
                if not sharpening:
                    variable = (
                        _start_variable(settings, phases, level_shape, restart, parameters, record, cancel)
                        if variable is None
                        else phases.next_level_start(variable, level_shape)
                    )
                    loss_fn = level_loss(settings, phases, level, chunk_size, cancel)
                    record.notes.extend(n for n in loss_fn.notes if n not in record.notes)
                    met = _start_meets_target(settings, phases, record, loss_fn) if run == 0 else None
                    if met is not None:
                        loss, variable = met
                        record.done += planned_iterations(*plan)
                        break
                    variable = variable.detach().clone().requires_grad_(True)
                where = (
                    f"sharpening, round {run - settings.levels + 1} of {len(runs) - settings.levels}"
                    if sharpening
                    else f"level {settings.levels - level}/{settings.levels}"
                )
                stage = f"restart {restart + 1}/{settings.restarts + 1}, {where} ({'x'.join(map(str, level_shape))})"
                loss = _optimize(
                    settings,
                    phases,
                    record,
                    variable,
                    loss_fn,
                    fields,
                    (restart, run, level, sharpening, iterations),
                    stage,
                )
                cancel.raise_if_cancelled()
                if record.timed_out:
                    break
            if loss < best[0]:
                best = (loss, _detached(fields(variable)))
            if record.timed_out:
                record.notes.append(
                    f"the optimizer stopped at its time limit ({settings.time_limit_s:g} s) after "
                    f"{len(record.history)} of {record.total} iterations: the core depends on this machine's speed "
                    "(time_limit_s=0 repeats it from the seed alone)"
                )
                break
    except Cancelled:
        cancelled = True
        if best[1] is None and variable is not None:
            best = (np.inf, _detached(fields(variable)))
    except torch.cuda.OutOfMemoryError:
        slice_shape = shape if len(shape) == 2 else tuple(sorted(shape)[1:])
        total = torch.cuda.get_device_properties(device).total_memory
        fits = int(0.5 * total // estimate_bytes_per_slice(settings.specs, slice_shape))
        raise DeviceMemoryError(
            f"the GPU ran out of memory with chunks of {chunk_size} slices; "
            f"try chunk_size={max(1, min(chunk_size // 2, fits))} or device='cpu'"
        ) from None
    finally:
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    if best[1] is None:
        raise Cancelled()
    return finished_result(settings, phases, record, best[1], cancelled, chunk_size, parameters)


def _start_meets_target(settings, phases, record, loss):
    """``(loss, variable)`` of this restart's fitted start, as labels, when they already meet the
    target residual under the run's ``loss`` (full size: one level): the polish would stop at
    once, and its few steps from the start's soft 0.1/0.9 field change no label
    (fidelity3d.json); None otherwise."""
    if record.last_cut is None or settings.levels != 1:
        return None
    # Two phases: the start is the set of the phase; three or more: labels.
    labels = record.last_cut if phases.multiphase else np.where(record.last_cut, *phases.order)
    weighted, residual, _ = labels_score(loss, settings, phases, labels)
    if residual > settings.target_residual:
        return None
    record.notes.append(
        f"the fitted start met the target residual ({residual:.3g} <= {settings.target_residual:g}): not polished"
    )
    start = labels if phases.multiphase else record.last_cut.astype(np.float64)
    return weighted, phases.start(start, settings.shape, settings.device)


def run_reconstruction(target, shape, **kwargs):
    """Run :func:`reconstruct` to the end without previews; return its result."""
    kwargs.setdefault("preview_interval_s", 1e9)
    return drain(reconstruct(target, shape, **kwargs))
