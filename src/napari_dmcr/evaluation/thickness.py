"""Local thickness of a phase and its volume-weighted distribution: grain or pore sizes.

Conventions as in :mod:`napari_dmcr.evaluation.morphology`; thicknesses are in voxels.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi

from napari_dmcr.evaluation.common import check_phase_mask


def local_thickness(labels, phase):
    """Local thickness of a phase: the diameter of the largest ball inside it covering each voxel.

    For a phase voxel p let d(p) be its Euclidean distance to the nearest voxel of the other
    phases (:func:`scipy.ndimage.distance_transform_edt`); the phase voxels within d(p) of p form
    the largest digital ball centred at p inside the phase. Its boundary lies half a voxel
    beyond the voxel centres nearest to the other phase, so its diameter is 2 d(p) - 1 voxels: a
    plate t voxels thick has a thickness of t (t odd) or t - 1 (t even, where no voxel is on the
    mid-plane), a cylinder about the diameter of the disk of the same cross-section. The
    thickness of a voxel is the largest such diameter over the balls that contain it (Hildebrand
    and Rueegsegger, 1997).

    The maximum over balls is taken radius by radius: for each radius r the voxels with
    d >= r are dilated by a ball of radius r (a distance transform thresholded at r, kept within
    the phase). Radii are rounded down to half a voxel, so thicknesses are whole numbers of
    voxels and may fall short by at most one voxel.

    Parameters
    ----------
    labels : array_like of int, shape (h, w) or (d, h, w)
        Labeled image or volume.
    phase : int
        Label of the phase.

    Returns
    -------
    numpy.ndarray of float64
        The local thickness in voxels at every phase voxel, 0 elsewhere.
    """
    phase_mask = check_phase_mask(labels, phase)
    distance = ndi.distance_transform_edt(phase_mask)
    thickness = np.zeros(phase_mask.shape)
    # Ascending radii: a larger ball covering a voxel overwrites a smaller one.
    for radius in np.unique(np.floor(2 * distance[phase_mask]) / 2):
        centres = distance >= radius
        # Dilation by the radius only reaches ceil(radius) beyond the centres' bounding box.
        box = _bounding_box(centres, math.ceil(radius))
        # "<=": a voxel at distance r from a centre of rounded radius r <= d is inside its ball
        # unless it is of another phase (then it is at distance exactly d = r).
        covered = (ndi.distance_transform_edt(~centres[box]) <= radius) & phase_mask[box]
        thickness[box][covered] = 2 * radius - 1
    return thickness


def size_distribution(labels, phase, bins=None):
    """Volume-weighted distribution of the local thickness of a phase (grain or pore sizes).

    Parameters
    ----------
    labels : array_like of int, shape (h, w) or (d, h, w)
        Labeled image or volume.
    phase : int
        Label of the phase.
    bins : int or sequence of float, optional
        Bins of the thickness in voxels, as in :func:`numpy.histogram`; by default one bin per
        whole thickness 1, 2, ... (edges at half-integers).

    Returns
    -------
    dict
        ``bin_edges``, ``fraction`` (the share of the phase's voxels whose local thickness falls
        in each bin; sums to 1 when the bins cover every thickness), ``mean_thickness`` and
        ``median_thickness`` (floats, in voxels). See :func:`local_thickness`.
    """
    phase_mask = check_phase_mask(labels, phase)
    values = local_thickness(labels, phase)[phase_mask]
    if bins is None:
        bins = np.arange(0.5, values.max() + 1)
    counts, edges = np.histogram(values, bins=bins)
    return {
        "bin_edges": edges,
        "fraction": counts / values.size,
        "mean_thickness": float(values.mean()),
        "median_thickness": float(np.median(values)),
    }


def _bounding_box(mask, margin):
    box = []
    for axis in range(mask.ndim):
        present = np.flatnonzero(np.any(mask, axis=tuple(a for a in range(mask.ndim) if a != axis)))
        box.append(slice(max(present[0] - margin, 0), present[-1] + margin + 1))
    return tuple(box)
