"""Normalized total variation: the mean absolute difference between neighbouring pixels.

    TV = 1/2 (mean |x(p + e0) - x(p)| + mean |x(p + e1) - x(p)|)

averaged over the pixel pairs along each axis (all pairs with wrap-around if periodic, the pairs
inside the image otherwise). Being a mean, it does not grow with the image size: a binary image
has TV = (interface pixel-edges) / (pixel-edges), between 0 (constant) and 1 (checkerboard);
stripes of width W give 1/(2W) (periodic).

The absolute value is replaced by ``phi(d) = (sqrt(d^2 + eps^2) - eps) / (sqrt(1 + eps^2) - eps)``,
which is smooth on relaxed fields and equals |d| exactly for d in {-1, 0, 1}, hence on binary images.
"""

from __future__ import annotations

import math

import torch

from napari_dmcr.descriptors.fields import batched


@batched
def total_variation(field, periodic=True, eps=0.05):
    """Normalized total variation of each slice.

    Parameters
    ----------
    field : array_like or torch.Tensor, shape (h, w) or (n, h, w)
    periodic : bool
        Include the wrap-around pairs between opposite edges.
    eps : float
        Smoothing of the absolute value near 0 (exact at 0 and 1 whatever its value).

    Returns
    -------
    float array of shape () or (n,)
    """
    scale = math.sqrt(1.0 + eps * eps) - eps
    means = []
    for axis in (-2, -1):
        difference = torch.roll(field, shifts=-1, dims=axis) - field if periodic else torch.diff(field, dim=axis)
        smooth_abs = (torch.sqrt(difference * difference + eps * eps) - eps) / scale
        means.append(smooth_abs.mean(dim=(-2, -1)))
    return 0.5 * (means[0] + means[1])
