"""The settings of a differentiable reconstruction: defaults, checks and the sidecar's record.

:func:`check_settings` turns the arguments of :func:`~napari_dmcr.reconstruction.reconstruct`
into one frozen :class:`ReconstructionSettings`, checked before any work (every number finite and
in range, shapes, labels, phase, seed, device); the defaults live here and nowhere else.
:meth:`ReconstructionSettings.parameters` is the record written beside every result, and
:func:`options_from_parameters` turns that record back into the arguments of the same run.

Examples
--------
>>> import numpy as np
>>> image = (np.add.outer(np.arange(32), np.arange(32)) % 8 < 3).astype(np.uint8)
>>> settings = check_settings(image, (16, 16, 16), device="cpu")
>>> settings.phase, settings.start, settings.max_iter, settings.levels
(1, 'auto', 30, 1)
"""

from __future__ import annotations

import math
import platform
from dataclasses import dataclass

import numpy as np
import torch

from napari_dmcr import __version__
from napari_dmcr.checks import finite_number, whole_number
from napari_dmcr.descriptors.descriptor_set import DescriptorSpec, preset
from napari_dmcr.errors import InputError
from napari_dmcr.labels import minority_label
from napari_dmcr.reconstruction.schedule import SHARPEN, resolved_start, schedule, time_limit
from napari_dmcr.reconstruction.targets import Target, make_target

OPTIMIZERS = ("lbfgsb-torch", "lbfgsb", "adam")
MATCHES = ("volume", "slices")
FILTER_SIGMA = 0.0  # default density filter of the field, in voxels (see reconstruct)
ISOTROPIC_S2 = 0.0  # default weight of the isotropic 3D S2 term (fitted starts are isotropic)
MAX_SEED = 2**63 - 1  # torch generators take 64-bit seeds; restarts add to the seed


@dataclass(frozen=True, eq=False)
class ReconstructionSettings:
    """Every setting of one reconstruction, checked (see :func:`reconstruct` for their meaning)."""

    target: Target
    shape: tuple
    specs: tuple
    phase: int | None
    direction_weights: tuple
    optimizer: str
    max_iter: int
    levels: int
    start: str
    target_residual: float
    restarts: int
    seed: int
    device: str
    chunk_size: int | None
    memory_budget_gb: float
    learning_rate: float
    target_periodic: bool
    preview_interval_s: float
    initial: np.ndarray | None
    sharpen: float
    filter_sigma: float
    match: str
    isotropic_s2: float
    time_limit_s: float

    def parameters(self, chunk_size):
        """The record of the run for its sidecar (JSON types; ``chunk_size`` as used)."""
        target = self.target
        return {
            "shape": list(self.shape),
            "descriptors": [s.to_dict() for s in self.specs],
            "phase": self.phase,
            "labels": target.labels,
            "fraction_intervals": target.fraction_intervals(),
            "isotropic_target": target.isotropic,
            "target_shapes": [list(target.characterization["settings"]["shape"])]
            if target.characterization
            else [list(image.shape) for image in target.images],
            "direction_weights": list(self.direction_weights),
            "optimizer": self.optimizer,
            "max_iter": self.max_iter,
            "multigrid_levels": self.levels,
            "target_residual": self.target_residual,
            "restarts": self.restarts,
            "seed": self.seed,
            "start": self.start,
            "sharpen": self.sharpen,
            "filter_sigma": self.filter_sigma,
            "match": self.match,
            "isotropic_s2": self.isotropic_s2,
            "time_limit_s": self.time_limit_s,
            "device": self.device,
            "chunk_size": chunk_size,
            "learning_rate": self.learning_rate,
            "target_periodic": self.target_periodic,
            "versions": {
                "napari_dmcr": __version__,
                "torch": torch.__version__,
                "numpy": np.__version__,
                "python": platform.python_version(),
            },
        }


def options_from_parameters(parameters):
    """The :func:`reconstruct` arguments (all but the target) of a run, from its recorded
    ``parameters``: the same settings, seed and device give the same result.

    A start recorded as ``"initial"`` needs that state again: pass ``initial=`` yourself.
    """
    options = {
        "descriptors": [DescriptorSpec(**spec) for spec in parameters["descriptors"]],
        "multigrid_levels": parameters["multigrid_levels"],
        "direction_weights": tuple(parameters["direction_weights"])
        if len(parameters["direction_weights"]) == 3
        else (1.0, 1.0, 1.0),
    }
    copied = (
        "phase",
        "optimizer",
        "max_iter",
        "target_residual",
        "restarts",
        "seed",
        "start",
        "sharpen",
        "filter_sigma",
        "match",
        "isotropic_s2",
        "device",
        "chunk_size",
        "learning_rate",
        "target_periodic",
    )
    options.update({name: parameters[name] for name in copied})
    options["time_limit_s"] = parameters.get("time_limit_s", 0.0)  # runs recorded before the limit had none
    if options["start"] == "initial":
        options["start"] = "auto"
    return options


def resolve_device(device="auto"):
    """``"auto"`` becomes ``"cuda"`` when a GPU is usable, else ``"cpu"``."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise InputError("device 'cuda' was asked for but no CUDA GPU is available; use 'cpu' or 'auto'")
    if device not in ("cpu",) and not str(device).startswith("cuda"):
        raise InputError(f"unknown device {device!r}; use 'auto', 'cpu' or 'cuda'")
    return str(device)


def check_settings(
    target,
    shape,
    *,
    descriptors="auto",
    phase=None,
    direction_weights=(1.0, 1.0, 1.0),
    optimizer="lbfgsb-torch",
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
    time_limit_s=None,
):
    """Check the arguments of :func:`reconstruct` and fill in the defaults.

    Returns
    -------
    ReconstructionSettings

    Raises
    ------
    InputError
        With a one-line message that says what to change.
    """
    shape = _shape(shape)
    target = make_target(target, len(shape))
    device = resolve_device(device)
    specs = preset(descriptors, device) if isinstance(descriptors, str) else tuple(descriptors)
    if target.characterization is not None:
        specs = target.specs(specs)
    if not specs or not all(isinstance(s, DescriptorSpec) for s in specs):
        raise InputError("descriptors must be a preset name or a sequence of DescriptorSpec")
    if not any(s.weight > 0 for s in specs):
        raise InputError("every descriptor weight is 0: give at least one a positive weight")
    _choice("optimizer", optimizer, OPTIMIZERS)
    _choice("match", match, MATCHES)
    if max_iter is not None:
        max_iter = whole_number("max_iter", max_iter, 1)
    direction_weights = _direction_weights(direction_weights, len(shape))
    phase = _phase(phase, target, shape)
    restarts = whole_number("restarts", restarts, 0)
    seed = whole_number("seed", seed, 0, MAX_SEED - restarts)
    if initial is not None:
        initial = _check_initial(initial, shape, target, phase)
        if restarts:
            raise InputError("restarts start from other random fields; give either initial or restarts")
    start = resolved_start(start, target, shape, initial is not None)
    levels = None if multigrid_levels is None else whole_number("multigrid_levels", multigrid_levels, 1)
    if target.characterization is not None:
        # Coarse levels match the target pooled to their resolution: a file holds no such values.
        if levels not in (None, 1):
            raise InputError(
                "a descriptor-file target reconstructs on one multigrid level; give the image itself for coarse-to-fine"
            )
        levels = 1
    if target_residual is not None:
        target_residual = finite_number("target_residual", target_residual, 0.0)
    levels, max_iter, target_residual = schedule(start, shape, max_iter, levels, target_residual)
    if min(shape) // 2 ** (levels - 1) < 4:
        raise InputError(f"{levels} multigrid levels leave less than 4 voxels per side of {shape}")
    if chunk_size is not None:
        chunk_size = whole_number("chunk_size", chunk_size, 1)
    return ReconstructionSettings(
        target=target,
        shape=shape,
        specs=specs,
        phase=phase,
        direction_weights=direction_weights,
        optimizer=optimizer,
        max_iter=max_iter,
        levels=levels,
        start=start,
        target_residual=target_residual,
        restarts=restarts,
        seed=seed,
        device=device,
        chunk_size=chunk_size,
        memory_budget_gb=finite_number("memory_budget_gb", memory_budget_gb, 0.0, exclusive=True),
        learning_rate=finite_number("learning_rate", learning_rate, 0.0, exclusive=True),
        target_periodic=bool(target_periodic),
        preview_interval_s=finite_number("preview_interval_s", preview_interval_s, 0.0),
        initial=initial,
        sharpen=finite_number("sharpen", sharpen, 0.0),
        filter_sigma=finite_number("filter_sigma", filter_sigma, 0.0, min(shape) / 4),
        match=match,
        isotropic_s2=finite_number("isotropic_s2", isotropic_s2, 0.0),
        time_limit_s=time_limit(
            start, None if time_limit_s is None else finite_number("time_limit_s", time_limit_s, 0.0)
        ),
    )


def _shape(shape):
    try:
        sizes = tuple(int(s) for s in shape)
    except (TypeError, ValueError, OverflowError):
        sizes = ()
    if len(sizes) not in (2, 3) or min(sizes) < 4 or any(s != v for s, v in zip(sizes, shape)):
        raise InputError(f"shape must be 2 or 3 whole sizes of at least 4, got {shape}")
    return sizes


def _choice(name, value, choices):
    if value not in choices:
        raise InputError(f"unknown {name} {value!r}; choose from {', '.join(choices)}")


def _direction_weights(weights, ndim):
    if ndim == 2:
        return (1.0,)
    weights = tuple(weights)
    if len(weights) != 3:
        raise InputError("direction_weights must be three numbers >= 0 (z, y, x)")
    weights = tuple(finite_number("a direction weight", w, 0.0) for w in weights)
    if not any(weights):
        raise InputError("direction_weights are all 0: give at least one direction (z, y, x) a positive weight")
    return weights


def _phase(phase, target, shape):
    if phase is not None and phase not in target.labels:
        raise InputError(f"phase {phase} is not a label of the target ({target.labels})")
    fractions = target.fractions()
    if len(target.labels) == 2 and phase is None:
        phase = (
            minority_label(target.images)
            if target.characterization is None
            else target.labels[int(np.argmin(fractions))]
        )
    voxels = math.prod(shape)
    for label, fraction in zip(target.labels, fractions):
        if round(fraction * voxels) == 0:
            raise InputError(
                f"label {label} covers {fraction:.2g} of the target: it rounds to no voxel "
                f"of {'x'.join(map(str, shape))}; merge it into another label or enlarge the output"
            )
    return phase


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
