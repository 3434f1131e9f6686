"""Turning per-phase scores into labels with prescribed phase fractions.

Used to round a reconstruction (scores = relaxed phase fields) and after smoothing (scores =
smoothed indicators): the result has exactly the requested number of voxels per phase, instead of
the drift that a blind 0.5 cut or an argmax gives.
"""

from __future__ import annotations

import numpy as np

from napari_dmcr.errors import InputError


def counts_from_fractions(fractions, size):
    """Integer voxel counts per phase that sum to ``size`` (largest-remainder rounding)."""
    fractions = np.asarray(fractions, dtype=float)
    if fractions.min() < 0 or fractions.sum() <= 0:
        raise InputError(f"phase fractions must be non-negative with a positive sum, got {fractions}")
    exact = fractions / fractions.sum() * size
    counts = np.floor(exact).astype(np.int64)
    remainder = size - counts.sum()
    counts[np.argsort(-(exact - counts), kind="stable")[:remainder]] += 1
    return counts


def assign_with_counts(scores, counts):
    """Assign every voxel to one phase, with exactly ``counts[k]`` voxels in phase k.

    Greedy on the sorted (score, voxel, phase) triples: the highest remaining score wins, unless
    its voxel is already assigned or its phase is full. With two phases this is a rank threshold
    (the ``counts[0]`` voxels of highest score of phase 0). Ties are broken by voxel index, so the
    result is deterministic.

    Parameters
    ----------
    scores : numpy.ndarray, shape (k, ...)
        Score of each phase at each voxel (higher = more likely).
    counts : sequence of int
        Voxels wanted per phase; must sum to the number of voxels.

    Returns
    -------
    numpy.ndarray of int64, shape ``scores.shape[1:]``
        Phase index (0..k-1) per voxel.
    """
    scores = np.asarray(scores, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.int64)
    k = scores.shape[0]
    flat = scores.reshape(k, -1)
    size = flat.shape[1]
    if counts.shape != (k,) or counts.sum() != size or counts.min() < 0:
        raise InputError(f"counts {counts.tolist()} must give one non-negative count per phase summing to {size}")
    if k == 2:
        order = np.argsort(-(flat[0] - flat[1]), kind="stable")
        result = np.ones(size, dtype=np.int64)
        result[order[: counts[0]]] = 0
        return result.reshape(scores.shape[1:])
    order = np.argsort(-flat.ravel(), kind="stable")
    phase_of, voxel_of = np.divmod(order, size)
    result = np.full(size, -1, dtype=np.int64)
    remaining = counts.copy()
    for phase, voxel in zip(phase_of, voxel_of):
        if result[voxel] < 0 and remaining[phase] > 0:
            result[voxel] = phase
            remaining[phase] -= 1
    return result.reshape(scores.shape[1:])
