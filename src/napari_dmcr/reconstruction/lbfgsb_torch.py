"""L-BFGS-B in torch: box-constrained limited-memory BFGS whose state stays on the variable's device.

Each iteration follows Byrd, Lu, Nocedal and Zhu (1995) as SciPy's L-BFGS-B does:

1. the generalized Cauchy point along the projected gradient path and a step over the variables
   it leaves free, towards the minimizer of the quadratic model in their subspace, projected
   onto the box (:mod:`~napari_dmcr.reconstruction.cauchy`; steepest descent, at most one unit
   long, while the history is empty);
2. a line search along the segment to that point, full step first, for the strong Wolfe
   conditions with SciPy's constants: growing up to the box's edge while the slope stays steep
   (not past the unit step of steepest descent in a box, as in SciPy's first iteration),
   shrinking a bracket by safeguarded cubic interpolation (a simplified More-Thuente search), at
   most :data:`MAX_LINE_SEARCH` evaluations;
3. the pair ``(s, y)`` enters the history when its curvature ``s.y`` is positive.

Field, gradient, history (a preallocated ``2m x n`` buffer) and every product over the
variables stay on the device; the host sees the loss each line-search trial needs and
``2m x 2m`` matrices. The stopping rules are SciPy's: ``max_iter`` iterations,
``max_evaluations`` evaluations, the relative reduction
``(f_k - f_k+1) / max(|f_k|, |f_k+1|, 1) <= ftol``, or the projected gradient's largest entry at
most ``pgtol``.

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

import math

import torch

from napari_dmcr.reconstruction.cauchy import CorrectionPairs, ProjectedPath, room, search_segment

MAX_LINE_SEARCH = 20  # evaluations of one line search before the history is reset
ARMIJO = 1e-3  # sufficient-decrease constant (SciPy's L-BFGS-B: ftol of its line search)
CURVATURE = 0.9  # strong Wolfe curvature constant (SciPy's gtol of its line search)


def minimize_box(fun, x0, lower=-float("inf"), upper=float("inf"), *, max_iter=100, max_evaluations=None,
                 history_size=20, ftol=1e-15, pgtol=1e-12, callback=None):  # fmt: skip
    """Minimize ``fun`` over the box ``lower <= x <= upper`` (L-BFGS-B).

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
    history = CorrectionPairs(x.numel(), history_size, x.dtype, x.device)
    path = ProjectedPath(x, gradient, lower, upper)
    constrained = lower > -math.inf or upper < math.inf
    while info["iterations"] < max_iter:
        if float((x - (x - gradient).clamp(lower, upper)).abs().max()) <= pgtol:
            info["reason"] = "projected gradient"
            break
        segment = _segment(path, history)
        # Steepest descent in a box takes at most its unit step, as SciPy's first iteration does
        # (its stpmax is 1 there; a restart here is capped alike): growing it costs evaluations
        # the next iterations use better.
        longest = 1.0 if not history and constrained else None
        budget = max_evaluations - info["evaluations"]
        accepted = _line_search(fun, x, value, gradient, segment, budget, info, (lower, upper), longest)
        if accepted is None:
            if history and info["evaluations"] < max_evaluations:
                history.clear()  # a stale curvature model: try steepest descent once more
                continue
            info["reason"] = "max_evaluations" if info["evaluations"] >= max_evaluations else "line search"
            break
        trial, trial_value, trial_gradient = accepted
        s, y = trial - x, trial_gradient - gradient
        curvature = float(torch.dot(s, y))
        path = ProjectedPath(trial, trial_gradient, lower, upper)
        if curvature > 1e-10 * float(torch.dot(y, y)):
            history.add(s, y, curvature, path)
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


def _segment(path, history):
    """The step to the next trial point from ``path``'s point, ``x_bar - x`` (it lies in the
    box): L-BFGS-B's search direction, or projected steepest descent, at most one unit long,
    without a usable history."""
    if history:
        segment = search_segment(path, history)
        if float(torch.dot(segment, path.gradient)) < 0:
            return segment
        history.clear()
    direction = -path.moving_gradient  # held variables stay put
    direction /= max(1.0, float(direction.abs().max()))
    return (path.x + direction).clamp(path.lower, path.upper) - path.x


def _line_search(fun, x, value, gradient, segment, budget, info, bounds, longest=None):
    """A point ``x + t * segment`` with the strong Wolfe conditions, as ``(point, value,
    gradient)``; the best point with sufficient decrease when :data:`MAX_LINE_SEARCH` trials or
    ``budget`` run out (None without one).

    Full step first. A step that still descends steeply grows towards the box's edge along the
    segment (as SciPy's search may, up to its ``stpmax``), or up to ``longest`` when given; a
    rejected one shrinks the bracket to the safeguarded minimizer of the cubic through both ends'
    values and slopes (a simplified More-Thuente search, SciPy's constants).
    """
    lower, upper = bounds
    slope = float(torch.dot(gradient, segment))
    lo, hi, step, best = (0.0, value, slope), None, 1.0, None
    for _ in range(min(MAX_LINE_SEARCH, budget)):
        trial = (x + step * segment).clamp_(lower, upper)
        trial_value, trial_gradient = fun(trial)
        info["evaluations"] += 1
        trial_slope = float(torch.dot(trial_gradient, segment))
        decrease = trial_value <= value + ARMIJO * step * slope
        if decrease and abs(trial_slope) <= CURVATURE * abs(slope):
            return trial, trial_value, trial_gradient
        if decrease and trial_slope < 0:  # still steep: the step may grow up to the box's edge
            if longest is None:
                longest = max(1.0, room(x, segment, lower, upper))  # the segment's end is in the box
            if step >= longest:
                return trial, trial_value, trial_gradient
        if decrease and (best is None or trial_value < best[1]):
            best = trial, trial_value, trial_gradient
        if decrease and trial_slope < 0:
            lo = (step, trial_value, trial_slope)
        else:
            hi = (step, trial_value, trial_slope)
        step = _cubic_step(lo, hi) if hi is not None else min(longest, 4.0 * step)
    return best


def _cubic_step(lo, hi):
    """The minimizer of the cubic through ``(t, f, f')`` at both ends, kept 10 % inside them."""
    (a, fa, da), (b, fb, db) = lo, hi
    d1 = da + db - 3 * (fa - fb) / (a - b)
    root = d1 * d1 - da * db
    if root < 0:
        step = 0.5 * (a + b)
    else:
        d2 = (1 if b > a else -1) * root**0.5
        denominator = db - da + 2 * d2
        step = b - (b - a) * (db + d2 - d1) / denominator if denominator else 0.5 * (a + b)
    low, high = sorted((a, b))
    margin = 0.1 * (high - low)
    return min(max(step, low + margin), high - margin)
