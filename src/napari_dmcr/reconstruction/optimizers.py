"""Optimizers over a torch variable, driven by a loss-and-gradient function.

``lbfgsb`` is SciPy's L-BFGS-B: box bounds are respected exactly (no penalty); the field and its
gradient travel to the host and back every evaluation. ``lbfgsb-torch`` is the same algorithm
written in torch (:mod:`~napari_dmcr.reconstruction.lbfgsb_torch`), whose state stays on the
field's device. For both, ``max_iter`` counts optimizer iterations; each iteration
costs one or more function evaluations (line search), capped at
``MAX_EVALUATIONS_PER_ITERATION * max_iter``. ``adam`` is torch's Adam, one evaluation per
iteration, with the field clamped to the bounds after each step.

All call ``evaluate(variable)`` (loss, per-descriptor errors; gradient in ``variable.grad``) and
``on_iteration(iteration, evaluations, loss, errors)`` after every iteration; the latter may
raise :class:`StopOptimization` to end the run early (target accuracy reached).
"""

from __future__ import annotations

import contextlib

import numpy as np
import scipy.optimize
import torch

from napari_dmcr.reconstruction.lbfgsb_torch import minimize_box

MAX_EVALUATIONS_PER_ITERATION = 3
HISTORY_SIZE = 20  # correction pairs kept by either L-BFGS-B (SciPy's maxcor)


class StopOptimization(Exception):
    """Raised by a callback to end an optimization early."""


class BestState:
    """The lowest-loss variable seen in any evaluation (line-search trials included)."""

    def __init__(self):
        self.loss = np.inf
        self.value = None

    def offer(self, loss, variable):
        if loss < self.loss:
            self.loss = loss
            self.value = variable.detach().clone()

    @contextlib.contextmanager
    def kept_in(self, variable):
        """Around an optimization: a :class:`StopOptimization` ends it, and ``variable`` ends at
        the best state seen (whatever ended the run)."""
        try:
            yield
        except StopOptimization:
            pass
        finally:
            if self.value is not None:
                with torch.no_grad():
                    variable.copy_(self.value)


def run_lbfgsb(variable, evaluate, on_iteration, max_iter, bounded):
    """Minimize with L-BFGS-B; ``variable`` ends at the best state seen."""
    best = BestState()
    state = {"evaluations": 0, "iteration": 0, "last": (np.inf, {})}

    def fun(flat):
        with torch.no_grad():
            variable.copy_(torch.from_numpy(flat.reshape(variable.shape)).to(variable))
        loss, errors = evaluate(variable)
        state["evaluations"] += 1
        state["last"] = (loss, errors)
        best.offer(loss, variable)
        return loss, variable.grad.detach().cpu().double().numpy().ravel()

    def callback(intermediate_result):
        state["iteration"] += 1
        loss, errors = state["last"]
        on_iteration(state["iteration"], state["evaluations"], loss, errors)

    with best.kept_in(variable):
        scipy.optimize.minimize(
            fun,
            variable.detach().cpu().double().numpy().ravel(),
            jac=True,
            method="L-BFGS-B",
            # A Bounds object, not a list of n pairs: SciPy converts lists element by element.
            bounds=scipy.optimize.Bounds(0.0, 1.0) if bounded else None,
            callback=callback,
            options={
                "maxiter": max_iter,
                "maxfun": MAX_EVALUATIONS_PER_ITERATION * max_iter,
                "ftol": 1e-15,
                "gtol": 1e-12,
                "maxcor": HISTORY_SIZE,
            },
        )
    return best.loss, state["evaluations"]


def run_lbfgsb_torch(variable, evaluate, on_iteration, max_iter, bounded):
    """Minimize with L-BFGS-B in torch (on the variable's device); ``variable`` ends at the best state seen."""
    best = BestState()
    last = {"errors": {}, "evaluations": 0}

    def fun(x):
        with torch.no_grad():
            variable.copy_(x)
        loss, errors = evaluate(variable)
        last["errors"] = errors
        last["evaluations"] += 1
        best.offer(loss, variable)
        return loss, variable.grad.detach()  # a new tensor each evaluation: the loss sets .grad to None first

    def callback(iteration, evaluations, loss):
        on_iteration(iteration, evaluations, loss, last["errors"])

    bounds = (0.0, 1.0) if bounded else (-float("inf"), float("inf"))
    with best.kept_in(variable):
        minimize_box(fun, variable.detach(), *bounds, max_iter=max_iter, callback=callback,
                     max_evaluations=MAX_EVALUATIONS_PER_ITERATION * max_iter, history_size=HISTORY_SIZE)  # fmt: skip
    return best.loss, last["evaluations"]


def run_adam(variable, evaluate, on_iteration, max_iter, bounded, learning_rate):
    """Minimize with Adam; ``variable`` ends at the best state seen."""
    best = BestState()
    optimizer = torch.optim.Adam([variable], lr=learning_rate)
    evaluations = 0
    with best.kept_in(variable):
        for iteration in range(1, max_iter + 1):
            loss, errors = evaluate(variable)
            evaluations += 1
            best.offer(loss, variable)
            optimizer.step()
            if bounded:
                with torch.no_grad():
                    variable.clamp_(0.0, 1.0)
            on_iteration(iteration, evaluations, loss, errors)
    return best.loss, evaluations
