"""A start for grain materials: overlapping spheres (a Boolean model) fitted to S2.

In a Boolean model, spheres of radius R_i are centred at the points of Poisson processes of
intensities lambda_i (per voxel), and the grain phase is their union. The rest of the volume has
the two-point function (Torquato, *Random Heterogeneous Materials*, 2002, ch. 5)

    S2_rest(r) = exp(-sum_i lambda_i U_i(r)),  U_i(r) = V_i (1 + 3x/4 - x^3/16), x = r / R_i <= 2,

the volume of the union of two spheres whose centres are r apart (``2 V_i`` beyond ``2 R_i``).
So ``-log S2_rest`` is linear in the intensities, and a non-negative least-squares fit over a
ladder of radii gives the radius distribution. The spheres are then placed, and the phase
fraction made exact by ranking voxels by their depth inside the union (the largest
``R - distance to a centre``): the union grows or shrinks evenly at its surface.

The grains come out round and separate where the target's are; the rest of the volume (pores
between grains, the matrix between clasts) stays connected, as it is in granular materials.

Examples
--------
>>> import numpy as np
>>> image = np.ones((64, 64), np.uint8)
>>> yy, xx = np.mgrid[:64, :64]
>>> for cy, cx in [(12, 12), (40, 20), (20, 45), (50, 50)]:
...     image[(yy - cy) ** 2 + (xx - cx) ** 2 <= 36] = 0
>>> grains = boolean_spheres([image], 0, (24, 24, 24), seed=1)
>>> round(float(grains.mean()), 3) == round(float(np.mean(image == 0)), 3)
True
"""

from __future__ import annotations

import numpy as np
from scipy import optimize

from napari_dmcr.reconstruction.level_cut import lowest, target_s2

MIN_RADIUS = 2.0  # smaller spheres fit the pixel steps of an image's interfaces, not grains
PIXEL_LAGS = 2  # lags after 0 left out of the fit
RADII = 30  # rungs of the radius ladder, geometric from MIN_RADIUS to a quarter of the image
MARGIN = 3  # voxels around a sphere's box: the union may grow that far to the fraction
# Largest rung: the lag at which the slice's normalized covariance has fallen to DECAYED. Spheres
# of radius R correlate up to 2R, so this leaves a margin of 2; beyond it the fit explains the
# noise of one slice's long lags with a few spheres far larger than the grains (PoreSpy spheres
# of radii 3-7: a radius-12 component, 12.8 of 22 measures; capped: 16.0; fidelity3d.json).
DECAYED = 0.02


def union_volume(distance, radius):
    """Volume of the union of two spheres of ``radius`` whose centres are ``distance`` apart."""
    x = np.minimum(np.asarray(distance, float) / radius, 2.0)
    return 4.0 / 3.0 * np.pi * radius**3 * (1.0 + 0.75 * x - x**3 / 16.0)


def sphere_box(centre, radius, sides):
    """The periodic box around a sphere: ``(box, distance)``, ``box`` an open-mesh index
    (:func:`numpy.ix_`) of the wrapped voxel coordinates within ``radius + MARGIN`` of ``centre``
    along each axis, ``distance`` from each of those voxels to ``centre``."""
    reach = np.arange(-int(np.ceil(radius)) - MARGIN, int(np.ceil(radius)) + MARGIN + 1)
    axes = [np.floor(c).astype(int) + reach for c in centre]
    squares = [
        ((a - c) ** 2).reshape([-1 if k == axis else 1 for k in range(3)])
        for axis, (a, c) in enumerate(zip(axes, centre))
    ]
    return np.ix_(*(a % s for a, s in zip(axes, sides))), np.sqrt(sum(squares))


def update_box(array, box, values, ufunc):
    """``array[box] = ufunc(array[box], values)``, also when a box wider than the array repeats
    indices (then by ``ufunc.at``)."""
    if all(index.size <= side for index, side in zip(box, array.shape)):
        array[box] = ufunc(array[box], values)
    else:
        ufunc.at(array, tuple(np.broadcast_arrays(*box)), values)


def fit_sphere_radii(images, grain, periodic=False, longest=None):
    """Radii and intensities (per voxel) of a Boolean model whose grains are label ``grain``,
    fitted to S2 at lags up to ``longest`` (see :func:`~.level_cut.target_s2`).

    Returns
    -------
    radii, intensities : numpy.ndarray
        The rungs of the ladder with a positive intensity.
    rms : float
        RMS difference between the model's S2 of the rest and the images'.
    """
    return fit_radii_to_s2(target_s2([image != grain for image in images], True, periodic, longest))


def fit_radii_to_s2(s2):
    """:func:`fit_sphere_radii` from the radial S2 of the rest (lags 0, 1, ...)."""
    max_lag = s2.size - 1
    lags = np.arange(max_lag + 1.0)
    ladder = np.geomspace(MIN_RADIUS, max(MIN_RADIUS, min(max_lag / 2, decay_lag(s2))), RADII)
    basis = union_volume(lags[:, None], ladder[None, :])
    row_weights = np.ones(lags.size)
    row_weights[0] = 10.0  # the fraction is known exactly
    # The first lags carry the pixel steps of the image's interfaces (more surface than the
    # grains have), which the fit would explain with swarms of small spheres.
    row_weights[1 : 1 + PIXEL_LAGS] = 0.0
    intensities, _ = optimize.nnls(basis * row_weights[:, None], -np.log(np.clip(s2, 1e-9, None)) * row_weights)
    rms = float(np.sqrt(np.mean((np.exp(-basis @ intensities) - s2) ** 2)))
    keep = intensities > 0
    return ladder[keep], intensities[keep], rms


def decay_lag(s2):
    """The first lag at which the normalized covariance ``(S2 - f^2) / (f - f^2)`` of a radial S2
    (lags 0, 1, ...; ``f = S2[0]``) is below :data:`DECAYED`; the last lag when it never is."""
    fraction = s2[0]
    covariance = (s2 - fraction**2) / max(fraction - fraction**2, 1e-12)
    below = np.flatnonzero(covariance < DECAYED)
    return float(below[0]) if below.size else float(s2.size - 1)


def boolean_spheres(images, grain, shape, seed=0, *, periodic=False, longest=None):
    """A boolean 3D volume of label ``grain``: periodic overlapping spheres fitted to the images.

    Parameters
    ----------
    images : list of numpy.ndarray
        Labeled 2D target images; their mean radial S2 is fitted.
    grain : int
        The label taken as grains (spheres); the result is True on it.
    shape : tuple of 3 int
    seed : int
        Seed of the sphere centres.
    periodic : bool
        Treat the target images as periodic.
    longest : int, optional
        Largest S2 lag fitted (default: the largest side of ``shape``; see :func:`~.level_cut.target_s2`).

    Returns
    -------
    numpy.ndarray of bool
        True on ``round(fraction * size)`` voxels, the fraction of ``grain`` in the images.
    """
    radii, intensities, _ = fit_sphere_radii(images, grain, periodic, longest=longest or max(shape))
    fraction = np.mean([np.mean(image == grain) for image in images])
    return lowest(-sphere_depth(radii, intensities, shape, seed), fraction)


def sphere_depth(radii, intensities, shape, seed=0):
    """Depth inside the union of Poisson spheres of ``radii`` and ``intensities`` (per voxel):
    the largest ``radius - distance to a centre`` at each voxel (-inf far from every sphere)."""
    rng = np.random.default_rng(int(seed))
    sides = np.array(shape)
    depth = np.full(shape, -np.inf)
    for radius, intensity in zip(radii, intensities):
        for centre in rng.random((rng.poisson(intensity * depth.size), 3)) * sides:
            box, distance = sphere_box(centre, radius, sides)
            update_box(depth, box, radius - distance, np.maximum)
    return depth
