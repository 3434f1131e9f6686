"""Volume fraction and the two-point correlation S2 by FFT.

S2(r) is the probability that two points a vector r apart both lie in the phase, estimated as
``mean_p x(p) x(p + r)`` over the positions p for which p + r is inside the image (non-periodic)
or over all p with wrap-around (periodic). Torquato's convention follows: S2(0) = phi and
S2(r) -> phi^2 for uncorrelated far points. On a relaxed field the same product formula is
smooth (quadratic) and equals the exact S2 on binary input.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from napari_dmcr.descriptors.fields import batched
from napari_dmcr.errors import InputError


@batched
def volume_fraction(field):
    """Fraction of the phase: the mean of the field.

    Parameters
    ----------
    field : array_like or torch.Tensor, shape (h, w) or (n, h, w)

    Returns
    -------
    float array of shape () or (n,)
    """
    return field.mean(dim=(-2, -1))


def check_max_lag(shape, max_lag, periodic):
    """Validate a lag range against an image shape; return it as an int."""
    max_lag = int(max_lag)
    limit = (min(shape) - 1) // 2 if periodic else min(shape) - 1
    if max_lag < 1 or max_lag > limit:
        raise InputError(
            f"max_lag={max_lag} does not fit an image of shape {tuple(shape)}: use 1 to {limit}"
            + (" (periodic lags must stay below half the image size)" if periodic else "")
        )
    return max_lag


@batched
def s2_map(field, max_lag, periodic=True):
    """The two-point correlation map S2(r) for all lags ``|r_0|, |r_1| <= max_lag``.

    Parameters
    ----------
    field : array_like or torch.Tensor, shape (h, w) or (n, h, w)
        Indicator field(s) in [0, 1].
    max_lag : int
        Largest lag per axis, in pixels.
    periodic : bool
        Wrap around the image edges (for periodic images such as reconstructions); otherwise
        zero-pad and divide each lag by its number of pixel pairs inside the image.

    Returns
    -------
    float array of shape (2L+1, 2L+1) or (n, 2L+1, 2L+1)
        ``map[..., L + r0, L + r1] = S2((r0, r1))``; the centre is S2(0) = phi.
    """
    h, w = field.shape[-2:]
    lag = check_max_lag((h, w), max_lag, periodic)
    size = (h, w) if periodic else (h + lag, w + lag)
    spectrum = torch.fft.rfft2(field, s=size)
    correlation = torch.fft.irfft2(spectrum * spectrum.conj(), s=size)
    # Lags -L..L sit at both ends of the circular correlation; rolling brings them together
    # (unlike fancy indexing, with a deterministic backward pass on CUDA).
    window = torch.roll(correlation, shifts=(lag, lag), dims=(-2, -1))[..., : 2 * lag + 1, : 2 * lag + 1]
    return window / _pair_counts(h, w, lag, periodic, field.dtype, field.device)


@batched
def s2_axis_profiles(field, max_lag, periodic=True):
    """S2 along the two image axes: ``S2((r, 0))`` and ``S2((0, r))`` for r = 0..max_lag.

    Returns
    -------
    float array of shape (2, L+1) or (n, 2, L+1)
        Row 0: lags along image axis 0 (rows); row 1: lags along axis 1 (columns).
    """
    maps = s2_map(field, max_lag, periodic)
    lag = maps.shape[-1] // 2
    return torch.stack((maps[..., lag:, lag], maps[..., lag, lag:]), dim=-2)


@batched
def s2_radial(field, max_lag, periodic=True):
    """Radially averaged S2: the mean of S2(r) over lags with ``round(|r|) = k``, k = 0..max_lag.

    Returns
    -------
    float array of shape (L+1,) or (n, L+1)
    """
    maps = s2_map(field, max_lag, periodic)
    lag = maps.shape[-1] // 2
    averaging = _radial_averaging(lag).to(dtype=maps.dtype, device=maps.device)
    return maps.flatten(-2) @ averaging


@functools.lru_cache(maxsize=32)
def _radial_averaging(lag):
    """Matrix that averages a flattened (2L+1)^2 lag map into radial bins 0..L."""
    offsets = np.arange(-lag, lag + 1)
    radius = np.rint(np.hypot(offsets[:, None], offsets[None, :])).astype(int).ravel()
    matrix = np.zeros((radius.size, lag + 1))
    inside = radius <= lag
    matrix[np.flatnonzero(inside), radius[inside]] = 1.0
    return torch.as_tensor(matrix / matrix.sum(axis=0))


def _pair_counts(h, w, lag, periodic, dtype, device):
    """Number of pixel pairs contributing to each lag of the (2L+1)^2 window."""
    if periodic:
        return torch.tensor(float(h * w), dtype=dtype, device=device)
    offsets = torch.arange(-lag, lag + 1, dtype=dtype, device=device).abs()
    return (h - offsets)[:, None] * (w - offsets)[None, :]
