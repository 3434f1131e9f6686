"""A start with the material's shapes: the level cut of a Gaussian random field fitted to S2.

A two-phase material is modelled as the set where a stationary Gaussian random field g (zero
mean, unit variance, correlation rho(r)) lies below ``t = Phi^-1(fraction)`` (Quiblier, J.
Colloid Interface Sci. 98 (1984) 84-102; Adler, Jacquin and Quiblier, Int. J. Multiphase Flow
16 (1990) 691-712). Its two-point function is the bivariate normal orthant probability

    S2(r) = Phi2(t, t; rho(r)) = Phi(t)^2 + 1/(2 pi) * integral_0^asin(rho) exp(-t^2 / (1 + sin a)) da,

which increases with rho, so the target's radial S2 gives rho(r) lag by lag. rho is then fitted
by a non-negative mixture of Gaussian correlations ``exp(-r^2 / (4 s^2))`` (that of white noise
filtered by a Gaussian of width s), which keeps it a valid correlation in every dimension and
drops the lag-to-lag noise of one image. The field is the matching mixture of filtered white
noises, cut at the rank that gives the exact phase fraction.

The cut is isotropic, has no axis-aligned features, and carries the target's length scales in
3D; the optimizer then only corrects what S2 and a Gaussian model miss. It replaces the
coarse-to-fine levels of a random start: :func:`reconstruct` starts from it by default.

Examples
--------
>>> import numpy as np
>>> image = (np.add.outer(np.arange(32), np.arange(32)) % 8 < 3).astype(np.uint8)
>>> cut = gaussian_level_cut([image], 1, (16, 16, 16), seed=0)
>>> cut.shape, cut.dtype, round(float(cut.mean()), 3)
((16, 16, 16), dtype('bool'), 0.375)
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch
from scipy import optimize, special

from napari_dmcr.descriptors.two_point import s2_radial
from napari_dmcr.labels import distinct_images
from napari_dmcr.reconstruction.field_maps import periodic_gaussian

WIDTHS = np.geomspace(1.5, 32.0, 30)  # filter widths of the correlation mixture, in voxels (narrower ones
# fit the pixel steps of the target's interfaces and come out as specks: fidelity3d.json notes)
MIN_WEIGHT = 1e-3  # mixture weights below this are dropped
S2_CACHE_SIZE = 8
_S2_CACHE = {}


def gaussian_correlation(s2, fraction):
    """The correlation rho(r) of the Gaussian field whose level cut has two-point function ``s2``.

    Parameters
    ----------
    s2 : array_like
        S2 of the phase at each lag (S2 at lag 0 is the fraction).
    fraction : float
        Phase fraction, in (0, 1).

    Returns
    -------
    numpy.ndarray
        rho per lag, in [-1, 1] (lags whose S2 is out of the reachable range are clipped).
    """
    threshold = special.ndtri(fraction)
    angles = np.linspace(-np.pi / 2, np.pi / 2, 4001)
    integrand = np.exp(-(threshold**2) / np.maximum(1.0 + np.sin(angles), 1e-300))
    steps = 0.5 * (integrand[1:] + integrand[:-1]) * np.diff(angles)
    integral = np.concatenate([[0.0], np.cumsum(steps)])
    integral -= np.interp(0.0, angles, integral)  # from 0 to asin(rho)
    table = fraction**2 + integral / (2 * np.pi)
    return np.sin(np.interp(np.asarray(s2, float), table, angles))


def correlation_mixture(rho):
    """Non-negative weights over :data:`WIDTHS` whose Gaussian correlations fit ``rho``.

    Returns ``(widths, weights)`` of the kept terms (weights sum to about 1, rho(0) = 1).
    """
    lags = np.arange(len(rho), dtype=float)
    basis = np.exp(-(lags[:, None] ** 2) / (4 * WIDTHS[None, :] ** 2))
    row_weights = np.ones(len(rho))
    row_weights[0] = 30.0  # rho(0) = 1 holds nearly exactly: the field has unit variance
    weights, _ = optimize.nnls(basis * row_weights[:, None], np.asarray(rho, float) * row_weights)
    keep = weights >= MIN_WEIGHT
    return WIDTHS[keep], weights[keep] / weights[keep].sum()


def target_s2(images, phase, periodic=False, longest=None):
    """Radial S2 of ``phase`` averaged over the target images, up to half the smallest side, and
    at most to ``longest`` (a start's largest side: longer correlations cannot show in it, and a
    CT slice thousands of pixels wide would make every lag's FFT that much larger).

    The last few results are kept by the images' contents: every candidate start fits the same
    target's S2 (seconds each for a 5000-pixel slice).
    """
    images = distinct_images(images)
    max_lag = (min(min(image.shape) for image in images) - 1) // 2  # periodic lags stay below half
    max_lag = max_lag if longest is None else min(max_lag, int(longest))
    key = (tuple(_digest(np.asarray(image) == phase) for image in images), bool(periodic))
    profile = _S2_CACHE.get(key)
    if profile is None or profile.size <= max_lag:  # a longer profile holds the shorter one
        fields = [torch.as_tensor(np.asarray(image) == phase, dtype=torch.float64) for image in images]
        profile = torch.stack([s2_radial(field, max_lag, periodic) for field in fields]).mean(0).numpy()
        _S2_CACHE.pop(key, None)
        _S2_CACHE[key] = profile
        while len(_S2_CACHE) > S2_CACHE_SIZE:
            _S2_CACHE.pop(next(iter(_S2_CACHE)), None)  # the oldest
    return profile[: max_lag + 1].copy()


def _digest(mask):
    """A boolean image by its shape and a hash of its bits."""
    return mask.shape, hashlib.blake2b(np.packbits(mask)).hexdigest()


def gaussian_level_cut(images, phase, shape, seed=0, *, periodic=False, longest=None):
    """A boolean 2D/3D image of ``phase``: the level cut of a Gaussian field fitted to the targets.

    Parameters
    ----------
    images : list of numpy.ndarray
        Labeled 2D target images (one, or one per direction); their mean radial S2 is fitted.
    phase : int
        The label whose set is returned.
    shape : tuple of int
        Output shape (periodic).
    seed : int
        Seed of the white noises.
    periodic : bool
        Treat the target images as periodic.
    longest : int, optional
        Largest S2 lag fitted (default: the largest side of ``shape``; see :func:`target_s2`).

    Returns
    -------
    numpy.ndarray of bool
        True on ``round(fraction * size)`` voxels, the lowest values of the field.
    """
    s2 = target_s2(images, phase, periodic, longest=longest or max(shape))
    return lowest(fitted_field(s2, shape, seed), float(s2[0]))


def fitted_field(s2, shape, seed=0):
    """A Gaussian field (zero mean, unit variance) whose cut at the fraction ``s2[0]`` has the
    radial two-point function ``s2`` (lags 0, 1, ...): the values, cut by :func:`lowest`."""
    widths, weights = correlation_mixture(gaussian_correlation(s2, float(s2[0])))
    generator = torch.Generator().manual_seed(int(seed))
    field = torch.zeros(shape, dtype=torch.float64)
    for width, weight in zip(widths, weights):
        filtered = periodic_gaussian(torch.randn(shape, generator=generator, dtype=torch.float64), width)
        field += np.sqrt(weight) * filtered / filtered.std()
    return field.numpy()


def lowest(values, fraction):
    """True on the ``round(fraction * size)`` lowest values (ties in index order): an exact fraction."""
    cut = np.zeros(values.size, bool)
    cut[np.argsort(values, axis=None, kind="stable")[: round(fraction * values.size)]] = True
    return cut.reshape(values.shape)
