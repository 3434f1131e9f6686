"""Morphological measures that a reconstruction is not fitted to: independent checks of fidelity.

Every function takes a labeled 2D image or 3D volume (NumPy, integer labels) and the label of
one phase, and returns NumPy arrays, plain floats or dicts of them. Conventions shared by all:

- a *lag* or *segment length* r counts lattice steps: a segment of length r joins two voxels r
  apart and covers r + 1 voxels, so r = 0 is a single voxel (as for S2, where S2(0) is the
  volume fraction);
- nothing is periodic: statistics along an axis use only the segments that fit in the image;
- *connectivity* is that of :func:`scipy.ndimage.generate_binary_structure`: 1 for face
  neighbours (4 in 2D, 6 in 3D) up to ``ndim`` for all neighbours (8 or 26);
- lengths are in voxels unless a ``voxel_size`` is given.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi
from skimage import measure

from napari_dmcr.errors import InputError
from napari_dmcr.evaluation.common import check_phase_mask
from napari_dmcr.evaluation.thickness import local_thickness, size_distribution
from napari_dmcr.labels import neighbourhood

# docs/evaluation.md lists every measure under this module; the thickness ones live in thickness.py.
__all__ = [
    "chord_length_distribution",
    "connectivity",
    "euler_characteristic_density",
    "lineal_path",
    "local_thickness",
    "morphology_summary",
    "size_distribution",
    "specific_surface_area",
    "two_point_cluster_function",
]

# Blur applied before marching squares / cubes in specific_surface_area: on raw binary data the
# staircase makes a ball's area 8-9 % too large; sigma 0.7 leaves about 1 % for radii of 6+ voxels.
SURFACE_SIGMA = 0.7


def lineal_path(labels, phase, max_length=None, axis=0):
    """Lineal-path function L(r) along an axis.

    L(r) is the probability that a segment of length r (r lattice steps, r + 1 voxels) along
    ``axis``, placed at random where it fits in the image, lies wholly in the phase. L(0) is the
    volume fraction and L decreases to 0 beyond the longest chord.

    Parameters
    ----------
    labels : array_like of int, shape (h, w) or (d, h, w)
        Labeled image or volume.
    phase : int
        Label of the phase.
    max_length : int, optional
        Largest segment length, at most the axis length minus 1; half the axis length by default.
    axis : int
        Axis of the segments.

    Returns
    -------
    numpy.ndarray of float64, shape (max_length + 1,)
        ``L[r]`` for r = 0..max_length.
    """
    phase_mask = check_phase_mask(labels, phase)
    axis = _check_axis(axis, phase_mask.ndim)
    n = phase_mask.shape[axis]
    max_length = _check_lag(max_length, n, "max_length")
    lengths, _ = _chords(phase_mask, axis)
    per_length = np.bincount(lengths, minlength=n + 1).astype(np.float64)
    # A chord of c voxels holds c - r segments of length r: sum over chords longer than r.
    chords_longer = np.cumsum(per_length[::-1])[::-1]
    voxels_longer = np.cumsum((per_length * np.arange(n + 1))[::-1])[::-1]
    r = np.arange(max_length + 1)
    inside = voxels_longer[r + 1] - r * chords_longer[r + 1]
    segments = (n - r) * (phase_mask.size // n)
    return inside / segments


def chord_length_distribution(labels, phase, axis=0, *, include_border=False):
    """Distribution of the chord lengths of a phase along an axis.

    A chord is a maximal run of phase voxels along ``axis``; its length is its number of voxels.
    Chords touching the image border are cut by it and so are biased short; they are left out
    unless ``include_border`` is True.

    Parameters
    ----------
    labels : array_like of int, shape (h, w) or (d, h, w)
        Labeled image or volume.
    phase : int
        Label of the phase.
    axis : int
        Axis of the chords.
    include_border : bool
        Also count the chords that touch the image border.

    Returns
    -------
    dict
        ``length``: the chord lengths 1..n (n the axis length), ``probability``: the fraction of
        the chords with each length (numbers of chords, not voxels; zeros if there is no chord),
        ``n_chords`` (int) and ``mean_length`` (float, NaN if there is no chord).
    """
    phase_mask = check_phase_mask(labels, phase)
    axis = _check_axis(axis, phase_mask.ndim)
    n = phase_mask.shape[axis]
    lengths = chord_lengths(phase_mask, axis, include_border=include_border)
    counts = np.bincount(lengths, minlength=n + 1)[1:].astype(np.float64)
    n_chords = int(lengths.size)
    return {
        "length": np.arange(1, n + 1),
        "probability": counts / n_chords if n_chords else counts,
        "n_chords": n_chords,
        "mean_length": float(lengths.mean()) if n_chords else math.nan,
    }


def two_point_cluster_function(labels, phase, max_lag=None, axis=0, *, connectivity=1):
    """Two-point cluster function C2(r) along an axis.

    C2(r) is the probability that two voxels r apart along ``axis`` both lie in the same
    connected cluster of the phase, over the pairs that fit in the image. C2(0) is the volume
    fraction, and C2 <= S2 with equality where no two clusters are r apart: the difference is
    the correlation that connectivity does not explain.

    Parameters
    ----------
    labels : array_like of int, shape (h, w) or (d, h, w)
        Labeled image or volume.
    phase : int
        Label of the phase.
    max_lag : int, optional
        Largest lag, at most the axis length minus 1; half the axis length by default.
    axis : int
        Axis of the lags.
    connectivity : int
        Neighbourhood that defines the clusters (see the module docstring).

    Returns
    -------
    numpy.ndarray of float64, shape (max_lag + 1,)
        ``C2[r]`` for r = 0..max_lag.
    """
    phase_mask = check_phase_mask(labels, phase)
    axis = _check_axis(axis, phase_mask.ndim)
    n = phase_mask.shape[axis]
    max_lag = _check_lag(max_lag, n, "max_lag")
    clusters, _ = ndi.label(phase_mask, neighbourhood(phase_mask.ndim, connectivity))
    clusters = np.moveaxis(clusters, axis, -1)
    result = np.empty(max_lag + 1)
    for r in range(max_lag + 1):
        here, there = clusters[..., : n - r], clusters[..., r:]
        result[r] = np.count_nonzero((here == there) & (here > 0)) / here.size
    return result


def connectivity(labels, phase, *, connectivity=1):
    """How connected a phase is: its largest cluster and whether it percolates.

    A cluster percolates along an axis when it touches both faces of the image normal to it.

    Parameters
    ----------
    labels : array_like of int, shape (h, w) or (d, h, w)
        Labeled image or volume.
    phase : int
        Label of the phase.
    connectivity : int
        Neighbourhood that defines the clusters (see the module docstring).

    Returns
    -------
    dict
        ``n_clusters`` (int), ``largest_cluster_fraction`` (float: the share of the phase's
        voxels in its largest cluster), ``percolates`` (list of bool, one per axis) and
        ``percolating_fraction`` (list of float, one per axis: the share of the phase's voxels in
        clusters that percolate along that axis).
    """
    phase_mask = check_phase_mask(labels, phase)
    return _cluster_statistics(phase_mask, connectivity)


def _cluster_statistics(phase_mask, connectivity):
    clusters, n_clusters = ndi.label(phase_mask, neighbourhood(phase_mask.ndim, connectivity))
    sizes = np.bincount(clusters.ravel())
    sizes[0] = 0
    total = sizes.sum()
    percolating = []
    for axis in range(phase_mask.ndim):
        first = np.take(clusters, 0, axis=axis)
        last = np.take(clusters, -1, axis=axis)
        spanning = np.intersect1d(first, last)
        percolating.append(sizes[spanning[spanning > 0]].sum() / total)
    return {
        "n_clusters": int(n_clusters),
        "largest_cluster_fraction": float(sizes.max() / total),
        "percolates": [bool(f > 0) for f in percolating],
        "percolating_fraction": [float(f) for f in percolating],
    }


def euler_characteristic_density(labels, phase, *, connectivity=1):
    """Euler characteristic of a phase per voxel.

    In 3D the Euler characteristic is (number of clusters) - (number of tunnels) + (number of
    enclosed cavities): 1 for a ball, 0 for a torus, k for k separate balls. In 2D it is (number
    of clusters) - (number of holes). Computed with :func:`skimage.measure.euler_number`, which
    treats the outside of the image as not in the phase: a cluster cut by the border is closed
    there. Divided by the number of voxels of the image, so that images of different sizes
    compare; a strongly negative density means a well-connected, many-tunnelled network.

    Parameters
    ----------
    labels : array_like of int, shape (h, w) or (d, h, w)
        Labeled image or volume.
    phase : int
        Label of the phase.
    connectivity : int
        Neighbourhood of the phase (see the module docstring); the other phases get the
        complementary one, as digital topology requires. In 3D only 1 and 3 are allowed (the
        18-neighbourhood has no complementary one).

    Returns
    -------
    float
        Euler characteristic divided by the number of voxels.
    """
    phase_mask = check_phase_mask(labels, phase)
    neighbourhood(phase_mask.ndim, connectivity)
    if phase_mask.ndim == 3 and connectivity == 2:
        raise InputError(
            "the 3D Euler characteristic is defined for connectivity 1 (6 neighbours) or 3 "
            "(26 neighbours), not 2: choose 1 or 3"
        )
    return float(measure.euler_number(phase_mask, connectivity=connectivity) / phase_mask.size)


def specific_surface_area(labels, phase, voxel_size=1.0):
    """Interface area of a phase per unit volume of the phase.

    The interface is the level 0.5 of the phase indicator, blurred by a Gaussian of 0.7 voxel to
    remove the staircase of the voxels, and triangulated with
    :func:`skimage.measure.marching_cubes` (3D, area by
    :func:`skimage.measure.mesh_surface_area`) or traced with
    :func:`skimage.measure.find_contours` (2D, perimeter). The image border is not an interface.
    The result is divided by the volume (area in 2D) of the phase, so a ball of radius R gives
    about 3/R and a disk about 2/R (within about 2 % for radii of 6 voxels or more); features
    thinner than about 2 voxels are underestimated. Multiply by the volume fraction for the area
    per unit volume of the whole image.

    Parameters
    ----------
    labels : array_like of int, shape (h, w) or (d, h, w)
        Labeled image or volume.
    phase : int
        Label of the phase.
    voxel_size : float or sequence of float
        Size of a voxel along each axis (one value for all axes or one per axis).

    Returns
    -------
    float
        Interface area per unit phase volume (perimeter per unit phase area in 2D), in inverse
        units of ``voxel_size``.
    """
    phase_mask = check_phase_mask(labels, phase)
    spacing = _check_voxel_size(voxel_size, phase_mask.ndim)
    blurred = ndi.gaussian_filter(phase_mask.astype(np.float32), SURFACE_SIGMA, mode="reflect")
    volume = np.count_nonzero(phase_mask) * math.prod(spacing)
    if blurred.min() >= 0.5 or blurred.max() <= 0.5:
        return 0.0
    if phase_mask.ndim == 3:
        vertices, faces, _, _ = measure.marching_cubes(blurred, 0.5, spacing=spacing)
        area = measure.mesh_surface_area(vertices, faces)
    else:
        area = sum(
            np.hypot(*(np.diff(contour, axis=0) * spacing).T).sum() for contour in measure.find_contours(blurred, 0.5)
        )
    return float(area / volume)


def morphology_summary(
    labels,
    phase,
    *,
    axes=None,
    max_length=None,
    max_lag=None,
    connectivity=1,
    voxel_size=1.0,
    bins=None,
):
    """Every measure of this module for one phase, per axis where the measure has one.

    Parameters
    ----------
    labels : array_like of int, shape (h, w) or (d, h, w)
        Labeled image or volume.
    phase : int
        Label of the phase.
    axes : sequence of int, optional
        Axes of the directional measures; all axes by default.
    max_length, max_lag : int, optional
        Largest segment length of :func:`lineal_path` and largest lag of
        :func:`two_point_cluster_function`; half the axis length by default.
    connectivity : int
        Neighbourhood of the clusters (see the module docstring).
    voxel_size : float or sequence of float
        Voxel size for :func:`specific_surface_area`.
    bins : int or sequence of float, optional
        Bins of :func:`size_distribution`.

    Returns
    -------
    dict
        ``phase``, ``volume_fraction``, ``lineal_path``, ``chord_length`` and
        ``two_point_cluster`` (dicts keyed by axis), ``connectivity``,
        ``euler_characteristic_density``, ``specific_surface_area`` and ``size_distribution``.
    """
    labels = np.asarray(labels)
    phase_mask = check_phase_mask(labels, phase)
    axes = range(phase_mask.ndim) if axes is None else [_check_axis(a, labels.ndim) for a in axes]
    return {
        "phase": phase.item() if isinstance(phase, np.generic) else phase,
        "volume_fraction": float(phase_mask.mean()),
        "lineal_path": {a: lineal_path(labels, phase, max_length, a) for a in axes},
        "chord_length": {a: chord_length_distribution(labels, phase, a) for a in axes},
        "two_point_cluster": {
            a: two_point_cluster_function(labels, phase, max_lag, a, connectivity=connectivity) for a in axes
        },
        "connectivity": _cluster_statistics(phase_mask, connectivity),
        "euler_characteristic_density": euler_characteristic_density(labels, phase, connectivity=connectivity),
        "specific_surface_area": specific_surface_area(labels, phase, voxel_size),
        "size_distribution": size_distribution(labels, phase, bins),
    }


def chord_lengths(mask, axis=0, *, include_border=False):
    """Lengths (voxels) of the runs of True in boolean ``mask`` along ``axis``; runs that touch
    the border are left out unless ``include_border`` is True.

    Examples
    --------
    >>> chord_lengths(np.array([[1, 0, 1, 1, 0, 0, 1, 1, 1, 0]], bool), axis=1).tolist()
    [2, 3]
    """
    lengths, touches_border = _chords(np.asarray(mask, bool), axis)
    return lengths if include_border else lengths[~touches_border]


def _chords(phase_mask, axis):
    """Lengths (voxels) of the phase's runs along ``axis``, and whether each meets the border."""
    n = phase_mask.shape[axis]
    lines = np.moveaxis(phase_mask, axis, -1).reshape(-1, n)
    padded = np.zeros((lines.shape[0], n + 2), dtype=np.int8)
    padded[:, 1:-1] = lines
    steps = np.diff(padded, axis=1)
    # Row-major order pairs every run start with its end.
    starts = np.nonzero(steps == 1)[1]
    ends = np.nonzero(steps == -1)[1]
    return ends - starts, (starts == 0) | (ends == n)


def _check_axis(axis, ndim):
    axis = int(axis)
    if not -ndim <= axis < ndim:
        raise InputError(f"axis={axis} does not exist in a {ndim}D image: use 0 to {ndim - 1}")
    return axis % ndim


def _check_lag(lag, n, name):
    lag = n // 2 if lag is None else int(lag)
    if not 0 <= lag <= n - 1:
        raise InputError(f"{name}={lag} does not fit an axis of {n} voxels: use 0 to {n - 1}")
    return lag


def _check_voxel_size(voxel_size, ndim):
    size = np.atleast_1d(np.asarray(voxel_size, dtype=float))
    if size.size == 1:
        size = np.repeat(size, ndim)
    if size.shape != (ndim,) or not np.all(np.isfinite(size)) or np.any(size <= 0):
        raise InputError(
            f"voxel_size must be one positive number or {ndim} of them (one per axis), got {size.tolist()}"
        )
    return tuple(size.tolist())
