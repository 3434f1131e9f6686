"""The start of a reconstruction: a structural model fitted to the target, chosen by its slices.

Three models carry a target into 3D with shapes of their own: the level cut of a Gaussian
random field (:mod:`~napari_dmcr.reconstruction.level_cut`: blobs and networks of any shape),
overlapping spheres of either label (:mod:`~napari_dmcr.reconstruction.boolean_spheres`: round
grains in a connected rest) and grains deposited under gravity, compacted and cemented
(:mod:`~napari_dmcr.reconstruction.deposited_grains`: a sandstone's angular pores joined by
throats; for a label that is at least :data:`MIN_PACKED` of the images). A fourth, a consolidated packing of spheres
(:mod:`~napari_dmcr.reconstruction.packed_spheres`: grains that touch), is built only when asked
for: its slices are not told apart from those of overlapping spheres by the statistics below.
Each model is realized in a cube as wide as the target images (at most :data:`JUDGED_SIDE`:
small windows cut clusters at their borders) and the one whose z slices look most like the
target images is built at the output shape, judged by what S2 does not fix, per phase:

* clusters (of at least :data:`MIN_AREA` pixels) per pixel;
* their mean solidity (area over convex-hull area): round grains or branching pores;
* connectedness: the chance that two pixels of the phase lie in one cluster (the sum of squared
  cluster areas over the squared phase area), the 2D trace of 3D connectivity;
* the chord length distribution (its :data:`CHORD_QUANTILES`, chords along both axes that the
  window's border does not cut): a sandstone's angular pores and throats against a Gaussian
  cut's blobs of the same S2 and mean chord (fidelity3d.json: with it the judge picks the
  Gaussian cut on the Yan sandstone and deposited grains on Rabbani's, where it had swapped them
  on some seeds; the 2D Euler number and the specks per pixel were tried and told them apart
  worse).

Targets wider than the judged cube are measured in windows as wide as it (cluster counts and
connectedness depend on the window; at most :data:`MAX_WINDOWS`, spread evenly), and each
statistic's squared log-ratio is weighted by the number of clusters the targets show, so that a
phase with a handful of clusters does not decide.
"""

from __future__ import annotations

import numpy as np
from skimage import measure

from napari_dmcr.evaluation.morphology import chord_lengths
from napari_dmcr.reconstruction.anisotropy import is_anisotropic, isotropized, shrunk_shape, stretched
from napari_dmcr.reconstruction.boolean_spheres import boolean_spheres
from napari_dmcr.reconstruction.deposited_grains import deposited_grains
from napari_dmcr.reconstruction.level_cut import gaussian_level_cut
from napari_dmcr.reconstruction.packed_spheres import packed_spheres

MODELS = ("gaussian", "spheres", "deposited", "packed")
AUTO_MODELS = ("gaussian", "spheres", "deposited")  # the candidates of start="auto"
GRAIN_MODELS = {"spheres": boolean_spheres, "deposited": deposited_grains, "packed": packed_spheres}  # 3D only
MIN_PACKED = 0.7  # least grain fraction of a deposited start: a pile (about 0.6) plus cement
MIN_AREA = 10  # clusters smaller than this (pixels) are specks, not shapes
SLICES_JUDGED = 32  # z slices of a candidate compared with the targets (8 let one realization's noise decide)
JUDGED_SIDE = 128  # largest side of the cube in which candidates are compared
MAX_WINDOWS = 32  # windows of the targets measured: a 2048-pixel CT slice holds 256 (minutes of regionprops)
CHORD_QUANTILES = (10, 25, 50, 75, 90)  # percentiles of the chord lengths compared
CHORD_WEIGHT = 1.5  # of the chord term against the cluster terms (1-2 pick the best start on every truth)


def _windows(images, side):
    """Square windows of ``side`` tiling each image (the last ones flush with its far edges), at
    most :data:`MAX_WINDOWS` of them, spread evenly over the tiling."""
    corners = []
    for index, image in enumerate(images):
        rows = sorted({*range(0, image.shape[0] - side + 1, side), image.shape[0] - side})
        cols = sorted({*range(0, image.shape[1] - side + 1, side), image.shape[1] - side})
        corners += [(index, r, c) for r in rows for c in cols]
    chosen = np.unique(np.linspace(0, len(corners) - 1, min(len(corners), MAX_WINDOWS)).round().astype(int))
    return [images[i][r : r + side, c : c + side] for i, r, c in (corners[k] for k in chosen)]


def slice_shapes(images, phase, window=None, cancel=None):
    """Per phase (``phase``, the rest): clusters per pixel, their mean solidity, connectedness,
    clusters per window and the chord lengths' :data:`CHORD_QUANTILES`, over windows of side
    ``window`` (default: whole images) of 2D ``images`` (4-connected clusters; counts and
    solidity of clusters of :data:`MIN_AREA` or more); ``cancel`` is checked image by image.

    Returns
    -------
    numpy.ndarray, shape (4 + len(CHORD_QUANTILES), 2)
        Rows: rates, solidities, connectedness, counts, chord quantiles; columns: the phase, the rest.
    """
    images = _windows(images, window) if window else list(images)
    stats = []
    for inside in (True, False):
        found, pixels, solidity, connectedness, chords = 0, 0, [], [], []
        for image in images:
            _check(cancel)
            mask = (image == phase) == inside
            chords += [chord_lengths(mask, axis) for axis in (0, 1)]
            labels = measure.label(mask, connectivity=1)
            areas = np.bincount(labels.ravel())[1:]
            if areas.sum():
                connectedness.append(np.sum(areas.astype(float) ** 2) / float(areas.sum()) ** 2)
            clusters = [p for p in measure.regionprops(labels) if p.area >= MIN_AREA]
            found += len(clusters)
            pixels += mask.size
            solidity += [p.solidity for p in clusters]
        chords = np.concatenate(chords)
        stats.append(
            (
                found / pixels,
                np.mean(solidity) if solidity else 0.0,
                np.mean(connectedness) if connectedness else 0.0,
                found / len(images),
                *(np.percentile(chords, CHORD_QUANTILES) if chords.size else np.zeros(len(CHORD_QUANTILES))),
            )
        )
    return np.array(stats).T


def shape_distance(candidate, target):
    """Weighted squared log-ratios of :func:`slice_shapes` of a candidate and of the targets
    (the chord quantiles' mean, times :data:`CHORD_WEIGHT`)."""
    floors = (1e-6, 1e-3, 1e-3)
    terms = sum(np.log(np.maximum(c, f) / np.maximum(t, f)) ** 2 for c, t, f in zip(candidate[:3], target[:3], floors))
    quantiles = np.log(np.maximum(candidate[4:], 1.0) / np.maximum(target[4:], 1.0)) ** 2
    terms = terms + CHORD_WEIGHT * quantiles.mean(axis=0)
    return float(np.sum(np.maximum(target[3], 1.0) * terms))


def fitted_start(
    images,
    phase,
    shape,
    seed=0,
    *,
    models=AUTO_MODELS,
    periodic=False,
    scales=None,
    judged_side=JUDGED_SIDE,
    cancel=None,
):
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
    models : sequence of {"gaussian", "spheres", "deposited", "packed"}
    periodic : bool
        Treat the target images as periodic.
    scales : sequence of 3 float, optional
        The stretch of each axis (:func:`~napari_dmcr.reconstruction.anisotropy.axis_scales`)
        when ``images`` are three slices normal to z, y and x: the start is fitted to the slices
        made isotropic and stretched back (:mod:`~napari_dmcr.reconstruction.anisotropy`).
    judged_side : int
        Largest side of the cube the candidates are judged in.
    cancel : CancelToken, optional
        Checked before each candidate is built and judged (seconds each at 128^3).

    Returns
    -------
    cut : numpy.ndarray of bool
        True on the voxels of ``phase`` (its exact fraction in the images).
    choice : dict
        ``model`` (one of ``models``), ``grains`` (the label made of spheres, or None),
        ``candidate`` (its name in :func:`candidates`), ``distances`` (every candidate's
        :func:`shape_distance`) and, when stretched, ``scales``.
    """
    if len(shape) == 3 and is_anisotropic(scales):
        found = fitted_start(
            isotropized(images, scales),
            phase,
            shrunk_shape(shape, scales),
            seed,
            models=models,
            periodic=periodic,
            cancel=cancel,
        )
        fraction = float(np.mean([np.mean(image == phase) for image in images]))
        return stretched(found[0], scales, shape, fraction), found[1] | {"scales": [round(float(s), 4) for s in scales]}
    labels = sorted(np.unique(np.concatenate([np.unique(image) for image in images])).tolist())
    window = min(judged_side, *(min(image.shape) for image in images))
    builders = candidates(images, phase, shape, seed, models=models, periodic=periodic, judged_side=judged_side)
    if len(builders) == 1:
        name, (build, grain) = next(iter(builders.items()))
        return build(tuple(shape)), {"model": name.split()[0], "grains": grain, "distances": {}, "candidate": name}
    judged_shape = (window,) * 3
    other = next(label for label in labels if label != phase)
    target = slice_shapes(images, phase, window, cancel)
    distances, judged = {}, {}
    for name, (build, _) in builders.items():
        _check(cancel)
        judged[name] = build(judged_shape)
        stack = np.where(judged[name], phase, other)[:: max(1, judged_shape[0] // SLICES_JUDGED)]
        distances[name] = shape_distance(slice_shapes(list(stack), phase, window, cancel), target)
    best = min(distances, key=distances.get)
    build, grain = builders[best]
    # Same seed, same shape: the judged candidate is the start itself.
    _check(cancel)
    cut = judged[best] if judged_shape == tuple(shape) else build(tuple(shape))
    return cut, {"model": best.split()[0], "grains": grain, "distances": distances, "candidate": best}


def candidates(images, phase, shape, seed=0, *, models=AUTO_MODELS, periodic=False, judged_side=JUDGED_SIDE):
    """The candidate starts of :func:`fitted_start` by name (``"gaussian"``, ``"spheres of 0"``,
    ...), each as ``(build, grains label or None)``: ``build(size)`` gives the boolean set of
    ``phase`` in a box of ``size``, the same for the judged cube and for ``shape``."""
    labels = sorted(np.unique(np.concatenate([np.unique(image) for image in images])).tolist())
    window = min(judged_side, *(min(image.shape) for image in images))
    # One S2 range for the judged and the final build: the start judged is the start used.
    fit = {"periodic": periodic, "longest": max(*shape, window)}
    builders = {}
    if "gaussian" in models:
        builders["gaussian"] = (lambda size: gaussian_level_cut(images, phase, size, seed, **fit), None)
    for model in (m for m in models if m in GRAIN_MODELS and len(shape) == 3):
        for grain in labels:
            if model == "deposited" and len(models) > 1 and np.mean([np.mean(i == grain) for i in images]) < MIN_PACKED:
                continue  # a cemented pile is mostly grain (asked for by name, it is built)

            def grains_of(size, grain=grain, place=GRAIN_MODELS[model]):
                grains = place(images, grain, size, seed, **fit)
                return grains if grain == phase else ~grains

            builders[f"{model} of {grain}"] = (grains_of, grain)
    return builders


def _check(cancel):
    if cancel is not None:
        cancel.raise_if_cancelled()
