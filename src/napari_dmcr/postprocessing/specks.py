"""Specks: no more tiny clusters in a core's slices than its input slice shows, fractions kept.

A speck is a 6-connected cluster of one phase smaller than :data:`SPECK` voxels. Real rocks have
some (isolated pores, cement specks); a reconstruction tends to carry more (a cemented grain
pack's closed-off pore pockets, the optimizer's noise).
How many a core should show is read from the input slice: the density of small 2D clusters
(fewer than :data:`SPECK` pixels) per pixel of each phase, which a core's z slices are held to.
:func:`remove_specks` removes a phase's 3D specks, smallest first, in the share by which its
slices' small-cluster density exceeds the target's (each removed speck takes its 2D sections
with it, and sections of bumps on larger clusters count too), then restores the exact voxel
count of every phase at the interfaces the ``rank`` (by default a Gaussian blur of the labels)
puts nearest.

Examples
--------
>>> import numpy as np
>>> core = np.zeros((16, 16, 16), np.uint8)
>>> core[:, :8] = 1
>>> core[3, 12, 12] = 1  # a one-voxel speck of label 1
>>> clean = remove_specks(core, 1, {0: 0.0, 1: 0.0})
>>> int(clean[3, 12, 12]), int(clean.sum()) == int(core.sum())
(0, True)
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

SPECK = 10  # voxels (3D) or pixels (2D)
RANK_SIGMA = 1.0  # voxels: the blur that ranks where the interface moves to restore a count


def speck_density(images, label):
    """Small 2D clusters (fewer than :data:`SPECK` pixels, 4-connected) of ``label`` per pixel
    of the 2D ``images``."""
    found = pixels = 0
    for image in images:
        clusters, _ = ndi.label(np.asarray(image) == label)
        sizes = np.bincount(clusters.ravel())[1:]
        found += np.count_nonzero(sizes < SPECK)
        pixels += np.asarray(image).size
    return found / max(pixels, 1)


def remove_specks(labels, phase, targets, rank=None):
    """Two-phase ``labels`` whose z slices hold no more small clusters of either label per pixel
    than ``targets`` (label -> :func:`speck_density`), with every label's voxel count kept.

    Parameters
    ----------
    labels : numpy.ndarray of int, shape (d, h, w)
    phase : int
        One of the two labels; ``rank`` scores it.
    targets : dict of int to float
        The small-cluster density each label's slices may have.
    rank : numpy.ndarray of float, optional
        Higher where ``phase`` belongs more (a depth, a field); default: the blurred indicator.

    Returns
    -------
    numpy.ndarray
        A copy of ``labels`` with specks removed.
    """
    labels = np.asarray(labels)
    other = next(label for label in targets if label != phase)
    inside = labels == phase
    count = int(np.count_nonzero(inside))
    rank = ndi.gaussian_filter(inside.astype(np.float32), RANK_SIGMA, mode="wrap") if rank is None else np.asarray(rank)
    fixed = np.zeros(labels.shape, np.int8)  # +1: kept as phase, -1: kept as other
    for label, sign in ((phase, -1), (other, +1)):
        mask = labels == label
        made = speck_density(mask, True)
        if made > targets[label]:
            fixed[_excess_specks(mask, made, targets[label])] = sign
    if not fixed.any():
        return labels.copy()
    state = (inside | (fixed > 0)) & ~(fixed < 0)
    change = count - int(np.count_nonzero(state))
    # The count comes back at the interface: the unfixed voxels of the other side ranked nearest.
    free = np.flatnonzero(~state & (fixed == 0)) if change > 0 else np.flatnonzero(state & (fixed == 0))
    ranks = rank.ravel()[free]
    chosen = free[np.argsort(-ranks if change > 0 else ranks, kind="stable")[: abs(change)]]
    state.flat[chosen] = change > 0
    return np.where(state, phase, other).astype(labels.dtype)


def _excess_specks(mask, made, target):
    """The 3D specks of ``mask``, smallest first, in the share by which its slices' density
    ``made`` exceeds ``target`` (2D sections of specks and of bumps on larger clusters both count)."""
    clusters, _ = ndi.label(mask)
    sizes = np.bincount(clusters.ravel())
    specks = np.flatnonzero(sizes < SPECK)
    specks = specks[specks > 0]
    specks = specks[np.argsort(sizes[specks], kind="stable")]
    return np.isin(clusters, specks[: int(np.ceil((1.0 - target / made) * specks.size))])
