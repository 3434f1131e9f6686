"""A multigrid preconditioner for the voxel finite-volume operators of :mod:`.transport`.

Each coarser level joins the voxels of 2 x 2 x 2 blocks (aggregation: a coarse unknown is the
common value of the active voxels of its block). Its operator is the Galerkin product
``P^T A P``, which for such blocks is again a 7-point finite-volume operator: the conductance
between two blocks is the sum of the fine conductances across their common face, a block's held
faces sum likewise, and a block without an active voxel is inactive (identity). A symmetric
V-cycle (damped Jacobi before and after the coarse correction, the same number of sweeps; an
exact Cholesky solve on the coarsest level) is a fixed symmetric positive definite operator, so
it preconditions conjugate gradients. With it the iterations barely grow with the volume's side
(Jacobi's grow with it), see ``benchmarks/results/properties.json``.

Examples
--------
>>> import torch
>>> on = torch.ones((8, 8, 8), dtype=torch.float64)
>>> held = torch.zeros_like(on)
>>> held[0] = held[-1] = 2.0
>>> level = Level.from_active(on, held)
>>> cycle = VCycle(level)
>>> r = torch.zeros_like(on); r[0] = 2.0
>>> bool((cycle(r) >= 0).all())
True
"""

from __future__ import annotations

import torch

SWEEPS = 1  # Jacobi sweeps before and after each coarse correction
DAMPING = 0.85  # Jacobi's weight: below 2 / (largest eigenvalue of D^-1 A), 2 here
COARSEST = 1000  # unknowns at or below which a level is solved exactly (Cholesky)


class Level:
    """One level's operator: per-axis face conductances, the diagonal (held faces included,
    1 off the active set), and the active voxels."""

    def __init__(self, on, conductances, diagonal):
        self.on, self.conductances, self.diagonal = on, conductances, diagonal
        self.inverse_diagonal = 1.0 / diagonal

    @classmethod
    def from_active(cls, on, held):
        """The fine operator: conductance 1 between two active voxels, ``held`` (the conductance
        to held faces) on the diagonal."""
        conductances = [on.narrow(a, 1, on.shape[a] - 1) * on.narrow(a, 0, on.shape[a] - 1) for a in range(on.ndim)]
        return cls(on, conductances, _diagonal(on, conductances, held * on))

    def apply(self, c, out):
        """``out = A c`` by fused multiply-adds on shifted views."""
        torch.mul(self.diagonal, c, out=out)
        for axis, g in enumerate(self.conductances):
            n = c.shape[axis]
            out.narrow(axis, 0, n - 1).addcmul_(g, c.narrow(axis, 1, n - 1), value=-1.0)
            out.narrow(axis, 1, n - 1).addcmul_(g, c.narrow(axis, 0, n - 1), value=-1.0)
        return out

    def coarsened(self):
        """The next coarser :class:`Level` (blocks of 2 along every axis)."""
        on = _even(self.on)
        conductances = [_even(g, pad_end_of=axis) for axis, g in enumerate(self.conductances)]
        # Faces inside a block (even edge indices) and between blocks (odd ones).
        inside = sum(_block_sum(_every_other(g, axis, 0), axis) for axis, g in enumerate(conductances))
        between = [_block_sum(_every_other(g, axis, 1), axis) for axis, g in enumerate(conductances)]
        coarse_on = (_block_sum(on) > 0).to(on.dtype)
        # A block's diagonal: its voxels' (every face and held face) minus twice its inner faces.
        leaving = _block_sum(_even(self.diagonal * self.on)) - 2.0 * inside
        return Level(coarse_on, between, torch.where(coarse_on > 0, leaving, torch.ones_like(coarse_on)))

    def restrict(self, fine_residual, fine):
        """``P^T r``: the sums of a finer level's residual over its active voxels per block."""
        return _block_sum(_even(fine_residual * fine.on))

    def prolong(self, coarse, fine):
        """``P e``: each coarse value on the active voxels of its block of ``fine``."""
        shape = coarse.shape
        spread = coarse.reshape([n for side in shape for n in (side, 1)])
        spread = spread.expand([n for side in shape for n in (side, 2)]).reshape([2 * side for side in shape])
        for axis, side in enumerate(fine.on.shape):
            spread = spread.narrow(axis, 0, side)
        return spread * fine.on


class VCycle:
    """``M^-1 r`` of a symmetric multigrid V-cycle over the levels below ``level``."""

    def __init__(self, level):
        self.levels = [level]
        while level.on.numel() > COARSEST and min(level.on.shape) > 2:
            level = level.coarsened()
            self.levels.append(level)
        self.cholesky = torch.linalg.cholesky(_dense(level))

    def __call__(self, r):
        return self._cycle(0, r)

    def _cycle(self, k, r):
        level = self.levels[k]
        if k == len(self.levels) - 1:
            solved = torch.cholesky_solve(r.reshape(-1, 1), self.cholesky)
            return solved.reshape(r.shape)
        ar = torch.empty_like(r)
        e = DAMPING * level.inverse_diagonal * r
        for _ in range(SWEEPS - 1):
            e.addcmul_(level.inverse_diagonal, r - level.apply(e, ar), value=DAMPING)
        coarse = self.levels[k + 1]
        correction = self._cycle(k + 1, coarse.restrict(r - level.apply(e, ar), level))
        e.add_(coarse.prolong(correction, level))
        for _ in range(SWEEPS):
            e.addcmul_(level.inverse_diagonal, r - level.apply(e, ar), value=DAMPING)
        return e


def _diagonal(on, conductances, held):
    diagonal = held + (1.0 - on)
    for axis, g in enumerate(conductances):
        n = on.shape[axis]
        diagonal.narrow(axis, 0, n - 1).add_(g)
        diagonal.narrow(axis, 1, n - 1).add_(g)
    return diagonal


def _even(tensor, pad_end_of=None):
    """``tensor`` padded with zeros to even sides (an edge array, one shorter along
    ``pad_end_of``, to one less than even)."""
    pads = []
    for axis in reversed(range(tensor.ndim)):
        n = tensor.shape[axis] + (1 if axis == pad_end_of else 0)
        pads += [0, n % 2]
    return torch.nn.functional.pad(tensor, pads) if any(pads) else tensor


def _every_other(tensor, axis, first):
    """Every other index of ``axis`` from ``first``."""
    index = [slice(None)] * tensor.ndim
    index[axis] = slice(first, None, 2)
    return tensor[tuple(index)]


def _block_sum(tensor, edge_axis=None):
    """Sums over 2 x 2 x 2 blocks; along ``edge_axis`` the tensor is already one per block."""
    shape = []
    for axis, n in enumerate(tensor.shape):
        shape += [n, 1] if axis == edge_axis else [n // 2, 2]
    return tensor.reshape(shape).sum(dim=tuple(range(1, 2 * tensor.ndim, 2)))


def _dense(level):
    """The level's operator as a dense matrix (a small level: one column per unknown)."""
    size = level.on.numel()
    columns = torch.eye(size, dtype=level.on.dtype, device=level.on.device).reshape(size, *level.on.shape)
    out = torch.empty_like(level.on)
    return torch.stack([level.apply(column, out).reshape(-1).clone() for column in columns], dim=1)
