"""A start for grains that touch rather than overlap: a consolidated packing of spheres.

Clast-supported conglomerates and sandstones are packings: grains touch and hardly interpenetrate,
and the rest of the volume (matrix, cement, pores) lies between them. Overlapping spheres
(:mod:`~napari_dmcr.reconstruction.boolean_spheres`) merge into clumps there, with thin grains
and specks of matrix trapped between them. This start places spheres largest first (in batches
of :data:`BATCH` drawn radii), rejecting any that would overlap the spheres already placed by
more than :data:`MAX_OVERLAP` of its own volume, until the grain fraction is reached or
placements stall; the packing is then grown (or shrunk) evenly at its surface to the exact
fraction, as cement consolidates a sand.

The radii follow the law fitted to S2 for overlapping spheres, scaled by the factor of
:data:`SCALES` whose packing's slices have the S2 closest to the target's: a packing spreads
its grains more evenly than overlapping spheres of the same sizes, so the same S2 needs larger
grains. The automatic start does not choose this model (from one slice, the shapes of a
packing and of overlapping spheres are not told apart reliably: fidelity3d.json); ask for it
with ``start="packed"`` when the grains of the material touch.

Examples
--------
>>> import numpy as np
>>> image = np.ones((48, 48), np.uint8)
>>> yy, xx = np.mgrid[:48, :48]
>>> for cy, cx in [(10, 10), (30, 14), (14, 34), (36, 36)]:
...     image[(yy - cy) ** 2 + (xx - cx) ** 2 <= 36] = 0
>>> grains = packed_spheres([image], 0, (24, 24, 24), seed=1)
>>> int(grains.sum()) == round(float(np.mean(image == 0)) * grains.size)
True
"""

from __future__ import annotations

import numpy as np

from napari_dmcr.reconstruction.boolean_spheres import fit_sphere_radii, sphere_box, update_box
from napari_dmcr.reconstruction.level_cut import lowest, target_s2

MAX_OVERLAP = 0.1  # largest share of a new sphere's voxels that may already be grain
SCALES = (0.8, 1.0, 1.2, 1.4, 1.6, 1.8)  # factors on the fitted radii tried (best 1.4-1.6 on the sample)
JUDGED_SIDE = 64  # side of the cube in which each scale's packing is compared with the target
BATCH = 64  # radii drawn at a time, placed largest first
STALLED = 3  # batches in a row with fewer than two placements end the packing


def sphere_packing(radii, weights, shape, fraction, seed=0, max_overlap=MAX_OVERLAP):
    """Depth of each voxel in a periodic packing of spheres (``radius - distance`` to the
    deepest centre; negative outside) and how many spheres cover it.

    Parameters
    ----------
    radii, weights : array_like
        Sphere radii (voxels) and their number frequencies.
    shape : tuple of 3 int
    fraction : float
        Grain fraction at which placing stops (unless placements stall first).
    seed : int
    max_overlap : float
        Largest share of a new sphere's voxels that may lie in spheres already placed (a sphere
        wider than the volume also meets its own periodic copies, which count as well).

    Returns
    -------
    depth : numpy.ndarray of float
    cover : numpy.ndarray of int
    """
    rng = np.random.default_rng(int(seed))
    keep = (np.asarray(radii, float) > 0) & (np.asarray(weights, float) > 0)
    radii, weights = np.asarray(radii, float)[keep], np.asarray(weights, float)[keep]
    sides = np.array(shape)
    depth, cover = np.full(shape, -np.inf), np.zeros(shape, np.int32)
    if not radii.size:
        return depth, cover
    covered, goal, stalled = 0, fraction * depth.size, 0
    while covered < goal and stalled < STALLED:
        placed = 0
        for radius in np.sort(rng.choice(radii, size=BATCH, p=weights / weights.sum()))[::-1]:
            box, distance = sphere_box(rng.random(3) * sides, radius, sides)
            inside = distance <= radius
            overlap = np.count_nonzero(inside & (cover[box] > 0))
            if not inside.any() or overlap > max_overlap * np.count_nonzero(inside):
                continue
            update_box(depth, box, radius - distance, np.maximum)
            update_box(cover, box, inside.astype(cover.dtype), np.add)
            covered += np.count_nonzero(inside) - overlap
            placed += 1
            if covered >= goal:
                break
        stalled = stalled + 1 if placed < 2 else 0
    return depth, cover


def packed_spheres(images, grain, shape, seed=0, *, periodic=False, longest=None):
    """A boolean 3D volume of label ``grain``: a consolidated sphere packing fitted to the images.

    Parameters
    ----------
    images : list of numpy.ndarray
        Labeled 2D target images.
    grain : int
        The label taken as grains; the result is True on it.
    shape : tuple of 3 int
    seed : int
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
    fraction = float(np.mean([np.mean(image == grain) for image in images]))
    side = min(JUDGED_SIDE, *(min(image.shape) for image in images))
    target = target_s2([image == grain for image in images], True, periodic, longest=max(*shape, side))

    def s2_error(scale):
        depth, _ = sphere_packing(radii * scale, intensities, (side,) * 3, fraction, seed)
        cut = lowest(-depth, fraction)
        made = target_s2(list(cut[::4]), True, periodic=True)  # every fourth z slice, lags to (side - 1) // 2
        return float(np.sqrt(np.mean((made - target[: len(made)]) ** 2)))

    scale = min(SCALES, key=s2_error)
    depth, _ = sphere_packing(radii * scale, intensities, shape, fraction, seed)
    return lowest(-depth, fraction)
