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

import math
import platform
import threading
import time
import traceback
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from napari_dmcr import __version__
from napari_dmcr.descriptors.descriptor_set import DescriptorSpec, preset
from napari_dmcr.errors import DeviceMemoryError, InputError
from napari_dmcr.postprocessing.assignment import assign_with_counts, counts_from_fractions
from napari_dmcr.progress import CancelToken, Cancelled, ProgressStep, Throttle
from napari_dmcr.reconstruction.field_maps import periodic_gaussian, projection
from napari_dmcr.reconstruction.isotropy import IsotropicS2
from napari_dmcr.reconstruction.loss import SliceLoss, pooled_target_fields
from napari_dmcr.reconstruction.optimizers import StopOptimization, run_adam, run_lbfgsb
from napari_dmcr.reconstruction.starts import MODELS, fitted_start
from napari_dmcr.reconstruction.targets import make_target

OPTIMIZERS = ("lbfgsb", "adam")
MATCHES = ("volume", "slices")
STARTS = ("auto", *MODELS, "random")
# Default optimizer iterations per level: a fitted start already has the material's shapes and
# needs a short polish; a random start climbs the multigrid levels (fidelity3d.json).
MAX_ITER = {"fitted": 30, "random": 200}
# Default residual at which a run stops: a fitted start is polished only until its slices are within
# the spread of a real material's own slices (the sample's true slices differ from the target slice
# by 25-29 % in S3); polishing on pulls the structure toward that one slice (fidelity3d.json).
TARGET_RESIDUAL = {"fitted": 0.1, "random": 0.005}
FILTER_SIGMA = 0.0  # default density filter of the field, in voxels (see reconstruct)
ISOTROPIC_S2 = 0.0  # default weight of the isotropic 3D S2 term (fitted starts are isotropic)
ISOTROPIC_RANGE = 16  # its largest vector length, in voxels of each level
SHARPEN = 8.0  # default steepness of the sharpening stage (see reconstruct)


@dataclass
class ReconstructionResult:
    """Everything a reconstruction produced.

    Attributes
    ----------
    labels : numpy.ndarray
        Final labeled image/volume (the target's label values, exact target fractions).
    field : numpy.ndarray of float32
        The continuous field of the phase of interest before rounding.
    history : list of dict
        One entry per optimizer iteration: restart, run (the index of the optimizer run in
        :func:`stages`), level, stage ("optimize" or "sharpen"), iteration, evaluations
        (counted per run), loss, residual, elapsed and the error of each descriptor.
    final_errors : list of dict
        Normalized error of each descriptor per direction, measured on ``labels``.
    residual : float
        Weighted RMS relative descriptor error of ``labels`` (see descriptor_set).
    fractions : dict
        Target and result phase fractions per label.
    parameters : dict
        Every setting of the run (seed, device, descriptor specs, ...) and software versions.
    timings : dict
        Wall times in seconds: ``optimize_s`` (all optimizer runs), ``loss_s`` (of which in the
        loss and its gradient; the rest is the optimizer's own work and the progress reports),
        ``total_s``.
    cancelled : bool
        True when the run was stopped before it finished.
    """

    labels: np.ndarray
    field: np.ndarray
    history: list
    final_errors: list
    residual: float
    fractions: dict
    parameters: dict
    timings: dict
    cancelled: bool = False
    notes: list = field(default_factory=list)


def resolve_device(device="auto"):
    """``"auto"`` becomes ``"cuda"`` when a GPU is usable, else ``"cpu"``."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise InputError("device 'cuda' was asked for but no CUDA GPU is available; use 'cpu' or 'auto'")
    if device not in ("cpu",) and not str(device).startswith("cuda"):
        raise InputError(f"unknown device {device!r}; use 'auto', 'cpu' or 'cuda'")
    return str(device)


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


def default_multigrid_levels(shape):
    """Coarse-to-fine levels that keep the coarsest side at 16 voxels or more."""
    return max(1, math.floor(math.log2(min(shape) / 16)) + 1)


def resolved_start(start, target, shape, has_initial=False):
    """The start a run takes: ``"initial"`` (a given state), a model, ``"auto"`` or ``"random"``.

    ``"auto"`` (the best-fitting of :data:`~napari_dmcr.reconstruction.starts.MODELS`) stays
    ``"auto"`` for two-phase target images and becomes ``"random"`` otherwise (3+ phases, a
    descriptor file: the models are fitted to one phase's S2 in an image).
    """
    if start not in STARTS:
        raise InputError(f"unknown start {start!r}; choose from {', '.join(STARTS)}")
    if has_initial:
        return "initial"
    possible = len(target.labels) == 2 and target.characterization is None
    if start in MODELS and not possible:
        raise InputError(f"start={start!r} needs two-phase target images (not a descriptor file); "
                         "use start='random'")
    if start == "spheres" and len(shape) != 3:
        raise InputError("start='spheres' is a 3D model; use 'gaussian' for a 2D output")
    return start if start != "auto" or possible else "random"


def schedule(start, shape, max_iter=None, levels=None, target_residual=None):
    """``(levels, max_iter, target_residual)`` of a run from ``start``: the given values or their
    defaults.

    A fitted start runs on one level, :data:`MAX_ITER` iterations, until
    :data:`TARGET_RESIDUAL`; a random one (or a given state) on :func:`default_multigrid_levels`,
    200 iterations per level, to a residual of 0.005.
    """
    key = "random" if start in ("random", "initial") else "fitted"
    if levels is None:
        levels = 1 if key == "fitted" else default_multigrid_levels(shape)
    return (int(levels), int(MAX_ITER[key] if max_iter is None else max_iter),
            float(TARGET_RESIDUAL[key] if target_residual is None else target_residual))


def stages(levels, n_labels, max_iter, sharpen=SHARPEN):
    """The optimizer runs of one reconstruction, in order, as ``(level, sharpening, iterations)``.

    The multigrid levels from coarse to fine, ``max_iter`` iterations each, then, for two labels
    with ``sharpen`` > 0, the sharpening stage at full size: ``max_iter`` iterations in two
    rounds, the second with a steeper projection (see :func:`reconstruct`).
    """
    runs = [(level, False, max_iter) for level in reversed(range(levels))]
    if sharpen and n_labels == 2:
        runs += [(0, True, rounds) for rounds in (max_iter // 2, max_iter - max_iter // 2) if rounds]
    return runs


def planned_iterations(levels, n_labels, max_iter, sharpen=SHARPEN):
    """Optimizer iterations of one start over all its :func:`stages` (the progress total)."""
    return sum(iterations for _, _, iterations in stages(levels, n_labels, max_iter, sharpen))


def default_chunk_size(specs, slice_shape, memory_budget_gb=1.0):
    """Slices per chunk so that one chunk stays within ``memory_budget_gb``."""
    return max(1, int(memory_budget_gb * 2**30 // max(estimate_bytes_per_slice(specs, slice_shape), 1)))


def reconstruct(
    target,
    shape,
    *,
    descriptors="auto",
    phase=None,
    direction_weights=(1.0, 1.0, 1.0),
    optimizer="lbfgsb",
    max_iter=None,
    multigrid_levels=None,
    target_residual=None,
    restarts=0,
    seed=0,
    device="auto",
    chunk_size=None,
    memory_budget_gb=1.0,
    learning_rate=0.02,
    target_periodic=False,
    preview_interval_s=0.5,
    initial=None,
    sharpen=SHARPEN,
    filter_sigma=FILTER_SIGMA,
    match="volume",
    isotropic_s2=ISOTROPIC_S2,
    start="auto",
    cancel=None,
):
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
    optimizer : {"lbfgsb", "adam"}
        L-BFGS-B with exact [0, 1] bounds, or Adam with clamping.
    max_iter : int, optional
        Optimizer iterations per multigrid level (function evaluations may be more; see
        :mod:`optimizers`). Default: 30 from a fitted start, 200 from a random one.
    multigrid_levels : int, optional
        Coarse-to-fine levels (1 = none). Default: 1 from a fitted start, else as many as keep
        the coarsest side >= 16.
    target_residual : float, optional
        Stop a level once the residual (weighted RMS relative descriptor error) is below this.
        Default: 0.1 from a fitted start (a polish, see :data:`TARGET_RESIDUAL`), 0.005 from a
        random one.
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
    start : {"auto", "gaussian", "spheres", "random"}
        The start field: a structural model fitted to the target's S2 (seeded) — the level cut
        of a Gaussian random field, or overlapping spheres of either label (3D) — or noise
        around the phase fraction. "auto": of the models, the one whose slices look most like
        the target (see :mod:`napari_dmcr.reconstruction.starts`; the choice is recorded in
        ``parameters["start_model"]``) for two-phase target images, else random. ``initial``,
        when given, is the start instead.
    cancel : CancelToken, optional

    Returns
    -------
    generator
        Yields :class:`~napari_dmcr.progress.ProgressStep` and returns (as the value of its
        ``StopIteration``) a :class:`ReconstructionResult`; :func:`run_reconstruction` drains it.

    Raises
    ------
    InputError
        At the call, for unusable targets or settings.
    """
    settings = _validate(locals())  # bad settings fail here, before any work
    return _relay(lambda emit: _deterministic(_run, settings, emit), settings["cancel"])


def _deterministic(run, settings, emit):
    """Run with cuDNN's deterministic convolutions, so that a seed repeats a run on a GPU."""
    if not settings["device"].startswith("cuda"):
        return run(settings, emit)
    previous = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        return run(settings, emit)
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = previous


def _relay(work, cancel):
    """Run ``work(emit)`` in a thread, yield what it emits (coalesced to the newest step) and
    return its result; an exception in the thread is raised here."""
    condition = threading.Condition()
    state = {"step": None, "finished": False}
    outcome = {}

    def emit(step):
        with condition:
            state["step"] = step
            condition.notify()

    def run():
        try:
            outcome["result"] = work(emit)
        except BaseException as error:  # handed over to the consuming thread
            outcome["error"] = error
            _release_frames(error)
            if torch.cuda.is_initialized():
                torch.cuda.empty_cache()  # what the cleared frames held goes back to the driver
        finally:
            with condition:
                state["finished"] = True
                condition.notify()

    thread = threading.Thread(target=run, name="dmcr-reconstruct", daemon=True)
    thread.start()
    try:
        finished = False
        while not finished:
            with condition:
                while state["step"] is None and not state["finished"]:
                    condition.wait()
                finished = state["finished"]
                step, state["step"] = state["step"], None
            if step is not None:
                yield step
    finally:
        if thread.is_alive():
            cancel.cancel()
        thread.join()
    if "error" in outcome:
        raise outcome.pop("error")  # popped: a reference kept here would tie the error to this frame
    return outcome["result"]


def _release_frames(error):
    """Drop the local variables of the frames an error and the errors behind it passed through.

    Their tensors (a GPU run's whole working set, after an out-of-memory error) are then freed at
    once, not when the garbage collector finds the traceback's reference cycles, so that a retry
    with a smaller chunk size has the memory. The traceback's text is kept.
    """
    pending, seen = [error], set()
    while pending:
        error = pending.pop()
        if error is None or id(error) in seen:  # `raise e from e` makes a cycle
            continue
        seen.add(id(error))
        traceback.clear_frames(error.__traceback__)
        pending += [error.__cause__, error.__context__]


def _validate(arguments):
    shape = tuple(int(s) for s in arguments["shape"])
    if len(shape) not in (2, 3) or min(shape) < 4:
        raise InputError(f"shape must be 2 or 3 sizes of at least 4, got {arguments['shape']}")
    target = make_target(arguments["target"], len(shape))
    device = resolve_device(arguments["device"])
    specs = arguments["descriptors"]
    specs = preset(specs, device) if isinstance(specs, str) else tuple(specs)
    if target.characterization is not None:
        specs = target.specs(specs)
    if not specs or not all(isinstance(s, DescriptorSpec) for s in specs):
        raise InputError("descriptors must be a preset name or a sequence of DescriptorSpec")
    if arguments["optimizer"] not in OPTIMIZERS:
        raise InputError(f"unknown optimizer {arguments['optimizer']!r}; choose from {', '.join(OPTIMIZERS)}")
    if arguments["max_iter"] is not None and int(arguments["max_iter"]) < 1:
        raise InputError("max_iter must be at least 1")
    direction_weights = tuple(float(w) for w in arguments["direction_weights"])
    if len(shape) == 3 and (len(direction_weights) != 3 or min(direction_weights) < 0):
        raise InputError("direction_weights must be three non-negative numbers (z, y, x)")
    if len(shape) == 2:
        direction_weights = (1.0,)
    phase = arguments["phase"]
    if len(target.labels) == 2:
        if phase is None:
            fractions = target.fractions()
            phase = target.labels[int(np.argmin(fractions))]
        elif phase not in target.labels:
            raise InputError(f"phase {phase} is not a label of the target ({target.labels})")
    elif phase is not None and phase not in target.labels:
        raise InputError(f"phase {phase} is not a label of the target ({target.labels})")
    initial = arguments["initial"]
    if initial is not None:
        initial = _check_initial(initial, shape, target, phase)
        if int(arguments["restarts"]):
            raise InputError("restarts start from other random fields; give either initial or restarts")
    start = resolved_start(arguments["start"], target, shape, initial is not None)
    levels = arguments["multigrid_levels"]
    if target.characterization is not None:
        # Coarse levels match the target pooled to their resolution: a file holds no such values.
        if levels not in (None, 1):
            raise InputError("a descriptor-file target reconstructs on one multigrid level; "
                             "give the image itself for coarse-to-fine")
        levels = 1
    levels, max_iter, target_residual = schedule(start, shape, arguments["max_iter"], levels,
                                                 arguments["target_residual"])
    if levels < 1 or min(shape) // 2 ** (levels - 1) < 4:
        raise InputError(f"{levels} multigrid levels leave less than 4 voxels per side of {shape}")
    sharpen = float(arguments["sharpen"])
    if not 0 <= sharpen < math.inf:
        raise InputError(f"sharpen must be 0 (off) or a positive steepness, got {arguments['sharpen']}")
    filter_sigma = float(arguments["filter_sigma"])
    if not 0 <= filter_sigma <= min(shape) / 4:
        raise InputError(f"filter_sigma must be between 0 (off) and a quarter of the smallest side "
                         f"({min(shape) / 4:g} voxels), got {arguments['filter_sigma']}")
    isotropic_s2 = float(arguments["isotropic_s2"])
    if not 0 <= isotropic_s2 < math.inf:
        raise InputError(f"isotropic_s2 must be a weight >= 0, got {arguments['isotropic_s2']}")
    if arguments["match"] not in MATCHES:
        raise InputError(f"unknown match {arguments['match']!r}; choose from {', '.join(MATCHES)}")
    return {
        "target": target,
        "shape": shape,
        "specs": specs,
        "phase": phase,
        "direction_weights": direction_weights,
        "optimizer": arguments["optimizer"],
        "max_iter": max_iter,
        "levels": levels,
        "start": start,
        "target_residual": target_residual,
        "restarts": int(arguments["restarts"]),
        "seed": int(arguments["seed"]),
        "device": device,
        "chunk_size": arguments["chunk_size"],
        "memory_budget_gb": float(arguments["memory_budget_gb"]),
        "learning_rate": float(arguments["learning_rate"]),
        "target_periodic": bool(arguments["target_periodic"]),
        "preview_interval_s": float(arguments["preview_interval_s"]),
        "initial": initial,
        "sharpen": sharpen,
        "filter_sigma": filter_sigma,
        "match": arguments["match"],
        "isotropic_s2": isotropic_s2,
        "cancel": arguments["cancel"] or CancelToken(),
    }


def _check_initial(initial, shape, target, phase):
    """The start state: an integer array holds labels, a float array the field of ``phase``."""
    initial = np.asarray(initial)
    if initial.shape != shape:
        raise InputError(f"initial has shape {initial.shape}; it must have the output shape {shape}")
    if initial.dtype == bool or np.issubdtype(initial.dtype, np.integer):
        if set(np.unique(initial).tolist()) <= set(target.labels):
            return initial.astype(np.int64)
    elif len(target.labels) == 2 and np.isfinite(initial).all() and 0.0 <= initial.min() <= initial.max() <= 1.0:
        return initial.astype(np.float64)
    raise InputError(
        f"initial must hold the target's labels {target.labels}"
        + (f" or be a field in [0, 1] of phase {phase}" if len(target.labels) == 2 else "")
    )


def _parameters(settings, chunk_size):
    target = settings["target"]
    return {
        "shape": list(settings["shape"]),
        "descriptors": [s.to_dict() for s in settings["specs"]],
        "phase": settings["phase"],
        "labels": target.labels,
        "isotropic_target": target.isotropic,
        "target_shapes": [list(target.characterization["settings"]["shape"])] if target.characterization
        else [list(image.shape) for image in target.images],
        "direction_weights": list(settings["direction_weights"]),
        "optimizer": settings["optimizer"],
        "max_iter": settings["max_iter"],
        "multigrid_levels": settings["levels"],
        "target_residual": settings["target_residual"],
        "restarts": settings["restarts"],
        "seed": settings["seed"],
        "start": settings["start"],
        "sharpen": settings["sharpen"],
        "filter_sigma": settings["filter_sigma"],
        "match": settings["match"],
        "isotropic_s2": settings["isotropic_s2"],
        "device": settings["device"],
        "chunk_size": chunk_size,
        "learning_rate": settings["learning_rate"],
        "target_periodic": settings["target_periodic"],
        "versions": {
            "napari_dmcr": __version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
    }


class _Phases:
    """How the optimization variable maps to phase fields, for two or more labels."""

    def __init__(self, target, phase, filter_sigma=0.0):
        self.labels = target.labels
        self.filter_sigma = filter_sigma
        self.multiphase = len(self.labels) > 2
        fractions = target.fractions()
        if self.multiphase:
            self.matched = list(self.labels)
            self.fractions = fractions
        else:
            other = [label for label in self.labels if label != phase][0]
            self.matched = [phase]
            self.order = [phase, other]
            self.fractions = np.array([fractions[self.labels.index(phase)], fractions[self.labels.index(other)]])
        self.preview_index = self.labels.index(phase) if (self.multiphase and phase is not None) else 0

    def initial(self, shape, generator, device):
        noise = torch.randn((len(self.labels),) + tuple(shape) if self.multiphase else shape, generator=generator)
        if self.multiphase:
            log_fractions = torch.log(torch.as_tensor(self.fractions, dtype=torch.float32).clamp_min(1e-3))
            values = log_fractions.view(-1, *([1] * len(shape))) + 0.5 * noise
        else:
            values = _inside_bounds((self.fractions[0] + 0.15 * noise).clamp(0.0, 1.0))
        return values.to(device=device, dtype=torch.float32)

    def start(self, initial, shape, device):
        """The variable of a given start state (labels or field), average-pooled to ``shape``."""
        if np.issubdtype(initial.dtype, np.integer):
            fields = np.stack([initial == label for label in (self.labels if self.multiphase else self.matched)])
        else:
            fields = initial[None]
        fields = torch.as_tensor(fields, dtype=torch.float32)
        if tuple(fields.shape[1:]) != tuple(shape):
            fields = F.interpolate(fields[None], size=tuple(shape), mode="area")[0]
        if self.multiphase:
            # Logits whose softmax is the pooled one-hot, softened so that no phase starts at 0.
            return torch.log(0.9 * fields + 0.1 / len(self.labels)).to(device)
        return _inside_bounds(fields[0]).to(device)

    def fields(self, variable, steepness=0.0):
        """The phase fields of the variable: filtered, then (two phases) projected."""
        smooth = periodic_gaussian(variable, self.filter_sigma, variable.ndim - self.multiphase)
        if self.multiphase:
            return list(torch.softmax(smooth, dim=0))
        return [projection(smooth, steepness)]

    def preview(self, fields):
        return fields[self.preview_index]

    def next_level_start(self, variable, shape):
        """The start of a finer level: the upsampled solution, inside the bounds (two phases)."""
        if self.multiphase:
            return _upsampled(variable, shape)
        return _inside_bounds(_upsampled(variable[None], shape)[0].clamp(0.0, 1.0))

    def upsample_fields(self, fields, shape):
        """Linear upsampling of phase fields (a list of tensors) to ``shape``."""
        return list(_upsampled(torch.stack(fields), shape))

    def labels_from(self, fields):
        """Labels with the target fractions, ranked by the phase fields."""
        with torch.no_grad():
            fields = [f.detach().cpu().double().numpy() for f in fields]
        scores = np.stack(fields) if self.multiphase else np.stack([fields[0], 1.0 - fields[0]])
        counts = counts_from_fractions(self.fractions, scores[0].size)
        index = assign_with_counts(scores, counts)
        values = np.array(self.labels if self.multiphase else self.order)
        return values[index].astype(np.uint8 if values.max() < 256 else np.int32)

    def indicator_fields(self, labels, device):
        return [torch.as_tensor(labels == m, dtype=torch.float32, device=device) for m in self.matched]


def _inside_bounds(field, margin=0.05):
    """Map a field from [0, 1] onto [margin, 1 - margin].

    L-BFGS-B started with many variables on their bounds (a clipped random field, an upsampled
    coarse solution or a labeled start) was seen to crawl, lowering the loss by a few parts per thousand per
    iteration; started strictly inside the box, the same runs converge (sample at 48^3: residual
    0.07 instead of 0.20).
    """
    return margin + (1.0 - 2.0 * margin) * field


def _slice_loss(settings, phases, level, chunk_size, cancel=None):
    """The loss of one multigrid level (full size at level 0), with the isotropic 3D term
    where it applies: a 3D run from one target image."""
    shape = _level_shape(settings["shape"], level)
    target, device = settings["target"], settings["device"]
    images = pooled_target_fields(target, phases.matched, level, torch.float32, device)
    isotropic, note = None, None
    if settings["isotropic_s2"] and len(shape) == 3:
        if target.characterization is not None:
            note = "isotropic 3D S2 off: a descriptor file holds no radial S2"
        elif not target.isotropic:
            note = "isotropic 3D S2 off: three orthogonal slices describe an anisotropic material"
        else:
            isotropic = IsotropicS2(images[0], shape, ISOTROPIC_RANGE, settings["isotropic_s2"],
                                    settings["target_periodic"])
    loss = SliceLoss(settings["specs"], images, shape, settings["direction_weights"], chunk_size,
                     settings["target_periodic"], cancel, settings["match"], isotropic)
    loss.notes += [note] if note else []
    return loss


def _upsampled(channels, shape):
    """(Bi/tri)linear upsampling of a stack of channels ``(c, *grid)`` to ``(c, *shape)``."""
    mode = "bilinear" if len(shape) == 2 else "trilinear"
    return F.interpolate(channels[None], size=tuple(shape), mode=mode, align_corners=False)[0]


def _detached(fields):
    with torch.no_grad():
        return [f.detach().clone() for f in fields]


def _level_shape(shape, level):
    return tuple(max(1, s // 2**level) for s in shape)


def _run(settings, emit):
    start = time.perf_counter()
    shape, device, cancel = settings["shape"], settings["device"], settings["cancel"]
    phases = _Phases(settings["target"], settings["phase"], settings["filter_sigma"])
    slice_shape = shape if len(shape) == 2 else tuple(sorted(shape)[1:])
    chunk_size = settings["chunk_size"] or default_chunk_size(
        settings["specs"], slice_shape, settings["memory_budget_gb"]
    )
    parameters = _parameters(settings, int(chunk_size))
    throttle = Throttle(settings["preview_interval_s"])
    plan = (settings["levels"], len(phases.labels), settings["max_iter"], settings["sharpen"])
    runs = stages(*plan)
    total_iterations = planned_iterations(*plan) * (settings["restarts"] + 1)
    history, notes = [], []
    loss_seconds = 0.0
    best = (np.inf, None)
    cancelled = False
    done_iterations = 0
    try:
        for restart in range(settings["restarts"] + 1):
            generator = torch.Generator().manual_seed(settings["seed"] + restart)
            variable = None
            for run, (level, sharpening, iterations) in enumerate(runs):
                level_shape = _level_shape(shape, level)
                if not sharpening:
                    if variable is None and settings["initial"] is not None:
                        variable = phases.start(settings["initial"], level_shape, device)
                    elif variable is None and settings["start"] not in ("random", "initial"):
                        models = MODELS if settings["start"] == "auto" else (settings["start"],)
                        cut, choice = fitted_start(settings["target"].images, settings["phase"], shape,
                                                   settings["seed"] + restart, models=models,
                                                   periodic=settings["target_periodic"])
                        parameters.setdefault("start_model", choice)  # the first start's
                        # Soft, not 0/1: L-BFGS-B crawls from variables on their bounds.
                        variable = phases.start(np.where(cut, 0.9, 0.1), level_shape, device)
                    elif variable is None:
                        variable = phases.initial(level_shape, generator, device)
                    else:
                        variable = phases.next_level_start(variable, level_shape)
                    variable = variable.detach().clone().requires_grad_(True)
                    loss_fn = _slice_loss(settings, phases, level, chunk_size, cancel)
                    notes.extend(n for n in loss_fn.notes if n not in notes)
                # Sharpening rounds steepen the projection: beta, 2 beta, ...
                steepness = settings["sharpen"] * (run - settings["levels"] + 1) if sharpening else 0.0

                def fields(v, steepness=steepness):
                    return phases.fields(v, steepness)

                where = (
                    f"sharpening, round {run - settings['levels'] + 1} of {len(runs) - settings['levels']}"
                    if sharpening else f"level {settings['levels'] - level}/{settings['levels']}"
                )
                stage = f"restart {restart + 1}/{settings['restarts'] + 1}, {where} ({'x'.join(map(str, level_shape))})"
                base_iterations = done_iterations

                def on_iteration(iteration, evaluations, loss, errors, run=run, level=level, restart=restart,
                                 sharpening=sharpening):
                    residual = math.sqrt(max(loss, 0.0) / max(loss_fn.total_weight, 1e-12))
                    history.append(
                        {
                            "restart": restart,
                            "run": run,
                            "level": level,
                            "stage": "sharpen" if sharpening else "optimize",
                            "iteration": iteration,
                            "evaluations": evaluations,
                            "loss": loss,
                            "residual": residual,
                            "elapsed": time.perf_counter() - start,
                            "errors": dict(errors),
                        }
                    )
                    if throttle.ready():
                        emit(_step(base_iterations + iteration, total_iterations, stage, loss, errors,
                                   start, phases.preview(fields(variable)), shape))
                    if residual <= settings["target_residual"]:
                        raise StopOptimization()

                def evaluate(v):
                    nonlocal loss_seconds
                    began = time.perf_counter()
                    result = loss_fn.evaluate(fields, v)  # ends in float(): the device has finished
                    loss_seconds += time.perf_counter() - began
                    return result

                if settings["optimizer"] == "lbfgsb":
                    loss, _ = run_lbfgsb(variable, evaluate, on_iteration, iterations, not phases.multiphase)
                else:
                    loss, _ = run_adam(variable, evaluate, on_iteration, iterations,
                                       not phases.multiphase, settings["learning_rate"])
                done_iterations = base_iterations + iterations
                cancel.raise_if_cancelled()
            if loss < best[0]:
                best = (loss, _detached(fields(variable)))
    except Cancelled:
        cancelled = True
        if best[1] is None and variable is not None:
            best = (np.inf, _detached(fields(variable)))
    except torch.cuda.OutOfMemoryError:
        total = torch.cuda.get_device_properties(device).total_memory
        fits = int(0.5 * total // estimate_bytes_per_slice(settings["specs"], slice_shape))
        raise DeviceMemoryError(
            f"the GPU ran out of memory with chunks of {chunk_size} slices; "
            f"try chunk_size={max(1, min(chunk_size // 2, fits))} or device='cpu'"
        ) from None
    finally:
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    optimized = time.perf_counter() - start
    if best[1] is None:
        raise Cancelled()
    final_fields = best[1]
    if tuple(final_fields[0].shape) != shape:  # cancelled on a coarse level
        final_fields = phases.upsample_fields(final_fields, shape)
    labels = phases.labels_from(final_fields)
    final_loss = _slice_loss(settings, phases, 0, chunk_size)
    final_errors = final_loss.errors_per_direction(phases.indicator_fields(labels, device))
    weighted = sum(
        w * sum(spec.weight * errors[spec.name] for spec in specs) * len(targets)
        for w, errors, (specs, targets) in zip(settings["direction_weights"], final_errors, final_loss.directions)
    )
    if final_loss.isotropic is not None:
        weighted += final_loss.isotropic.weight * final_errors[0]["s2_3d"] * len(phases.matched)
    residual = math.sqrt(weighted / max(final_loss.total_weight, 1e-12))
    field = phases.preview(final_fields).cpu().numpy().astype(np.float32)
    # Mean over the directions (a small direction may have dropped a descriptor).
    names = dict.fromkeys(name for errors in final_errors for name in errors)
    mean_errors = {n: float(np.mean([e[n] for e in final_errors if n in e])) for n in names}
    emit(_step(total_iterations if not cancelled else done_iterations, total_iterations, "done",
               weighted, mean_errors, start, phases.preview(final_fields), shape))
    fractions = {
        str(label): {"target": float(f), "result": float((labels == label).mean())}
        for label, f in zip(phases.labels, settings["target"].fractions())
    }
    return ReconstructionResult(
        labels=labels,
        field=field,
        history=history,
        final_errors=final_errors,
        residual=residual,
        fractions=fractions,
        parameters=parameters,
        timings={"optimize_s": optimized, "loss_s": loss_seconds, "total_s": time.perf_counter() - start},
        cancelled=cancelled,
        notes=notes,
    )


def _step(iteration, total, stage, loss, errors, start, preview, shape):
    volume = preview.detach().cpu().numpy().astype(np.float32)
    if volume.shape != tuple(shape):
        # Coarse multigrid levels are shown at full size so that a live view keeps its shape.
        factors = [s // v for s, v in zip(shape, volume.shape)]
        for axis, factor in enumerate(factors):
            volume = np.repeat(volume, factor, axis=axis)
        pad = [(0, s - v) for s, v in zip(shape, volume.shape)]
        volume = np.pad(volume, pad, mode="edge")
    losses = {name: float(value) for name, value in errors.items()}
    losses["total"] = float(loss)
    return ProgressStep(
        iteration=int(iteration),
        total=int(total),
        stage=stage,
        losses=losses,
        elapsed=time.perf_counter() - start,
        volume=volume,
    )


def run_reconstruction(target, shape, **kwargs):
    """Run :func:`reconstruct` to the end without previews; return its result."""
    kwargs.setdefault("preview_interval_s", 1e9)
    generator = reconstruct(target, shape, **kwargs)
    while True:
        try:
            next(generator)
        except StopIteration as stop:
            return stop.value
