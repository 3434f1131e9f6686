"""A start for sandstones: grains deposited under gravity, compacted and cemented (Oren-Bakke).

A sandstone's pores are the angular space left between grains that touch, joined by throats
where grains nearly meet. Following Oren and Bakke (2002), this start builds that space by the
process that made it:

1. **Grain sizes** are read from the slice: the grain phase is split into sections by a
   watershed of its distance map, and a log-normal law of sphere radii is fitted so that random
   plane sections of its spheres have the sections' mean and spread of radius
   (:func:`grain_size_law`).
2. **Sedimentation**: spheres drawn from that law fall one at a time and roll until three grains
   (or the floor) hold them (:mod:`~napari_dmcr.reconstruction.deposition`).
3. **Compaction**: every centre moves toward the floor in proportion to its height
   (:data:`COMPACTION`), so that grains interpenetrate where they pressed on each other.
4. **Cementation**: the grains grow evenly at their surface (quartz overgrowth) until the pore
   fraction is the slice's exactly, filling the narrow crevices where grains meet first
   (:data:`CEMENT_SMOOTHING`); pore pockets closed off beyond the slice's density of small
   clusters are filled (:func:`~napari_dmcr.postprocessing.specks.remove_specks`).

The core is cut from the middle of the pile, away from the floor and the loose top, and the
law's scale is set so that the core's mean grain chord in its z slices is the slice's.

Examples
--------
>>> import numpy as np
>>> yy, xx = np.mgrid[:64, :64]
>>> image = np.ones((64, 64), np.uint8)
>>> for cy in range(4, 64, 11):
...     for cx in range(4 + cy % 2 * 5, 64, 11):
...         image[(yy - cy) ** 2 + (xx - cx) ** 2 <= 30] = 0
>>> grains = deposited_grains([image], 0, (24, 24, 24), seed=1)
>>> int(grains.sum()) == round(float(np.mean(image == 0)) * grains.size)
True
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage import morphology, segmentation

from napari_dmcr.postprocessing.specks import remove_specks, speck_density
from napari_dmcr.reconstruction.boolean_spheres import MARGIN, sphere_box, update_box
from napari_dmcr.reconstruction.deposition import deposit
from napari_dmcr.reconstruction.level_cut import lowest

CEMENT_SMOOTHING = 0.7  # voxels: rounds the cement's edge into the grains' necks (0, 1.0 tried: worse)
COMPACTION = 0.05  # share of its height each centre moves down (Oren and Bakke: up to about 0.1)
MIN_SECTION = 10  # pixels: smaller sections are the watershed's slivers, not grains
PEAK_HEIGHT = 1.0  # pixels: distance-map maxima lower than this above their saddle merge
SIGMAS = np.linspace(0.02, 0.6, 30)  # log-normal spreads tried
CALIBRATIONS = 3  # rescalings of the size law to the images' mean grain chord
CHORD_TOLERANCE = 0.03  # relative difference of mean chords that ends them
PACKED = 0.6  # solid fraction of a deposited pile (its middle); sizes how many grains fall


def grain_sections(image, grain):
    """Equivalent radii (pixels) of the grain sections of a 2D ``image``: the phase ``grain``
    split at the saddles of its distance map (sections under :data:`MIN_SECTION` pixels left out)."""
    mask = np.asarray(image) == grain
    distance = ndi.distance_transform_edt(mask)
    markers, _ = ndi.label(morphology.h_maxima(distance, PEAK_HEIGHT))
    sections = segmentation.watershed(-distance, markers, mask=mask)
    areas = np.bincount(sections.ravel())[1:]
    areas = areas[areas >= MIN_SECTION]
    return np.sqrt(areas / np.pi)


def _section_radii(radii, rng):
    """Radii of random plane sections of spheres of ``radii``: each sphere hit in proportion to
    its radius, at a height uniform over it."""
    hit = rng.choice(radii, size=radii.size, p=radii / radii.sum())
    return np.sqrt(np.maximum(hit**2 * (1.0 - rng.random(radii.size) ** 2), 0.0))


def grain_size_law(images, grain, samples=20000, seed=0):
    """The log-normal law of sphere radii whose plane sections have the images' grain sections'
    mean and coefficient of variation of radius.

    Returns
    -------
    median, sigma : float
        The law's median radius (voxels) and the standard deviation of its logarithm.
    """
    section = np.concatenate([grain_sections(image, grain) for image in images])
    if section.size < 3:
        raise ValueError("too few grain sections to read a size law")
    floor = np.sqrt(MIN_SECTION / np.pi)
    mean, cv = section.mean(), section.std() / section.mean()
    rng = np.random.default_rng(seed)
    normal = rng.standard_normal(samples)
    best = None
    for sigma in SIGMAS:
        # Sections scale with the radii; the floor does not: two passes settle the median.
        median = mean / 0.785  # a sphere's mean section radius is pi / 4 of its radius
        for _ in range(3):
            cut = _section_radii(median * np.exp(sigma * normal), np.random.default_rng(seed))
            cut = cut[cut >= floor]
            median *= mean / cut.mean()
        made_cv = cut.std() / cut.mean()
        if best is None or abs(made_cv - cv) < best[0]:
            best = (abs(made_cv - cv), median, sigma)
    return float(best[1]), float(best[2])


def deposited_pack(median, sigma, shape, seed=0, compaction=None):
    """Depth of each voxel in a compacted pile of spheres of a log-normal radius law (``radius -
    distance`` to the deepest centre), cut from the middle of the pile; periodic across (y, x).

    Returns
    -------
    depth : numpy.ndarray of float, shape ``shape``
    centres, radii : numpy.ndarray
        The grains (centres in the core's voxel coordinates, z first) that reach into it.
    """
    compaction = COMPACTION if compaction is None else compaction
    rng = np.random.default_rng(int(seed))
    depth_side, sides = shape[0], np.array(shape[1:], float)
    largest = median * np.exp(3 * sigma)
    margin = 2.0 * largest  # floor and top layers left out
    height = PACKED * (depth_side / (1.0 - compaction) + 2 * margin)
    mean_volume = 4.0 / 3.0 * np.pi * median**3 * np.exp(4.5 * sigma**2)
    count = int(3 * height * sides.prod() / mean_volume) + 100
    radii = np.minimum(median * np.exp(sigma * rng.standard_normal(count)), largest)
    centres = deposit(radii, sides, height, seed=int(rng.integers(2**31)))
    radii = radii[: len(centres)]
    z = centres[:, 2] * (1.0 - compaction)
    bottom = (z.max() - depth_side) / 2.0  # the core's middle at the pile's
    zyx = np.column_stack([z - bottom, centres[:, 0], centres[:, 1]])
    near = (zyx[:, 0] > -radii - 1) & (zyx[:, 0] < depth_side + radii + 1)
    zyx, radii = zyx[near], radii[near]
    pad = int(np.ceil(largest)) + 4
    padded = (depth_side + 2 * pad, *shape[1:])
    depth = np.full(padded, -np.inf)
    for centre, radius in zip(zyx + [pad, 0, 0], radii):
        box, distance = sphere_box(centre, radius, np.array(padded))
        update_box(depth, box, radius - distance, np.maximum)
    return depth[pad : pad + depth_side], zyx, radii


def _cemented(depth, fraction, specks):
    """Grains grown evenly to ``fraction`` of the volume; cement closes the pore pockets (and the
    grain slivers dissolve) in excess of the images' small-cluster densities ``specks``."""
    if CEMENT_SMOOTHING:
        # Cement fills the narrow crevices between grains first (their blurred depth is highest).
        depth = ndi.gaussian_filter(np.maximum(depth, -MARGIN), CEMENT_SMOOTHING, mode=("nearest", "wrap", "wrap"))
    cut = lowest(-depth, fraction)
    return remove_specks(cut, True, specks, rank=depth)


def mean_chord(mask, axes):
    """Mean chord of the True phase along ``axes``: its share of the lines over the number of its
    chords (ends counted inside the array, so that chords cut by a border do not bias it)."""
    mask = np.asarray(mask, bool)
    ends = sum(np.count_nonzero(np.diff(mask.astype(np.int8), axis=axis) == -1) for axis in axes)
    return len(axes) * np.count_nonzero(mask) / max(ends, 1)


def deposited_grains(images, grain, shape, seed=0, *, periodic=False, longest=None):
    """A boolean 3D volume of label ``grain``: deposited, compacted and cemented spheres whose size
    law is read from the images' grain sections.

    Parameters
    ----------
    images : list of numpy.ndarray
        Labeled 2D target images.
    grain : int
        The label taken as grains; the result is True on it.
    shape : tuple of 3 int
    seed : int
    periodic, longest
        Accepted for the starts' common signature; the law is read from grain sections.

    Returns
    -------
    numpy.ndarray of bool
        True on ``round(fraction * size)`` voxels, the fraction of ``grain`` in the images.
    """
    median, sigma = grain_size_law(images, grain)
    fraction = float(np.mean([np.mean(image == grain) for image in images]))
    target = np.mean([mean_chord(image == grain, (0, 1)) for image in images])
    specks = {True: speck_density(images, grain), False: speck_density([image != grain for image in images], True)}
    # The law's scale is set so that the cemented grains' mean chord across the core's z slices
    # is the images' (the watershed splits and merges sections; chords do not depend on it).
    for _ in range(CALIBRATIONS):
        depth, _, _ = deposited_pack(median, sigma, tuple(shape), seed)
        cut = _cemented(depth, fraction, specks)
        made = mean_chord(cut, (1, 2))
        if abs(made / target - 1.0) < CHORD_TOLERANCE:
            break
        median *= target / made
    else:
        depth, _, _ = deposited_pack(median, sigma, tuple(shape), seed)
        cut = _cemented(depth, fraction, specks)
    return cut
