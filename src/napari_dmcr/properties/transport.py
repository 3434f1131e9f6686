"""Steady diffusion through one phase: effective diffusivity and tortuosity factor per axis.

The phase's voxels conduct (diffusivity 1), the others do not. Along an axis, the concentration
is held at 1 on the inlet face and 0 on the outlet face of the volume (half a voxel outside the
first and last layers); the four other faces are closed. The finite-volume equations (7-point,
face conductance 1 between two phase voxels, 2 to a held face) are solved by conjugate gradients
preconditioned by a multigrid V-cycle (:mod:`.multigrid`) in torch, on the voxels of the
clusters that touch both held faces (the rest carries no flux). From the flux ``J`` through the
volume of length ``L`` and section ``A``,

    D_eff / D = J L / A,    tau = epsilon D / D_eff,

with ``epsilon`` the phase's volume fraction (the definitions of TauFactor: Cooper et al.,
SoftwareX 5 (2016) 203-210). Straight channels give tau = 1 and D_eff / D = epsilon (exactly, to the
solve's precision).

Examples
--------
>>> import numpy as np
>>> channels = np.zeros((8, 6, 6), np.uint8)
>>> channels[:, ::2, :] = 1  # sheets of the phase along z and x
>>> result = diffusion(channels, 1, axis=0)
>>> round(result["diffusivity"], 6), round(result["tortuosity"], 6)
(0.5, 1.0)
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage as ndi

from napari_dmcr.errors import InputError
from napari_dmcr.evaluation.common import check_phase_mask
from napari_dmcr.properties.krylov import conjugate_gradients
from napari_dmcr.properties.multigrid import Level, VCycle

TOLERANCE = 1e-5  # relative residual of the linear solve: D_eff within 1e-4 of a converged one
# Tolerances from this one up are solved in single precision (the same iterations and answers,
# twice as fast at 128^3); tighter ones in double.
SINGLE_PRECISION_FROM = 1e-6
CHECK_EVERY = 1  # iterations between cancel checks and convergence tests (a V-cycle costs far more)


def conducting_voxels(mask, axis):
    """Voxels of ``mask`` in face-connected clusters that touch both ends of ``axis``."""
    clusters, _ = ndi.label(mask)
    ends = np.moveaxis(clusters, axis, 0)
    both = np.intersect1d(np.unique(ends[0]), np.unique(ends[-1]))
    return np.isin(clusters, both[both > 0])


def diffusion(volume, phase, axis=0, *, device="cpu", tolerance=TOLERANCE, max_iter=None, cancel=None):
    """Effective diffusivity and tortuosity factor of ``phase`` along one axis.

    Parameters
    ----------
    volume : array_like of int, shape (d, h, w)
        Labeled volume (a 2D image works too).
    phase : int
        The conducting label.
    axis : int
        Axis of the applied concentration difference.
    device : str
        Torch device of the solve.
    tolerance : float
        Relative residual at which the conjugate gradients stop; solved in single precision
        from :data:`SINGLE_PRECISION_FROM` up, in double below.
    max_iter : int, optional
        Iteration cap; 20 times the number of voxels along the longest side by default.
    cancel : CancelToken, optional
        Checked every :data:`CHECK_EVERY` iterations.

    Returns
    -------
    dict
        ``diffusivity`` (D_eff / D, 0 when the phase does not percolate), ``tortuosity`` (None
        then), ``fraction``, ``percolates``, ``iterations``, ``residual`` (relative),
        ``converged`` and ``flux_mismatch`` (inlet against outlet flux, relative).
    """
    mask = check_phase_mask(volume, phase)
    if not -mask.ndim <= int(axis) < mask.ndim:
        raise InputError(f"axis must be one of 0..{mask.ndim - 1} for a {mask.ndim}D volume, got {axis}")
    axis = int(axis) % mask.ndim
    fraction = float(mask.mean())
    active = conducting_voxels(mask, axis)
    if not active.any():
        return {
            "diffusivity": 0.0,
            "tortuosity": None,
            "fraction": fraction,
            "percolates": False,
            "iterations": 0,
            "residual": 0.0,
            "converged": True,
            "flux_mismatch": 0.0,
        }
    active = np.moveaxis(active, axis, 0)
    length, section = active.shape[0], active[0].size
    dtype = torch.float32 if tolerance >= SINGLE_PRECISION_FROM else torch.float64
    on = torch.as_tensor(np.ascontiguousarray(active), dtype=dtype, device=device)
    inlet, outlet = torch.zeros_like(on), torch.zeros_like(on)
    inlet[0], outlet[-1] = 2.0 * on[0], 2.0 * on[-1]  # conductance 2 to the held faces
    operator = Level.from_active(on, inlet + outlet)
    ap = torch.empty_like(on)  # reused every iteration
    c, iterations, _ = conjugate_gradients(
        lambda p: operator.apply(p, ap),
        VCycle(operator),
        _dot,
        inlet,  # right-hand side: 2 x (held value 1) on the inlet voxels
        tolerance,
        max_iter or 20 * max(active.shape),
        cancel,
        CHECK_EVERY,
    )
    residual = float(torch.linalg.vector_norm(inlet - operator.apply(c, ap))) / float(torch.linalg.vector_norm(inlet))
    into = float((inlet * (1.0 - c)).sum())
    out = float((outlet * c).sum())
    flux = 0.5 * (into + out)
    diffusivity = flux * length / section
    return {
        "diffusivity": diffusivity,
        "tortuosity": fraction / diffusivity if diffusivity > 0 else None,
        "fraction": fraction,
        "percolates": True,
        "iterations": iterations,
        "residual": residual,
        "converged": residual <= tolerance,
        "flux_mismatch": abs(into - out) / max(flux, 1e-300),
    }


def _dot(a, b):
    return float(torch.dot(a.view(-1), b.view(-1)))
