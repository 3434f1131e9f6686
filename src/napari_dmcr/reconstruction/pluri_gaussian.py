"""A start for three or more phases: the labels placed one after another, each in what is left.

The first label is the set of a two-phase fitted start of that label against the rest
(:func:`~napari_dmcr.reconstruction.starts.fitted_start`: a Gaussian level cut or spheres,
whichever looks most like the slices). Each next label is cut, inside what the labels before it
left, from a new, independent field: a Gaussian field (a truncated pluri-Gaussian model with a
hierarchical rule; Armstrong et al., *Plurigaussian Simulations in Geosciences*, Springer 2011)
or the depth in Poisson spheres (grains of that label in a matrix); the last label is the rest.
Because the field of label k is independent of the set ``L`` it is cut in, the label's
two-point function is

    S2_k(r) = Q(r) * C_k(r),    Q(r) = P(x and x + r both in L),

so its field is fitted to the conditional function ``C_k = S2_k / Q`` (fraction ``f_k / q``),
with ``S2_k`` and ``Q`` read from the slices; and the cross-function of an earlier label j and
label k is ``P(j at x, k at x + r) = P(j at x, L at x + r) * f_k / q``. That is what tells
the orders apart: every order of the labels and kind of field is built in a cube of
:data:`JUDGED_SIDE`; the order is the one whose slices' cross two-point functions between labels
are nearest the targets' (:func:`cross_distance`), and, in that order, the kind of field the one
whose slices look most like the targets, label by label
(:func:`~napari_dmcr.reconstruction.starts.shape_distance`). (On a synthetic concrete, the shape
distance alone put the air voids before the aggregate on 2 seeds of 4, and those cores passed 19-23
of 54 measures against 29-36; the cross functions pick the aggregate first on all four.) The
fractions are exact
(:func:`~napari_dmcr.postprocessing.assignment.counts_from_fractions`).

Examples
--------
>>> import numpy as np
>>> yy, xx = np.mgrid[:64, :64]
>>> image = np.where((yy // 8 + xx // 8) % 2, 2, np.where((yy % 8 < 3) & (xx % 8 < 3), 0, 1))
>>> labels, choice = pluri_gaussian_start([image], (24, 24, 24), seed=0, models=("gaussian",))
>>> [int(np.sum(labels == label)) for label in (0, 1, 2)], np.round(np.mean(image == 0) * 24**3)
([972, 5940, 6912], np.float64(972.0))
"""

from __future__ import annotations

import itertools

import numpy as np

from napari_dmcr.labels import distinct_images
from napari_dmcr.postprocessing.assignment import counts_from_fractions
from napari_dmcr.reconstruction.boolean_spheres import fit_radii_to_s2, sphere_depth
from napari_dmcr.reconstruction.level_cut import fitted_field, target_s2
from napari_dmcr.reconstruction.starts import (
    SLICES_JUDGED,
    candidates,
    fitted_start,
    shape_distance,
    slice_shapes,
)

# Candidates for the first label: a cemented pile (deposited grains) is a sandstone's model and
# took a minute at 128^3 for the composite's 27 % phase.
FIRST_MODELS = ("gaussian", "spheres")
LATER_MODELS = ("gaussian", "spheres")  # what a next label is cut from: a Gaussian field or spheres
# Side of the cube the candidates are judged in: every order and kind (three labels: 12) is
# judged on every label; at 64 the composite's start takes a third of its time at 128, with the
# same choice on the synthetic concrete (three_phases.json).
JUDGED_SIDE = 64
MAX_ORDERED = 3  # labels up to which every order is tried (beyond: by increasing fraction, the largest last)
CROSS_LAGS = 12  # lags of the cross two-point functions that judge the orders (about a grain's size)


def pluri_gaussian_start(images, shape, seed=0, *, models=FIRST_MODELS, periodic=False, cancel=None):
    """Labels of a 3+ phase start with the images' exact fractions.

    Parameters
    ----------
    images : list of numpy.ndarray
        Labeled 2D target images with three or more labels.
    shape : tuple of int
        Output shape (2D: the first label is a Gaussian level cut too).
    seed : int
    models : sequence of str
        Candidates for the first label (:data:`~napari_dmcr.reconstruction.starts.MODELS`).
    periodic : bool
        Treat the target images as periodic.
    cancel : CancelToken, optional
        Checked before each order is built.

    Returns
    -------
    labels : numpy.ndarray of int64
    choice : dict
        ``order`` (the labels as placed), ``model`` (the first label's, with ``grains``) and
        ``distances`` (every order's summed shape distance).
    """
    images = distinct_images(images)
    labels = sorted(np.unique(np.concatenate([np.unique(image) for image in images])).tolist())
    fractions = np.array([np.mean([np.mean(image == label) for image in images]) for label in labels])
    if len(labels) <= MAX_ORDERED:
        orders = list(itertools.permutations(labels))
    else:
        orders = [tuple(np.array(labels)[np.argsort(fractions, kind="stable")])]
    window = min(JUDGED_SIDE, *(min(image.shape) for image in images))
    judged_shape = (window,) * len(shape)
    fit = {"models": models if len(shape) == 3 else ("gaussian",), "periodic": periodic, "judged_side": JUDGED_SIDE}
    targets = {label: slice_shapes(images, label, window, cancel) for label in labels}
    target_cross = cross_functions(images, labels)
    kinds = list(itertools.product(LATER_MODELS if len(shape) == 3 else ("gaussian",), repeat=len(labels) - 2))
    firsts, distances, crossed, built = {}, {}, {}, {}
    for order, kind in itertools.product(orders, kinds):
        if order[0] not in firsts:
            firsts[order[0]] = _first(images, order[0], judged_shape, seed, fit, cancel)
        order_fractions = fractions[[labels.index(k) for k in order]]
        built[order, kind] = hierarchical_cut(images, order, firsts[order[0]][0], order_fractions, seed, periodic, kind)
        cut = built[order, kind]
        stack = list(cut[:: max(1, window // SLICES_JUDGED)]) if len(shape) == 3 else [cut]
        distances[order, kind] = sum(
            shape_distance(slice_shapes(stack, label, window, cancel), targets[label]) for label in labels
        )
        crossed[order, kind] = cross_distance(cross_functions(stack, labels), target_cross)
    best = min(crossed, key=crossed.get)[0]
    kind = min((k for o, k in distances if o == best), key=lambda k: distances[best, k])
    first_choice = firsts[best[0]][1]
    if judged_shape == tuple(shape):
        result = built[best, kind]
    else:  # the first label's judged candidate, built at the output shape
        binary = [(image == best[0]).astype(np.uint8) for image in images]
        build = candidates(binary, 1, judged_shape, seed, **fit)[first_choice["candidate"]][0]
        order_fractions = fractions[[labels.index(k) for k in best]]
        result = hierarchical_cut(images, best, build(tuple(shape)), order_fractions, seed, periodic, kind)
    choice = {
        "model": "pluri-gaussian",
        "order": list(best),
        "first": {"model": first_choice["model"], "grains": first_choice["grains"]},
        "next": list(kind),
        "distances": {" ".join(map(str, (*o, *k))): value for (o, k), value in distances.items()},
        "cross_distances": {" ".join(map(str, (*o, *k))): value for (o, k), value in crossed.items()},
    }
    return result, choice


def cross_functions(images, labels, lags=CROSS_LAGS):
    """``{(i, j): P(i at x, j at x + r)}`` of every pair of labels of 2D ``images``, for r = 1 ..
    ``lags`` along both image axes and both ways (no wrap), each over the pair's ``f_i f_j``."""
    fractions = {label: np.mean([np.mean(image == label) for image in images]) for label in labels}
    out = {}
    for i, j in itertools.combinations(labels, 2):
        values = []
        for r in range(1, lags + 1):
            total = 0.0
            for image in images:
                a, b = image == i, image == j
                total += sum(np.mean(p[:, :-r] & q[:, r:]) + np.mean(p[:-r] & q[r:]) for p, q in ((a, b), (b, a)))
            values.append(total / (4 * len(images)))
        out[i, j] = np.array(values) / max(fractions[i] * fractions[j], 1e-12)
    return out


def cross_distance(candidate, target):
    """RMS difference of two :func:`cross_functions` over every pair and lag."""
    return float(np.sqrt(np.mean([np.mean((candidate[pair] - target[pair]) ** 2) for pair in target])))


def _first(images, label, shape, seed, fit, cancel):
    """The first label's set: a two-phase fitted start of it against the rest."""
    binary = [(image == label).astype(np.uint8) for image in images]
    return fitted_start(binary, 1, shape, seed, cancel=cancel, **fit)


def hierarchical_cut(images, order, first, fractions, seed=0, periodic=False, kinds=None):
    """Labels of ``order`` placed in turn: ``first`` (a boolean set, set to its count), then each
    next one inside what is left, the last one the rest; ``fractions`` are those of ``order``,
    each label's count exact. A next label is the cut of an independent field fitted to its
    conditional S2, of a Gaussian field or (``kinds``, one per next label; default Gaussian) the
    depth in Poisson spheres."""
    shape = first.shape
    counts = counts_from_fractions(fractions, first.size)
    first = _with_count(first, counts[0])
    result = np.full(shape, order[-1], dtype=np.int64)
    result[first] = order[0]
    left = ~first
    kinds = kinds or ("gaussian",) * (len(order) - 2)
    for position, (label, kind) in enumerate(zip(order[1:-1], kinds), start=1):
        remaining = order[position:]
        s2 = target_s2(images, label, periodic, longest=max(shape))
        both_left = target_s2([np.isin(image, remaining).astype(np.uint8) for image in images], 1, periodic, max(shape))
        conditional = s2 / np.maximum(both_left, 1e-12)
        values = _field(kind, conditional, shape, seed + 7919 * position)  # a noise of its own per label
        values[~left] = np.inf
        placed = np.zeros(first.size, bool)
        placed[np.argsort(values, axis=None, kind="stable")[: counts[position]]] = True
        placed = placed.reshape(shape) & left
        result[placed] = label
        left &= ~placed
    return result


def _field(kind, conditional, shape, seed):
    """Values whose lowest voxels are a set with two-point function ``conditional``."""
    if kind == "gaussian":
        return fitted_field(conditional, shape, seed)
    fraction = conditional[0]  # spheres: fitted to the two-point function of the space they leave
    radii, intensities, _ = fit_radii_to_s2(1.0 - 2.0 * fraction + conditional)
    return -sphere_depth(radii, intensities, shape, seed)


def _with_count(mask, count):
    """``mask`` with exactly ``count`` voxels set: its own count rounds its fraction on its own,
    which can differ by a voxel from the counts of every label together."""
    flat = mask.ravel().copy()
    excess = int(flat.sum()) - int(count)
    if excess > 0:
        flat[np.flatnonzero(flat)[:excess]] = False
    elif excess < 0:
        flat[np.flatnonzero(~flat)[:-excess]] = True
    return flat.reshape(mask.shape)
