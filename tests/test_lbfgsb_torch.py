"""L-BFGS-B in torch against SciPy's L-BFGS-B, closed forms and brute force."""

import math

import pytest
import scipy.optimize
import torch

from napari_dmcr.reconstruction import cauchy, run_reconstruction
from napari_dmcr.reconstruction.cauchy import CorrectionPairs
from napari_dmcr.reconstruction.lbfgsb_torch import minimize_box
from napari_dmcr.reconstruction.optimizers import StopOptimization, run_lbfgsb_torch
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

    loss, evaluations = run_lbfgsb_torch(variable, evaluate, on_iteration, max_iter=100, bounded=True)
    assert evaluations == len(calls) and loss == min(calls)
    assert float(((variable.detach() - target) ** 2).sum()) == pytest.approx(loss)
    assert float(variable.detach().min()) >= 0 and float(variable.detach().max()) <= 1


def test_reconstruction_with_the_torch_optimizer():
    target = conglomerate_slice((32, 32), seed=0)
    options = {"seed": 0, "device": "cpu", "max_iter": 40, "start": "random", "multigrid_levels": 1, "sharpen": 0}
    ours = run_reconstruction(target, (12, 12, 12), optimizer="lbfgsb-torch", **options)
    scipy_run = run_reconstruction(target, (12, 12, 12), optimizer="lbfgsb", **options)
    assert ours.parameters["optimizer"] == "lbfgsb-torch"
    assert ours.fractions == scipy_run.fractions  # exact fractions either way
    assert ours.history[0]["residual"] > ours.history[-1]["residual"]
    assert ours.residual < 1.25 * scipy_run.residual  # the same algorithm on the same problem


def _pairs(n, size, count, seed, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    pairs, kept = CorrectionPairs(n, size, dtype, "cpu"), []
    for _ in range(count):
        s = torch.randn(n, generator=generator, dtype=dtype)
        y = s * (1 + torch.rand(n, generator=generator, dtype=dtype))
        pairs.add(s, y, float(s @ y))
        kept = [*kept, (s, y)][-size:]
    return pairs, kept


def test_compact_form_is_the_bfgs_matrix_of_the_last_pairs():
    """theta I - W M W^T against m BFGS updates of theta I applied densely (ring buffer wrapped)."""
    pairs, kept = _pairs(30, 4, 7, seed=0)
    theta, w, middle = pairs.compact()
    s, y = kept[-1]
    dense = float(y @ y) / float(s @ y) * torch.eye(30, dtype=torch.float64)
    for s, y in kept:
        bs = dense @ s
        dense = dense - torch.outer(bs, bs) / (s @ bs) + torch.outer(y, y) / (y @ s)
    compact = theta * torch.eye(30, dtype=torch.float64) - w @ middle @ w.T
    assert torch.allclose(compact, dense, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    ("block", "escalate", "sample"), [(3, 16, 7), (1, 2, 7), (cauchy.BLOCK, cauchy.ESCALATE, cauchy.SAMPLE)]
)
def test_cauchy_point_is_the_first_minimizer_along_the_projected_path(monkeypatch, block, escalate, sample):
    """Brute force: the quadratic model on a fine grid of the path P(x - t g) (small blocks and
    samples: the point lies past the first selections of breakpoints, read off a strided sample)."""
    monkeypatch.setattr(cauchy, "BLOCK", block)
    monkeypatch.setattr(cauchy, "ESCALATE", escalate)
    monkeypatch.setattr(cauchy, "SAMPLE", sample)
    generator = torch.Generator().manual_seed(3)
    x = torch.rand(400, generator=generator, dtype=torch.float64)
    x[x < 0.2], x[x > 0.8] = 0.0, 1.0
    gradient = torch.randn(400, generator=generator, dtype=torch.float64)
    pairs, _ = _pairs(400, 5, 6, seed=1)
    theta, w, middle = pairs.compact()
    point = cauchy.cauchy_point(cauchy.ProjectedPath(x, gradient, 0.0, 1.0), theta, w, middle)
    x_c, t_c, c = point.point, point.t, point.products

    def model(t):
        z = (x - t * gradient).clamp(0, 1) - x
        return float(gradient @ z + 0.5 * theta * z @ z - 0.5 * (w.T @ z) @ middle @ (w.T @ z))

    grid = torch.linspace(0, 2 * t_c, 4001, dtype=torch.float64)
    values = torch.tensor([model(float(t)) for t in grid], dtype=torch.float64)
    first = next(i for i in range(1, len(grid) - 1) if values[i] <= values[i - 1] and values[i] <= values[i + 1])
    assert abs(float(grid[first]) - t_c) <= 2 * float(grid[1])
    assert model(t_c) <= float(values.min()) + 1e-9
    assert torch.allclose(x_c, (x - t_c * gradient).clamp(0, 1))
    assert torch.allclose(c, w.T @ (x_c - x))
    assert torch.equal(point.free, cauchy.breakpoints(x, gradient, 0.0, 1.0) > t_c)
    assert torch.allclose(point.free_gradient, w.T @ (gradient * point.free))


@pytest.mark.parametrize(("dtype", "rel"), [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_cauchy_point_with_ties_in_the_selections(monkeypatch, dtype, rel):
    """Breakpoints from a few values (many equal ones): the selections up to sampled thresholds
    give the full sort's Cauchy point (float32 as in the runs: the columns gathered in it)."""
    generator = torch.Generator().manual_seed(5)
    x = (torch.randint(1, 4, (300,), generator=generator) / 4).to(dtype)
    gradient = (torch.randint(0, 2, (300,), generator=generator) * 2 - 1).to(dtype)
    pairs, _ = _pairs(300, 4, 5, seed=2, dtype=dtype)
    theta, w, middle = pairs.compact()
    path = cauchy.ProjectedPath(x, gradient, 0.0, 1.0)
    whole = cauchy.cauchy_point(path, theta, w, middle)
    monkeypatch.setattr(cauchy, "BLOCK", 2)
    monkeypatch.setattr(cauchy, "ESCALATE", 3)
    partial = cauchy.cauchy_point(path, theta, w, middle)
    assert whole.t == pytest.approx(partial.t, rel=rel)
    assert torch.allclose(whole.point, partial.point, rtol=rel)
    assert torch.allclose(whole.products, partial.products, rtol=rel)
    # Breakpoints equal to t_c are not free: W^T g_F over the free variables only.
    for point in (whole, partial):
        expected = w.double().T @ (gradient.double() * point.free)
        assert torch.allclose(point.free_gradient.double(), expected, rtol=rel, atol=rel)


@pytest.mark.parametrize("seed", [61, 67, 143])
def test_free_gradient_when_the_cauchy_point_is_a_tied_breakpoint(monkeypatch, seed):
    """Strongly coupled pairs and few breakpoint values: the Cauchy point lands on a breakpoint
    shared by several variables, part of them still counted as moving by the scan; W^T g_F is
    that of the free variables (t > t_c) all the same."""
    scans = []
    scan = cauchy._scan
    monkeypatch.setattr(cauchy, "_scan", lambda *a: scans.append(scan(*a)) or scans[-1])
    generator = torch.Generator().manual_seed(seed)
    x = torch.randint(1, 4, (6,), generator=generator).double() / 4
    signs = torch.randint(0, 2, (6,), generator=generator).double() * 2 - 1
    gradient = signs * torch.randint(1, 3, (6,), generator=generator).double()
    root = torch.randn(6, 6, generator=generator, dtype=torch.float64)
    hessian = root @ root.T + 0.1 * torch.eye(6, dtype=torch.float64)
    pairs = CorrectionPairs(6, 3, torch.float64, "cpu")
    for _ in range(3):
        s = torch.randn(6, generator=generator, dtype=torch.float64)
        pairs.add(s, hessian @ s, float(s @ hessian @ s))
    theta, w, middle = pairs.compact()
    path = cauchy.ProjectedPath(x, gradient, 0.0, 1.0)
    point = cauchy.cauchy_point(path, theta, w, middle)
    passed = scans[-1][3]
    assert int(path.moving.sum()) - passed > int(point.free.sum())  # the scan's q would be wrong
    assert torch.allclose(point.free_gradient, w.T @ (gradient * point.free))


def test_cauchy_point_without_bounds_is_the_model_minimizer_along_the_gradient():
    generator = torch.Generator().manual_seed(9)
    x = torch.randn(500, generator=generator, dtype=torch.float64)
    gradient = torch.randn(500, generator=generator, dtype=torch.float64)
    pairs, _ = _pairs(500, 4, 6, seed=3)
    theta, w, middle = pairs.compact()
    point = cauchy.cauchy_point(cauchy.ProjectedPath(x, gradient, -math.inf, math.inf), theta, w, middle)
    curvature = theta * gradient @ gradient - (w.T @ gradient) @ middle @ (w.T @ gradient)
    assert point.t == pytest.approx(float(gradient @ gradient / curvature), rel=1e-10)
    assert bool(point.free.all()) and torch.allclose(point.point, x - point.t * gradient)
    assert torch.allclose(point.free_gradient, w.T @ gradient)


def test_cauchy_point_with_every_variable_held_is_the_point_itself():
    x = torch.zeros(20, dtype=torch.float64)
    pairs, _ = _pairs(20, 3, 3, seed=4)
    path = cauchy.ProjectedPath(x, torch.ones(20, dtype=torch.float64), 0.0, 1.0)  # all pushed below 0
    point = cauchy.cauchy_point(path, *pairs.compact())
    assert point.t == 0.0 and torch.equal(point.point, x) and not bool(point.free.any())


@pytest.mark.parametrize("seed", range(6))
def test_cauchy_point_past_the_last_breakpoint_of_a_flat_model(seed):
    """B = theta I with a small theta: the model still falls when every variable has reached its
    bound, where it is flat (gradients of a few exact values: the sums cancel exactly); the
    Cauchy point is finite, at or past the last breakpoint, every variable at its bound."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(300, generator=generator, dtype=torch.float64)
    signs = torch.randint(0, 2, (300,), generator=generator).double() * 2 - 1
    gradient = signs * torch.randint(1, 3, (300,), generator=generator).double() / 2  # t <= 2 < 1 / theta
    pairs = CorrectionPairs(300, 3, torch.float64, "cpu")
    for _ in range(3):
        s = torch.randn(300, generator=generator, dtype=torch.float64)
        pairs.add(s, 0.01 * s, 0.01 * float(s @ s))
    theta, w, middle = pairs.compact()
    path = cauchy.ProjectedPath(x, gradient, 0.0, 1.0)
    point = cauchy.cauchy_point(path, theta, w, middle)
    assert float(path.t.max()) <= point.t < math.inf and not bool(point.free.any())
    assert torch.equal(point.point, (x - 3 * gradient).clamp(0, 1))
    assert torch.allclose(point.products, w.T @ (point.point - x))


def test_storing_a_pair_gives_the_products_of_the_next_path():
    """The pass that stores a pair also gives W^T of the gradient on the moving variables of
    the pair's end (W with the new pair), which the next Cauchy point starts from."""
    pairs, _ = _pairs(50, 3, 4, seed=6)
    generator = torch.Generator().manual_seed(8)
    x = torch.rand(50, generator=generator, dtype=torch.float64).clamp(0.2, 0.8)
    gradient = torch.randn(50, generator=generator, dtype=torch.float64)
    path = cauchy.ProjectedPath(x, gradient, 0.2, 0.8)
    s = torch.randn(50, generator=generator, dtype=torch.float64)
    pairs.add(s, 2 * s, float(2 * s @ s), path)
    assert 0 < int(path.moving.sum()) < 50
    assert torch.allclose(path.products, pairs.buffer @ (gradient * path.moving))


def test_free_products_follow_the_free_set_and_new_pairs():
    """W_F^T W_F, updated by the variables that change sides and by each stored pair, against
    the product formed from the free columns (small and large changes, the ring buffer wrapped)."""
    generator = torch.Generator().manual_seed(7)
    n = 200
    pairs, _ = _pairs(n, 4, 2, seed=4)
    free = torch.rand(n, generator=generator) < 0.5
    for step in range(12):
        flips = torch.rand(n, generator=generator) < (0.02 if step % 3 else 0.6)
        free = free ^ flips
        gram = pairs.free_products(free)
        w = pairs.buffer[:, free].double()
        assert torch.allclose(gram.double(), w @ w.T, rtol=1e-10, atol=1e-10)
        s = torch.randn(n, generator=generator, dtype=torch.float64)
        y = s + 0.1 * torch.randn(n, generator=generator, dtype=torch.float64)
        pairs.add(s, y, float(s @ y))


@pytest.mark.parametrize(("lower", "upper"), [(0.0, 1.0), (-math.inf, math.inf), (-math.inf, 0.5)])
def test_breakpoints_and_room_against_their_definitions(lower, upper):
    """Arithmetic forms (no torch.where) against the case by case definitions, with variables on
    their bounds, zero gradients and directions, and infinite bounds."""
    generator = torch.Generator().manual_seed(11)
    x = torch.rand(300, generator=generator, dtype=torch.float64)
    x[:40], x[40:80] = max(lower, 0.0), min(upper, 1.0)
    gradient = torch.randn(300, generator=generator, dtype=torch.float64)
    gradient[::7] = 0.0
    expected_t = []
    expected_room = math.inf
    for xi, gi in zip(x.tolist(), gradient.tolist(), strict=True):
        bound = lower if gi > 0 else upper
        expected_t.append(max(0.0, (xi - bound) / gi) if gi != 0 else math.inf)
        if gi != 0:  # the direction -g
            expected_room = min(expected_room, ((upper if -gi > 0 else lower) - xi) / -gi)
    assert torch.equal(cauchy.breakpoints(x, gradient, lower, upper), torch.tensor(expected_t, dtype=torch.float64))
    assert cauchy.room(x, -gradient, lower, upper) == expected_room


@pytest.mark.parametrize("n", [4096, 4097, 3])
def test_combine_is_the_product_of_the_history_with_coefficients(n):
    """The batched product over runs of the variables (and the remainder) equals W @ c."""
    generator = torch.Generator().manual_seed(12)
    buffer = torch.randn(10, n, generator=generator)
    coefficients = torch.randn(10, generator=generator)
    assert torch.allclose(cauchy.combine(buffer.T, coefficients), buffer.T @ coefficients, atol=1e-5)


def test_first_iteration_in_a_box_is_scipys_unit_steepest_descent_step():
    """With no history, a box and a slope still steep after the unit step, SciPy's first
    iteration stops at that step (its stpmax is 1): one evaluation, the same point."""
    centre = torch.linspace(0.0, 1.0, 30, dtype=torch.float64)

    def fun(x):
        return float(5e-4 * ((x - centre) ** 2).sum()), 1e-3 * (x - centre)

    x0 = torch.full((30,), 0.5, dtype=torch.float64)
    seen = []
    x, _ = minimize_box(fun, x0, 0.0, 1.0, max_iter=1, callback=lambda *a: seen.append(a))
    numpy_fun = lambda z: tuple(v.numpy() if torch.is_tensor(v) else v for v in fun(torch.from_numpy(z)))  # noqa: E731
    scipy_x = scipy.optimize.minimize(numpy_fun, x0.numpy(), jac=True, method="L-BFGS-B",
                                      bounds=scipy.optimize.Bounds(0.0, 1.0), options={"maxiter": 1}).x  # fmt: skip
    assert seen[0][1] == 2  # the start and one trial
    assert torch.allclose(x, torch.from_numpy(scipy_x), atol=1e-12)
    assert torch.allclose(x, x0 - fun(x0)[1], atol=1e-15)
