"""Preconditioned conjugate gradients, the one solver of both property solves."""

from __future__ import annotations

import math


def conjugate_gradients(apply, precondition, dot, b, tolerance, max_iter, cancel=None, check_every=1):
    """Solve ``A x = b`` for a symmetric positive (semi-)definite ``A``, from ``x = 0``.

    Parameters
    ----------
    apply, precondition : callable
        ``A p`` and ``M^-1 r`` (tensors shaped like ``b``; they may return buffers of their own,
        each used before the next call).
    dot : callable
        The inner product, as a float.
    b : torch.Tensor
    tolerance : float
        Stop when the residual's norm is at most ``tolerance`` times ``b``'s.
    max_iter : int
    cancel : CancelToken, optional
        Checked with the residual.
    check_every : int
        Iterations between residual checks (each one more inner product).

    Returns
    -------
    x : torch.Tensor
    iterations : int
    residual : float
        The updated residual's norm over ``b``'s at the last check (0 for ``b = 0``).
    """
    x, r = b.new_zeros(b.shape), b.clone()
    norm_b = math.sqrt(dot(b, b))
    if norm_b == 0:
        return x, 0, 0.0
    p = precondition(r).clone()
    rz = dot(r, p)
    iterations, residual = 0, 1.0
    while iterations < max_iter and rz > 0:  # rz = 0: solved exactly (one straight channel)
        ap = apply(p)
        alpha = rz / dot(p, ap)
        x.add_(p, alpha=alpha)
        r.add_(ap, alpha=-alpha)
        iterations += 1
        if iterations % check_every == 0:
            residual = math.sqrt(dot(r, r)) / norm_b
            if residual <= tolerance:
                break
            if cancel is not None:
                cancel.raise_if_cancelled()
        z = precondition(r)
        rz, rz_old = dot(r, z), rz
        p.mul_(rz / rz_old).add_(z)
    return x, iterations, residual
