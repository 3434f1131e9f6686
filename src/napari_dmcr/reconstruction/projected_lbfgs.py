"""Box-constrained limited-memory quasi-Newton minimization that stays on the variable's device.

A projected L-BFGS in the manner of Kim, Sra and Dhillon (Optim. Methods Softw. 25 (2010)
"Tackling box-constrained optimization via a new projected quasi-Newton approach"): at each
iteration

1. the *binding set* holds the variables at a bound whose gradient pushes them outward; they stay
   put, like the variables L-BFGS-B fixes at its generalized Cauchy point;
2. the L-BFGS two-loop recursion on the free variables gives the search direction (a direction
   that does not descend resets the history to steepest descent);
3. the segment from ``x`` to the projected quasi-Newton point ``clamp(x + d, lower, upper)`` lies in
   the box; a backtracking line search along it accepts the first step with sufficient decrease
   (Armijo, full step first), shrinking by safeguarded quadratic interpolation (at most
   :data:`MAX_LINE_SEARCH` evaluations);
4. the pair ``(s, y)`` enters the history when its curvature ``s.y`` is positive.

Why this and not a port of L-BFGS-B's Cauchy point and subspace step: the fields have hundreds of
thousands to millions of variables, most inside (0, 1); the binding set gives the same fixed
variables at the cost of two comparisons, and every operation is an elementwise or dot product on
the device, so nothing is copied to the host but the loss each line-search trial needs.

The stopping rules are SciPy's: ``max_iter`` iterations, ``max_evaluations`` evaluations, the
relative reduction ``(f_k - f_k+1) / max(|f_k|, |f_k+1|, 1) <= ftol``, or the projected gradient's
largest entry at most ``pgtol``.

Examples
--------
>>> import torch
>>> target = torch.tensor([-1.0, 0.5, 2.0], dtype=torch.float64)
>>> def fun(x):
...     return float(((x - target) ** 2).sum()), 2 * (x - target)
>>> x, info = minimize_box(fun, torch.zeros(3, dtype=torch.float64), 0.0, 1.0)
>>> x.tolist(), info["reason"]
([0.0, 0.5, 1.0], 'projected gradient')
"""

from __future__ import annotations

import torch

MAX_LINE_SEARCH = 20  # evaluations of one line search before the history is reset
ARMIJO = 1e-4  # sufficient-decrease constant


def _two_loop(gradient, free, history):
    """``-H gradient`` on the free variables from the (s, y, 1 / s.y) pairs of ``history``."""
    q = gradient * free
    alphas = []
    for s, y, rho in reversed(history):
        alpha = rho * torch.dot(s, q)
        q -= alpha * y
        alphas.append(alpha)
    if history:
        s, y, _ = history[-1]
        q *= torch.dot(s, y) / torch.dot(y, y)
    for (s, y, rho), alpha in zip(history, reversed(alphas)):
        q += (alpha - rho * torch.dot(y, q)) * s
    return -q * free


def _backtrack(value, trial_value, slope):
    """The factor of the next trial step: the minimizer of the quadratic through the value, the
    slope and the failed trial's value, kept within [0.1, 0.5] (a safeguarded interpolation)."""
    curvature = trial_value - value - slope
    if curvature <= 0 or slope >= 0:
        return 0.5
    return min(0.5, max(0.1, -slope / (2 * curvature)))


def _binding(x, gradient, lower, upper):
    """True where a variable sits at a bound and its gradient points out of the box."""
    return ((x <= lower) & (gradient > 0)) | ((x >= upper) & (gradient < 0))


def minimize_box(fun, x0, lower=-float("inf"), upper=float("inf"), *, max_iter=100, max_evaluations=None,
                 history_size=20, ftol=1e-15, pgtol=1e-12, callback=None):  # fmt: skip
    """Minimize ``fun`` over the box ``lower <= x <= upper`` (projected L-BFGS).

    Parameters
    ----------
    fun : callable
        ``fun(x) -> (value, gradient)``: a float and a tensor shaped like ``x``. It may raise to
        stop the run (the exception propagates).
    x0 : torch.Tensor
        Start (projected onto the box first); its device and dtype are used throughout.
    lower, upper : float
        Bounds of every variable (infinite: unbounded).
    max_iter : int
        Largest number of iterations.
    max_evaluations : int, optional
        Largest number of calls of ``fun`` (default ``3 * max_iter``).
    history_size : int
        Correction pairs kept (SciPy's ``maxcor``).
    ftol, pgtol : float
        Stop when the relative reduction is at most ``ftol`` or the projected gradient's largest
        entry is at most ``pgtol``.
    callback : callable, optional
        ``callback(iteration, evaluations, value)`` after every iteration.

    Returns
    -------
    x : torch.Tensor
        The last accepted iterate (inside the box).
    info : dict
        ``value``, ``iterations``, ``evaluations`` and ``reason`` (why it stopped).
    """
    max_evaluations = 3 * max_iter if max_evaluations is None else max_evaluations
    shape = x0.shape

    def flat_fun(flat):
        value, gradient = fun(flat.view(shape))
        return value, gradient.reshape(-1)

    x, info = _minimize_flat(flat_fun, x0.detach().reshape(-1).clone().clamp_(lower, upper), lower, upper,
                             max_iter, max_evaluations, history_size, ftol, pgtol, callback)  # fmt: skip
    return x.view(shape), info


def _minimize_flat(fun, x, lower, upper, max_iter, max_evaluations, history_size, ftol, pgtol, callback):
    value, gradient = fun(x)
    info = {"value": value, "iterations": 0, "evaluations": 1, "reason": "max_iter"}
    history = []
    while info["iterations"] < max_iter:
        if float((x - (x - gradient).clamp(lower, upper)).abs().max()) <= pgtol:
            info["reason"] = "projected gradient"
            break
        segment = _segment(x, gradient, history, lower, upper)
        accepted = _line_search(fun, x, value, gradient, segment, max_evaluations - info["evaluations"], info)
        if accepted is None:
            if history and info["evaluations"] < max_evaluations:
                history.clear()  # a stale curvature model: try steepest descent once more
                continue
            info["reason"] = "max_evaluations" if info["evaluations"] >= max_evaluations else "line search"
            break
        trial, trial_value, trial_gradient = accepted
        s, y = trial - x, trial_gradient - gradient
        curvature = float(torch.dot(s, y))
        if curvature > 1e-10 * float(torch.dot(y, y)):
            history.append((s, y, 1.0 / curvature))
            del history[:-history_size]
        reduction = (value - trial_value) / max(abs(value), abs(trial_value), 1.0)
        x, value, gradient = trial, trial_value, trial_gradient
        info["iterations"] += 1
        info["value"] = value
        if callback is not None:
            callback(info["iterations"], info["evaluations"], value)
        if reduction <= ftol:
            info["reason"] = "ftol"
            break
        if info["evaluations"] >= max_evaluations:
            info["reason"] = "max_evaluations"
            break
    return x, info


def _segment(x, gradient, history, lower, upper):
    """The step to the projected quasi-Newton point: ``clamp(x + d, lower, upper) - x``, with d the
    L-BFGS direction on the free variables (steepest descent, at most one unit long, when the
    history is empty or its direction does not descend). The segment lies in the box."""
    free = (~_binding(x, gradient, lower, upper)).to(x.dtype)
    direction = _two_loop(gradient, free, history)
    if history:
        segment = (x + direction).clamp(lower, upper) - x
        if float(torch.dot(segment, gradient)) < 0:
            return segment
        history.clear()
    direction = -gradient * free
    direction /= max(1.0, float(direction.abs().max()))
    return (x + direction).clamp(lower, upper) - x


def _line_search(fun, x, value, gradient, segment, budget, info):
    """The first point ``x + t * segment`` (t = 1, then shrinking) with sufficient decrease, as
    ``(point, value, gradient)``, or None when :data:`MAX_LINE_SEARCH` trials or ``budget`` run out."""
    slope = float(torch.dot(gradient, segment))
    step = 1.0
    for _ in range(min(MAX_LINE_SEARCH, budget)):
        trial = x + step * segment
        trial_value, trial_gradient = fun(trial)
        info["evaluations"] += 1
        if trial_value <= value + ARMIJO * step * slope:
            return trial, trial_value, trial_gradient
        step *= _backtrack(value, trial_value, step * slope)
    return None
