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

    A capacitated greedy assignment, in rounds:

    1. every unassigned voxel proposes to the phase with the highest score among the phases that
       still have room (ties go to the lower phase index);
    2. a phase whose proposals fit in its remaining room takes them all; a phase with more
       proposals than room takes the ones with the largest *margin* (its score minus the voxel's
       best score among the other open phases: what the voxel loses by going elsewhere; ties go
       to the lower voxel index) and closes;
    3. the rejected voxels propose again to the phases still open.

    A round either assigns every voxel or closes a phase, so there are at most as many rounds as
    phases, and because the counts add up to the number of voxels every phase ends with exactly
    its count. With two phases the result is a rank threshold: phase 0 gets the ``counts[0]``
    voxels of largest ``scores[0] - scores[1]``.

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
    scores = np.asarray(scores)
    if not np.issubdtype(scores.dtype, np.floating):
        scores = scores.astype(np.float64)
    counts = np.asarray(counts, dtype=np.int64)
    k = scores.shape[0]
    flat = scores.reshape(k, -1)
    size = flat.shape[1]
    if counts.shape != (k,) or counts.sum() != size or counts.min() < 0:
        raise InputError(f"counts {counts.tolist()} must give one non-negative count per phase summing to {size}")
    assignment = np.full(size, -1, dtype=np.int64)
    room = counts.copy()
    pending = np.arange(size)
    while pending.size:
        candidate = flat[:, pending].astype(np.float64)
        candidate[room == 0] = -np.inf
        choice = np.argmax(candidate, axis=0)
        best = candidate[choice, np.arange(pending.size)]
        candidate[choice, np.arange(pending.size)] = -np.inf
        # With a single open phase the runner-up is -inf: the margin is +inf and all fit anyway.
        margin = best - candidate.max(axis=0)
        for phase in np.flatnonzero(room):
            proposing = np.flatnonzero(choice == phase)
            if proposing.size > room[phase]:
                order = np.argsort(-margin[proposing], kind="stable")
                proposing = proposing[order[: room[phase]]]
            assignment[pending[proposing]] = phase
            room[phase] -= proposing.size
        pending = pending[assignment[pending] < 0]
    return assignment.reshape(scores.shape[1:])
