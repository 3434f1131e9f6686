"""How well one slice knows the volume fraction: its confidence interval, and whether several
slices can come from one material.

A slice's phase fraction is one sample of a stationary random set. Its variance over windows of
area A is ``(1/A^2) sum_r C(r) N(r)``, with C the phase's autocovariance (``S2(r) - phi^2``)
and N(r) the number of pixel pairs r apart in the window; for a window much wider than the
correlation length that is ``phi (1 - phi) A_I / A``, A_I the integral range (the
representativity literature's measure, e.g. Dahari et al., ImageRep, 2024). C is read from the
slice itself, up to the lag where its radial mean first reaches zero (at most a quarter of the
side); the slice's own mean biases it low by about the variance sought, which is solved for.

Examples
--------
>>> import numpy as np
>>> from scipy import ndimage as ndi
>>> noise = ndi.gaussian_filter(np.random.default_rng(0).standard_normal((256, 256)), 3, mode="wrap")
>>> image = (noise > 0).astype(np.uint8)
>>> interval = fraction_interval(image, 1)
>>> bool(interval["low"] < 0.5 < interval["high"]), bool(0.003 < interval["sd"] < 0.03)
(True, True)
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

CONFIDENCE_Z = 1.96  # a 95 % interval
DISAGREE_Z = 3.0  # slices whose fractions differ by more SD than this cannot be one material
LARGEST_SIDE = 1024  # the covariance is read from a central crop at most this wide
SLICE_NAMES = ("normal to z", "normal to y", "normal to x")  # three orthogonal slices, in volume-axis order


def fraction_interval(image, label):
    """The fraction of ``label`` in a 2D ``image`` and its sampling uncertainty.

    Parameters
    ----------
    image : array_like of int, shape (h, w)
    label : int

    Returns
    -------
    dict
        ``fraction``; ``sd``, its standard deviation over slices of this size of a homogeneous
        material with the slice's statistics; ``low`` and ``high``, the 95 % interval;
        ``integral_range``, in pixels (the area over which the phase is correlated).
    """
    mask = np.asarray(image) == label
    fraction = float(mask.mean())
    if fraction in (0.0, 1.0):
        return interval(fraction, 0.0) | {"integral_range": 0.0}
    crop = _central_crop(mask, LARGEST_SIDE)
    variance = _window_variance(crop)
    p = crop.mean()
    integral_range = variance * crop.size / (p * (1 - p)) if 0 < p < 1 else 0.0
    sd = np.sqrt(fraction * (1 - fraction) * integral_range / mask.size)
    return interval(fraction, sd) | {"integral_range": float(integral_range)}


def interval(fraction, sd):
    """``fraction``, ``sd`` and the 95 % interval ``low``-``high`` (clipped to [0, 1]), as floats."""
    fraction, sd = float(fraction), float(sd)
    return {
        "fraction": fraction,
        "sd": sd,
        "low": max(0.0, fraction - CONFIDENCE_Z * sd),
        "high": min(1.0, fraction + CONFIDENCE_Z * sd),
    }


def slice_disagreements(images, names, labels):
    """Messages for the pairs of slices whose fractions of a label differ by more than
    :data:`DISAGREE_Z` times the spread that slices of their sizes have.

    Parameters
    ----------
    images : list of numpy.ndarray
        Labeled 2D slices said to be of one material.
    names : list of str
        What to call each slice ("normal to z", ...).
    labels : list of int
        The labels checked (two phases: one is enough).

    Returns
    -------
    list of str
        One line per label and pair that disagrees; empty when the slices can be one material.
    """
    lines = []
    for label in labels:
        lines += disagreements([fraction_interval(image, label) for image in images], names, label)
    return lines


def disagreements(intervals, names, label):
    """:func:`slice_disagreements` of one ``label``, from the slices' intervals (:func:`fraction_interval`)."""
    lines = []
    for i in range(len(intervals)):
        for j in range(i + 1, len(intervals)):
            a, b = intervals[i], intervals[j]
            spread = np.hypot(a["sd"], b["sd"])
            if abs(a["fraction"] - b["fraction"]) > DISAGREE_Z * max(spread, 1e-12):
                lines.append(
                    f"the slices {names[i]} and {names[j]} hold {a['fraction']:.3f} and {b['fraction']:.3f} of "
                    f"label {label}, where slices of one material of their sizes differ by about "
                    f"{spread:.3f} (SD): they may not be one homogeneous material; the core takes their mean "
                    "fraction"
                )
    return lines


def common_fraction(images, label, fraction):
    """Two-phase ``images`` whose ``label`` covers ``round(fraction * size)`` pixels of each, its
    interfaces moved evenly (by the signed distance to them) and its shapes otherwise kept.

    Three slices of one material differ in fraction by chance; a core has one fraction, so each
    direction is matched to its slice's shapes at that fraction, not to its own fraction (which
    the core cannot show and the optimizer would chase with lamellae).

    Examples
    --------
    >>> image = np.zeros((8, 8), np.uint8)
    >>> image[2:6, 2:6] = 1
    >>> int(common_fraction([image], 1, 36 / 64)[0].sum())  # the square grows by its rim
    36
    """
    moved = []
    for image in images:
        inside = np.asarray(image) == label
        other = next(int(v) for v in np.unique(image) if v != label) if not inside.all() else label
        depth = ndi.distance_transform_edt(inside) - ndi.distance_transform_edt(~inside)
        # Ties of equal depth go first where the phase has more of its neighbours.
        depth = depth + 0.1 * ndi.gaussian_filter(inside.astype(float), 1.0)
        keep = np.zeros(inside.size, bool)
        keep[np.argsort(-depth, axis=None, kind="stable")[: round(fraction * inside.size)]] = True
        moved.append(np.where(keep.reshape(inside.shape), label, other).astype(np.asarray(image).dtype))
    return moved


def _central_crop(mask, side):
    corners = [max(0, (n - side) // 2) for n in mask.shape]
    return mask[corners[0] : corners[0] + side, corners[1] : corners[1] + side]


def _window_variance(mask):
    """Variance of the fraction of a window like ``mask`` (see the module's note)."""
    h, w = mask.shape
    centred = mask - mask.mean()
    spectrum = np.fft.rfft2(centred, s=(2 * h, 2 * w))
    sums = np.fft.irfft2(np.abs(spectrum) ** 2, s=(2 * h, 2 * w))
    dy = np.fft.fftfreq(2 * h, 1 / (2 * h)).astype(int)[:, None]
    dx = np.fft.fftfreq(2 * w, 1 / (2 * w)).astype(int)[None, :]
    weights = np.clip(1 - np.abs(dy) / h, 0, None) * np.clip(1 - np.abs(dx) / w, 0, None)  # N(r) / A
    covariance = sums / np.maximum(weights * h * w, 1)
    distance = np.hypot(dy, dx)
    cutoff = _first_zero(covariance, distance, max(1, min(h, w) // 4))
    inside = distance <= cutoff
    # C read about the slice's own mean is low by the variance v sought: v = sum((C + v) w) / A.
    observed = float(np.sum(covariance[inside] * weights[inside]))
    return max(observed, 0.0) / max(h * w - float(np.sum(weights[inside])), 1.0)


def _first_zero(covariance, distance, longest):
    """The first whole lag at which the radial mean of ``covariance`` is 0 or below (at most ``longest``)."""
    bins = np.rint(distance).astype(int).ravel()
    keep = bins <= longest
    radial = np.bincount(bins[keep], covariance.ravel()[keep]) / np.maximum(np.bincount(bins[keep]), 1)
    below = np.flatnonzero(radial <= 0)
    return int(below[0]) if below.size else longest
