"""Anisotropic materials from three slices: a stretch per axis, read from the slices' correlations.

A material whose features are longer along one axis than along another is modelled as an
isotropic one stretched by a factor per axis (their geometric mean 1). The factor of an axis is
its correlation length: the lag at which the correlation of the Gaussian field behind each
label (:func:`~napari_dmcr.reconstruction.level_cut.gaussian_correlation` of the label's S2 along
the axis, in the two slices that see it) falls to :data:`HALF`, the labels' geometric mean. For
a stretched Gaussian level cut these are the stretch itself; a chord length would not do, as a
slice's border cuts the long chords of the majority phase short. A fitted start is then built
from the slices resampled by the inverse factors (they look isotropic), in a box shrunk the same
way, and stretched back to the output shape: a Gaussian level cut so stretched is one with a
correlation length per axis, and spheres become ellipsoids with the slices' axis lengths.

Examples
--------
>>> import numpy as np
>>> from napari_dmcr.reconstruction.level_cut import lowest
>>> from scipy import ndimage
>>> noise = np.random.default_rng(0).standard_normal((96, 96, 96))
>>> volume = lowest(ndimage.gaussian_filter(noise, (1.5, 3, 6), mode="wrap"), 0.3).astype(int)
>>> images = [volume[48], volume[:, 48], volume[:, :, 48]]  # normal to z, y, x
>>> scales = axis_scales(images, [0, 1])
>>> np.round(scales / scales[0], 1).tolist()
[1.0, 2.0, 4.0]
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from napari_dmcr.reconstruction.level_cut import gaussian_correlation, lowest

# The slices that see each volume axis, as (image, image axis): the slice normal to z is a
# (y, x) image, normal to y a (z, x) image, normal to x a (z, y) image.
SEEN = {0: ((1, 0), (2, 0)), 1: ((0, 0), (2, 1)), 2: ((0, 1), (1, 1))}
HALF = 0.5  # the correlation level whose lag is an axis's length
MIN_STRETCH = 1.05  # largest over smallest factor below which a material is taken as isotropic
# Axes' lengths this many sampling SDs apart make a material anisotropic: the 1:2:4 truth's
# slices in three_slices.py 16.8, the isotropic truths' 0.9-1.7, the slices of 24 isotropic
# Gaussian fields 0.3-3.0 (the normal range of three means passes 2.9 once in a hundred).
SIGNIFICANT_Z = 4.0
BANDS = 4  # strips a slice is cut into to measure the sampling spread of its lengths
MIN_SIDE = 8  # least side of the shrunk cube a start is built in


def correlation_lengths(images, labels, bands=1):
    """Correlation length of each label along each volume axis in each of the two slices that
    see it, shape ``(len(labels), 3, 2, bands)``, ``bands`` the number of strips along the axis
    each slice is cut into (their lengths' spread is the sampling spread of a slice's): the lag
    at which the Gaussian correlation of the label's S2 along the axis falls to :data:`HALF`."""
    lengths = np.zeros((len(labels), 3, 2, bands))
    for row, label in enumerate(labels):
        masks = [np.asarray(image == label, dtype=np.float64) for image in images]
        for axis, views in SEEN.items():
            for view, (k, a) in enumerate(views):
                strips = np.array_split(masks[k], bands, axis=1 - a)
                lengths[row, axis, view] = [_half_lag(strip, a) for strip in strips]
    return lengths


def _half_lag(mask, axis):
    s2 = _axis_s2(mask, axis)
    rho = gaussian_correlation(s2, s2[0]) if 0 < s2[0] < 1 else np.ones(len(s2))
    below = np.flatnonzero(rho < HALF)
    if below.size == 0:  # correlated across the slice: as long as it shows
        return float(len(rho) - 1)
    j = below[0]
    return j - 1 + (rho[j - 1] - HALF) / (rho[j - 1] - rho[j])


def _axis_s2(mask, axis):
    """S2 along an image axis (no wrap-around), lag by lag until it is near the square of the
    fraction or half the side."""
    fraction, side = mask.mean(), mask.shape[axis]
    s2 = [fraction]
    for lag in range(1, side // 2 + 1):
        s2.append(float(np.mean(mask.take(range(lag, side), axis) * mask.take(range(side - lag), axis))))
        if s2[-1] - fraction**2 < 0.25 * (fraction - fraction**2):  # past HALF's lag for any fraction
            break
    return np.array(s2)


def axis_scales(images, labels):
    """The stretch of each volume axis (z, y, x), their geometric mean 1
    (:func:`length_scales` of :func:`correlation_lengths`)."""
    return length_scales(correlation_lengths(images, labels))


def length_scales(lengths):
    """Stretches from :func:`correlation_lengths`: their geometric mean over labels, slices and
    strips, normalized."""
    scales = np.exp(np.log(np.maximum(lengths, 1e-9)).reshape(*lengths.shape[:2], -1).mean(axis=(0, 2)))
    return scales / np.exp(np.log(scales).mean())


def anisotropy_z(images, labels, lengths=None):
    """How far apart the axes' correlation lengths are, in units of their sampling spread: the
    largest difference of two axes' mean log-lengths over the SD of such a difference. A slice's
    log-length has the variance of :data:`BANDS` strips' over their number; an axis's mean of
    two slices half that, a difference of two axes' means twice that again. Below
    :data:`SIGNIFICANT_Z` the slices do not show the material to be anisotropic."""
    lengths = correlation_lengths(images, labels) if lengths is None else lengths
    strips = np.log(np.maximum(correlation_lengths(images, labels, BANDS), 1e-9))
    sd = np.sqrt(np.mean(np.var(strips, axis=-1, ddof=1)) / BANDS)
    means = np.log(np.maximum(lengths, 1e-9)).mean(axis=(0, 2, 3))
    return float((means.max() - means.min()) / max(sd, 1e-9))


def is_anisotropic(scales):
    """Whether a start should be stretched: the factors differ by :data:`MIN_STRETCH` or more."""
    return scales is not None and max(scales) / min(scales) >= MIN_STRETCH


def isotropized(images, scales):
    """The three slices resampled by the inverse stretch of the axes they see (each label's
    indicator interpolated linearly, the most likely label kept)."""
    resampled = []
    for normal, image in enumerate(images):
        factors = [1.0 / scales[a] for a in range(3) if a != normal]
        labels = np.unique(image)
        stack = np.stack([ndimage.zoom((image == label).astype(np.float32), factors, order=1) for label in labels])
        resampled.append(labels[np.argmax(stack, axis=0)])
    return resampled


def shrunk_shape(shape, scales):
    """The isotropic box that :func:`stretched` turns into ``shape`` (and more, cropped): no side narrower than the
    output's narrowest (a periodic box as narrow as ``shape / scales`` cut the long chords of a
    1:2:4 material by a fifth), so an axis stretched less than the most is shrunk."""
    widen = min(shape) / min(n / s for n, s in zip(shape, scales))
    return tuple(max(MIN_SIDE, round(n / s * max(1.0, widen))) for n, s in zip(shape, scales))


def stretched(cut, scales, shape, fraction=None):
    """A boolean isotropic box stretched by ``scales`` (trilinear) and cropped to ``shape``, with
    ``fraction`` of it set (default: the box's; resampled slices' fractions drift a little)."""
    full = tuple(max(n, round(m * s)) for m, s, n in zip(cut.shape, scales, shape))
    values = F.interpolate(torch.as_tensor(cut, dtype=torch.float32)[None, None], size=full, mode="trilinear")
    fraction = float(np.mean(cut)) if fraction is None else fraction
    return lowest(-values[0, 0, : shape[0], : shape[1], : shape[2]].numpy(), fraction)
