"""The multigrid preconditioner: Galerkin coarse operators and a symmetric V-cycle."""

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from napari_dmcr.properties.multigrid import Level, VCycle, _dense


def _active(shape, seed):
    noise = ndi.gaussian_filter(np.random.default_rng(seed).standard_normal(shape), 1.0, mode="wrap")
    on = torch.as_tensor(noise < 0.3, dtype=torch.float64)
    held = torch.zeros_like(on)
    held[0], held[-1] = 2.0 * on[0], 2.0 * on[-1]
    return on, held


def _aggregation(fine_shape, coarse_shape, on):
    """P: fine active voxel -> its 2 x 2 x 2 block, as a dense matrix."""
    fine = np.indices(fine_shape).reshape(3, -1)
    block = np.ravel_multi_index(tuple(fine // 2), coarse_shape)
    p = np.zeros((fine.shape[1], int(np.prod(coarse_shape))))
    p[np.arange(fine.shape[1]), block] = on.numpy().ravel()
    return p


@pytest.mark.parametrize("shape", [(6, 6, 6), (7, 5, 6)])
def test_the_coarse_operator_is_the_galerkin_product(shape):
    on, held = _active(shape, seed=sum(shape))
    fine = Level.from_active(on, held)
    coarse = fine.coarsened()
    a = _dense(fine).numpy()
    p = _aggregation(shape, coarse.on.shape, on)
    galerkin = p.T @ a @ p
    inactive = ~coarse.on.numpy().ravel().astype(bool)
    galerkin[inactive, inactive] = 1.0  # blocks without an active voxel: identity
    np.testing.assert_allclose(_dense(coarse).numpy(), galerkin, atol=1e-12)


def test_the_v_cycle_is_symmetric_positive_definite():
    on, held = _active((20, 18, 19), seed=3)
    level = Level.from_active(on, held)
    cycle = VCycle(level)
    assert len(cycle.levels) >= 2
    rng = np.random.default_rng(0)
    r1, r2 = (torch.as_tensor(rng.standard_normal(on.shape)) * on for _ in range(2))
    left, right = float((cycle(r1) * r2).sum()), float((r1 * cycle(r2)).sum())
    assert left == pytest.approx(right, rel=1e-10)
    assert float((cycle(r1) * r1).sum()) > 0
