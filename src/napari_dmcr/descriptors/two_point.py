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
from scipy.fft import next_fast_len

from napari_dmcr.descriptors.fields import batched
from napari_dmcr.errors import InputError

# Radial S2 up to this lag averages by a dense matrix (a deterministic product on CUDA, 9 MB);
# longer ranges sum bin by bin (the matrix of a 2048-pixel slice's lags would take 32 GiB).
DENSE_RADIAL_LAG = 64


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
    # Zero padding by at least the lag keeps lags from wrapping; a fast FFT length is 10x
    # quicker than an awkward one for a CT slice (5016 = 2^3 3 11 19 against 5120 = 2^10 5).
    size = (h, w) if periodic else (next_fast_len(h + lag, real=True), next_fast_len(w + lag, real=True))
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
    if lag <= DENSE_RADIAL_LAG:
        averaging = _radial_averaging(lag).to(dtype=maps.dtype, device=maps.device)
        return maps.flatten(-2) @ averaging
    bins, counts = _radial_bins(lag)
    sums = maps.new_zeros((*maps.shape[:-2], lag + 2)).index_add_(-1, bins.to(maps.device), maps.flatten(-2))
    return sums[..., : lag + 1] / counts.to(dtype=maps.dtype, device=maps.device)


@functools.lru_cache(maxsize=32)
def _radial_bins(lag):
    """The radial bin of each lag of a flattened (2L+1)^2 map (L+1 beyond L), and each bin's count."""
    offsets = np.arange(-lag, lag + 1)
    radius = np.minimum(np.rint(np.hypot(offsets[:, None], offsets[None, :])).astype(np.int64).ravel(), lag + 1)
    return torch.as_tensor(radius), torch.as_tensor(np.bincount(radius, minlength=lag + 2)[: lag + 1])


@functools.lru_cache(maxsize=32)
def _radial_averaging(lag):
    """Matrix that averages a flattened (2L+1)^2 lag map into radial bins 0..L."""
    bins, counts = _radial_bins(lag)
    inside = torch.nonzero(bins <= lag)[:, 0]
    matrix = torch.zeros((bins.numel(), lag + 1), dtype=torch.float64)
    matrix[inside, bins[inside]] = 1.0
    return matrix / counts


def _pair_counts(h, w, lag, periodic, dtype, device):
    """Number of pixel pairs contributing to each lag of the (2L+1)^2 window."""
    if periodic:
        return torch.tensor(float(h * w), dtype=dtype, device=device)
    offsets = torch.arange(-lag, lag + 1, dtype=dtype, device=device).abs()
    return (h - offsets)[:, None] * (w - offsets)[None, :]
