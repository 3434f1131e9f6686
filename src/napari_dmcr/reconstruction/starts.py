"""The start of a reconstruction: a structural model fitted to the target, chosen by its slices.

Two models carry a target's S2 into 3D with shapes of their own: the level cut of a Gaussian
random field (:mod:`~napari_dmcr.reconstruction.level_cut`: blobs and networks of any shape) and
overlapping spheres of either label (:mod:`~napari_dmcr.reconstruction.boolean_spheres`: round
grains in a connected rest). Each candidate is generated in a cube as wide as the target images (at most :data:`JUDGED_SIDE`: small
windows cut clusters at their borders, so slices are compared at the targets' own size) and the
one whose z slices look most like the target images is built at the output shape, judged by
what S2 does not fix: the number of
clusters of each phase (of at least :data:`MIN_AREA` pixels) per pixel, and their mean solidity
(area over convex-hull area). Each statistic's squared log-ratio is weighted by the number of
clusters the targets show, so that a phase with a handful of clusters does not decide.
"""

from __future__ import annotations

import numpy as np
from skimage import measure

from napari_dmcr.reconstruction.boolean_spheres import boolean_spheres
from napari_dmcr.reconstruction.level_cut import gaussian_level_cut

MODELS = ("gaussian", "spheres")
MIN_AREA = 10  # clusters smaller than this (pixels) are specks, not shapes
SLICES_JUDGED = 8  # z slices of a candidate compared with the targets
JUDGED_SIDE = 128  # largest side of the cube in which candidates are compared


def slice_shapes(images, phase):
    """Per phase (``phase``, the rest): clusters per pixel and their mean solidity, and the
    number of clusters, over 2D ``images`` (4-connected, clusters of :data:`MIN_AREA` or more)."""
    rates, solidities, counts = [], [], []
    for inside in (True, False):
        found, pixels, solidity = 0, 0, []
        for image in images:
            mask = (image == phase) == inside
            clusters = [p for p in measure.regionprops(measure.label(mask, connectivity=1)) if p.area >= MIN_AREA]
            found += len(clusters)
            pixels += mask.size
            solidity += [p.solidity for p in clusters]
        rates.append(found / pixels)
        solidities.append(float(np.mean(solidity)) if solidity else 0.0)
        counts.append(found / len(images))
    return np.array(rates), np.array(solidities), np.array(counts)


def shape_distance(candidate, target):
    """Weighted squared log-ratios of :func:`slice_shapes` of a candidate and of the targets."""
    rates, solidities, _ = candidate
    target_rates, target_solidities, target_counts = target
    floor = 1e-6
    terms = np.log(np.maximum(rates, floor) / np.maximum(target_rates, floor)) ** 2
    terms += np.log(np.maximum(solidities, 1e-3) / np.maximum(target_solidities, 1e-3)) ** 2
    return float(np.sum(np.maximum(target_counts, 1.0) * terms))


def fitted_start(images, phase, shape, seed=0, *, models=MODELS, periodic=False):
    """The candidate start whose slices look most like the targets.

    Parameters
    ----------
    images : list of numpy.ndarray
        Labeled two-phase 2D target images.
    phase : int
        The label whose set is returned.
    shape : tuple of int
        Output shape; spheres are a 3D model, a 2D shape has only the Gaussian level cut.
    seed : int
    models : sequence of {"gaussian", "spheres"}
    periodic : bool
        Treat the target images as periodic.

    Returns
    -------
    cut : numpy.ndarray of bool
        True on the voxels of ``phase`` (its exact fraction in the images).
    choice : dict
        ``model`` (``"gaussian"`` or ``"spheres"``), ``grains`` (the label made of spheres, or
        None) and ``distances`` (every candidate's :func:`shape_distance`).
    """
    labels = sorted(np.unique(np.concatenate([np.unique(image) for image in images])).tolist())
    builders = {}
    if "gaussian" in models:
        builders["gaussian"] = (lambda size: gaussian_level_cut(images, phase, size, seed, periodic=periodic), None)
    if "spheres" in models and len(shape) == 3:
        for grain in labels:
            def spheres(size, grain=grain):
                grains = boolean_spheres(images, grain, size, seed, periodic=periodic)
                return grains if grain == phase else ~grains

            builders[f"spheres of {grain}"] = (spheres, grain)
    distances, judged = {}, {}
    if len(builders) > 1:
        side = min(JUDGED_SIDE, min(min(image.shape) for image in images))
        other = [label for label in labels if label != phase][0]
        target = slice_shapes(images, phase)
        for name, (build, _) in builders.items():
            judged[name] = build((side,) * 3)
            stack = np.where(judged[name], phase, other)[:: max(1, side // SLICES_JUDGED)]
            distances[name] = shape_distance(slice_shapes(list(stack), phase), target)
    best = min(distances, key=distances.get) if distances else next(iter(builders))
    build, grain = builders[best]
    # Same seed, same shape: the judged candidate is the start itself.
    cut = judged[best] if best in judged and judged[best].shape == tuple(shape) else build(tuple(shape))
    return cut, {"model": best.split()[0], "grains": grain, "distances": distances}
