"""The device-side projected L-BFGS against SciPy's L-BFGS-B and closed-form minimizers."""

import pytest
import scipy.optimize
import torch

from napari_dmcr.reconstruction import run_reconstruction
from napari_dmcr.reconstruction.optimizers import StopOptimization, run_projected_lbfgs
from napari_dmcr.reconstruction.projected_lbfgs import minimize_box
from napari_dmcr.samples import conglomerate_slice


def _scipy(fun, x0, lower, upper):
    def numpy_fun(x):
        value, gradient = fun(torch.from_numpy(x))
        return value, gradient.numpy()

    options = {"maxiter": 5000, "maxfun": 15000, "ftol": 1e-15, "gtol": 1e-12, "maxcor": 20}
    result = scipy.optimize.minimize(
        numpy_fun, x0.numpy(), jac=True, method="L-BFGS-B", bounds=scipy.optimize.Bounds(lower, upper), options=options
    )
    return torch.from_numpy(result.x)


def _projected_gradient(fun, x, lower, upper):
    return float((x - (x - fun(x)[1]).clamp(lower, upper)).abs().max())


def _quadratic(seed, n=40):
    generator = torch.Generator().manual_seed(seed)
    a = torch.randn(n, n, generator=generator, dtype=torch.float64)
    hessian = a @ a.T / n + 0.1 * torch.eye(n, dtype=torch.float64)
    linear = 3 * torch.randn(n, generator=generator, dtype=torch.float64)

    def fun(x):
        return float(0.5 * x @ hessian @ x - linear @ x), hessian @ x - linear

    return fun


def _rosenbrock(x):
    x = x.detach().clone().requires_grad_(True)
    value = (100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum()
    value.backward()
    return float(value.detach()), x.grad


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_quadratic_with_active_bounds_matches_scipy(seed):
    fun = _quadratic(seed)
    x0 = torch.full((40,), 0.5, dtype=torch.float64)
    x, info = minimize_box(fun, x0, 0.0, 1.0, max_iter=1000)
    reference = _scipy(fun, x0, 0.0, 1.0)
    at_bounds = int(((reference == 0) | (reference == 1)).sum())
    assert at_bounds >= 5  # the bounds matter
    assert torch.allclose(x, reference, atol=1e-5)
    assert _projected_gradient(fun, x, 0.0, 1.0) < 1e-5
    assert info["reason"] in ("ftol", "projected gradient")


@pytest.mark.parametrize(("lower", "upper"), [(-2.0, 2.0), (-1.0, 0.5), (-3.0, 3.0)])
def test_rosenbrock_in_a_box_matches_scipy(lower, upper):
    x0 = torch.linspace(-1, 1, 10, dtype=torch.float64).clamp(lower, upper)
    x, _ = minimize_box(_rosenbrock, x0, lower, upper, max_iter=2000)
    reference = _scipy(_rosenbrock, x0, lower, upper)
    assert torch.allclose(x, reference, atol=1e-4)
    if upper >= 1:  # the unconstrained minimizer, all ones, lies in the box
        assert torch.allclose(x, torch.ones(10, dtype=torch.float64), atol=1e-4)


def test_bounds_hold_at_every_evaluation_and_evaluations_are_counted():
    seen = []

    def fun(x):
        seen.append(x.clone())
        return _rosenbrock(x)

    x0 = torch.linspace(-1, 1, 10, dtype=torch.float64)
    x, info = minimize_box(fun, x0, -0.5, 0.8, max_iter=25, max_evaluations=40)
    assert info["evaluations"] == len(seen) <= 40
    assert all(float(s.min()) >= -0.5 and float(s.max()) <= 0.8 for s in seen)
    assert info["iterations"] <= 25
    assert float(x.min()) >= -0.5 and float(x.max()) <= 0.8


def test_keeps_the_shape_and_device_of_the_variable():
    target = torch.rand(3, 4, 5, dtype=torch.float32, generator=torch.Generator().manual_seed(0)) * 1.4 - 0.2

    def fun(x):
        return float(((x - target) ** 2).sum()), 2 * (x - target)

    x, _ = minimize_box(fun, torch.zeros(3, 4, 5), 0.0, 1.0, max_iter=50)
    assert x.shape == (3, 4, 5) and x.dtype == torch.float32
    assert torch.allclose(x, target.clamp(0, 1), atol=1e-5)


def test_a_stop_from_the_iteration_callback_keeps_the_best_state():
    target = torch.linspace(-1, 2, 30, dtype=torch.float64)
    variable = torch.zeros(30, dtype=torch.float64, requires_grad=True)
    calls = []

    def evaluate(v):
        v.grad = None
        loss = ((v - target) ** 2).sum()
        loss.backward()
        calls.append(float(loss.detach()))
        return calls[-1], {"l2": calls[-1]}

    def on_iteration(iteration, evaluations, loss, errors):
        if iteration == 2:
            raise StopOptimization()

    loss, evaluations = run_projected_lbfgs(variable, evaluate, on_iteration, max_iter=100, bounded=True)
    assert evaluations == len(calls) and loss == min(calls)
    assert float(((variable.detach() - target) ** 2).sum()) == pytest.approx(loss)
    assert float(variable.min()) >= 0 and float(variable.max()) <= 1


def test_reconstruction_with_the_projected_optimizer():
    target = conglomerate_slice((32, 32), seed=0)
    options = {"seed": 0, "device": "cpu", "max_iter": 40, "start": "random", "multigrid_levels": 1, "sharpen": 0}
    ours = run_reconstruction(target, (12, 12, 12), optimizer="projected-lbfgs", **options)
    scipy_run = run_reconstruction(target, (12, 12, 12), optimizer="lbfgsb", **options)
    assert ours.parameters["optimizer"] == "projected-lbfgs"
    assert ours.fractions == scipy_run.fractions  # exact fractions either way
    assert ours.history[0]["residual"] > ours.history[-1]["residual"]
    assert ours.residual < 2 * scipy_run.residual  # same problem, a comparable optimizer
