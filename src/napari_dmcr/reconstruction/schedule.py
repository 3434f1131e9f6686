"""The schedule of a run: its start, multigrid levels and optimizer runs, and the progress total."""

from __future__ import annotations

import math

from napari_dmcr.errors import InputError
from napari_dmcr.reconstruction.starts import GRAIN_MODELS, MODELS
from napari_dmcr.reconstruction.targets import make_target

STARTS = ("auto", *MODELS, "random")
# Default optimizer iterations per level: a fitted start already has the material's shapes and
# needs a short polish; a random start climbs the multigrid levels (fidelity3d.json).
MAX_ITER = {"fitted": 30, "random": 200}
# Default residual at which a run stops: a fitted start is polished only until its slices are within
# the spread of a real material's own slices (the sample's true slices differ from the target slice
# by 25-29 % in S3); polishing on pulls the structure toward that one slice (fidelity3d.json).
TARGET_RESIDUAL = {"fitted": 0.1, "random": 0.005}
SHARPEN = 8.0  # default steepness of the sharpening stage (see reconstruct)
# Default wall time (seconds, 0: none) after which the optimizer stops and keeps its best state:
# a fitted start is a polish, which must not cost more than the start it refines or annealing
# (a fine sandstone's polish ran 180 s, 1.4x Yeong-Torquato; issue 29); a random start has no
# structure without its iterations.
TIME_LIMIT_S = {"fitted": 60.0, "random": 0.0}


def default_multigrid_levels(shape):
    """Coarse-to-fine levels that keep the coarsest side at 16 voxels or more."""
    return max(1, math.floor(math.log2(min(shape) / 16)) + 1)


def resolved_start(start, target, shape, has_initial=False):
    """The start a run takes: ``"initial"`` (a given state), a model, ``"auto"`` or ``"random"``.

    ``"auto"`` (the best-fitting of :data:`~napari_dmcr.reconstruction.starts.AUTO_MODELS`; for
    3+ phases :func:`~napari_dmcr.reconstruction.pluri_gaussian.pluri_gaussian_start`) stays
    ``"auto"`` for target images and becomes ``"random"`` for a descriptor file (the models are
    fitted to the images).
    """
    if start not in STARTS:
        raise InputError(f"unknown start {start!r}; choose from {', '.join(STARTS)}")
    if has_initial:
        return "initial"
    images = target.characterization is None
    if start in MODELS and not (images and len(target.labels) == 2):
        raise InputError(
            f"start={start!r} needs two-phase target images (not a descriptor file); use start='auto' or 'random'"
        )
    if start in GRAIN_MODELS and len(shape) != 3:
        raise InputError(f"start={start!r} is a 3D model; use 'gaussian' for a 2D output")
    return start if start != "auto" or images else "random"


def start_kind(start):
    """``"random"`` for a random start or a given state, else ``"fitted"``: the key of the
    defaults :data:`MAX_ITER` and :data:`TARGET_RESIDUAL`."""
    return "random" if start in ("random", "initial") else "fitted"


def schedule(start, shape, max_iter=None, levels=None, target_residual=None):
    """``(levels, max_iter, target_residual)`` of a run from ``start``: the given values or their
    defaults.

    A fitted start runs on one level, :data:`MAX_ITER` iterations, until
    :data:`TARGET_RESIDUAL`; a random one (or a given state) on :func:`default_multigrid_levels`,
    200 iterations per level, to a residual of 0.005.
    """
    key = start_kind(start)
    if levels is None:
        levels = 1 if key == "fitted" else default_multigrid_levels(shape)
    return (
        int(levels),
        int(MAX_ITER[key] if max_iter is None else max_iter),
        float(TARGET_RESIDUAL[key] if target_residual is None else target_residual),
    )


def time_limit(start, time_limit_s=None):
    """The optimizer's time limit in seconds of a run from ``start`` (0: none): the given value
    or :data:`TIME_LIMIT_S`."""
    return float(TIME_LIMIT_S[start_kind(start)] if time_limit_s is None else time_limit_s)


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


def planned_total(target, shape, max_iter=None, multigrid_levels=None, start="auto"):
    """The progress ``total`` that :func:`reconstruct` reports for ``target`` and ``shape``.

    Optimizer iterations over all :func:`stages`, the other options at their defaults
    (sharpening, no restarts). Only the target is checked, not the settings, so that a
    front end can show the total before the run, whose own checks then report a bad setting.

    Parameters
    ----------
    target : array_like or dict
        The target as :func:`reconstruct` takes it.
    shape : tuple of int
        Output shape.
    max_iter, multigrid_levels : int, optional
        As given to :func:`reconstruct`; their defaults when None.
    start : str
        As given to :func:`reconstruct`.

    Returns
    -------
    int
    """
    target = make_target(target, len(shape))
    levels, max_iter, _ = schedule(resolved_start(start, target, shape), shape, max_iter, multigrid_levels)
    return planned_iterations(levels, len(target.labels), max_iter)
