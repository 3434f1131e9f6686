"""L-BFGS-B's search direction in torch: generalized Cauchy point, then a subspace step.

Byrd, Lu, Nocedal and Zhu, SIAM J. Sci. Comput. 16 (1995) 1190-1208, with the projection of the
subspace step of Morales and Nocedal, ACM TOMS 38 (2011) 7. The limited-memory matrix is kept in
compact form, ``B = theta I - W M W^T`` with ``W = [Y, theta S]``.

The Cauchy point is the first local minimizer of the quadratic model along the projected
gradient path ``x(t) = P(x - t g)``. Along that path each variable moves until its breakpoint
``t_i`` and then stays at its bound, so ``x(t) - x = -min(t, t_i) g``: between two breakpoints
the model is a quadratic in ``t`` whose coefficients are prefix sums over the variables in
breakpoint order. All segments are evaluated at once (no loop over breakpoints, which the
Fortran code walks one by one), and the first that holds a minimizer gives the Cauchy point.
The free variables there are then moved to the minimizer of the model in their subspace
(the Sherman-Morrison-Woodbury form of the reduced inverse), projected onto the box; where
that projection does not descend, the step is shortened to stay feasible instead.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

BLOCK = 1024  # breakpoints in the first sorted block (the next ones double)
ESCALATE = 4  # each further selection of the smallest breakpoints takes this many times more
SAMPLE = 4096  # breakpoints sampled to choose the thresholds of the selections


class ProjectedPath:
    """The projected gradient path ``P(x - t g)`` of a point: each variable's breakpoint ``t``,
    the variables that move along it (``t > 0`` and ``g != 0``) and the gradient on them.

    ``products``, ``W^T`` of that gradient, is filled in by :meth:`CorrectionPairs.add` when
    the pair that ends at this point is stored: the pass over the history that stores the pair
    gives it, and the Cauchy point needs no pass of its own.
    """

    def __init__(self, x, gradient, lower, upper):
        self.x, self.gradient, self.lower, self.upper = x, gradient, lower, upper
        self.t = breakpoints(x, gradient, lower, upper)
        self.moving = (self.t > 0) & (gradient != 0)
        self.moving_gradient = gradient * self.moving
        self.products = None


class CorrectionPairs:
    """The last ``size`` pairs ``(s, y)`` in one preallocated ``2 size x n`` buffer on the device
    (rows: the y of each slot, then its s), with ``S^T Y`` and ``S^T S`` kept up to date.

    :meth:`compact` gives ``B = theta I - W M W^T`` with ``W`` the buffer's transpose (a view):
    unused slots are zero columns with zero rows and columns in ``M``, and the scaling of
    ``theta S`` lives in ``M``. Each pair is contiguous: storing one and the products over the
    variables read memory in order (2-2.5x faster than an ``n x 2 size`` buffer on a CPU).
    """

    def __init__(self, n, size, dtype, device):
        self.buffer = torch.zeros(2 * size, n, dtype=dtype, device=device)
        self.size, self.count, self.next, self.theta = size, 0, 0, 1.0
        self.sy = torch.zeros(size, size, dtype=torch.float64, device=device)  # s_i . y_j
        self.ss = torch.zeros(size, size, dtype=torch.float64, device=device)
        self.gram = torch.zeros(2 * size, 2 * size, dtype=torch.float64, device=device)  # buffer^T buffer
        self.free = None  # the free variables of the last search, over which free_gram is kept
        self.free_gram = torch.zeros_like(self.gram)

    def __len__(self):
        return self.count

    def clear(self):
        self.buffer.zero_()
        self.gram.zero_()
        self.free = None
        self.count = self.next = 0

    def add(self, s, y, curvature, path=None):
        """Store a pair whose curvature ``s . y`` is positive (the oldest leaves when full); with
        the :class:`ProjectedPath` of the pair's end, fill in its ``products``."""
        k, m = self.next, self.size
        self.buffer[k], self.buffer[m + k] = y, s
        pair = [y, s] if self.free is None else [y, s, y * self.free, s * self.free]
        if path is not None:
            pair.append(path.moving_gradient)
        # One product reads the buffer once (a stack of 2-5 x n, transposed: torch's fastest layout here).
        products = (self.buffer @ torch.stack(pair).T).double()
        if path is not None:
            path.products = products[:, -1]
        with_y, with_s = products[:, 0], products[:, 1]  # [Y S]^T y, [Y S]^T s
        self.gram[:, k] = self.gram[k, :] = with_y
        self.gram[:, m + k] = self.gram[m + k, :] = with_s
        if self.free is not None:
            self.free_gram[:, k] = self.free_gram[k, :] = products[:, 2]
            self.free_gram[:, m + k] = self.free_gram[m + k, :] = products[:, 3]
        self.sy[k, :], self.sy[:, k] = with_s[:m], with_y[m:]
        self.ss[k, :] = self.ss[:, k] = with_s[m:]
        self.theta = float(torch.dot(y, y)) / curvature
        self.next, self.count = (k + 1) % m, min(self.count + 1, m)

    def free_products(self, free):
        """``W_F^T W_F`` over the variables ``free`` (bool): updated by the variables that joined
        or left the free set since the last call when they are fewer than the smaller of the free
        and fixed sets, else formed again from that set's columns."""
        free_count = int(free.sum())
        changed = None if self.free is None else torch.nonzero(free ^ self.free).squeeze(1)
        if changed is not None and len(changed) <= min(free_count, len(free) - free_count):
            columns = self.buffer.index_select(1, changed)  # the buffer's precision, as when re-formed
            self.free_gram += ((columns * torch.where(free[changed], 1.0, -1.0).to(columns)) @ columns.T).double()
        elif 2 * free_count <= len(free):
            columns = self.buffer[:, free]
            self.free_gram = (columns @ columns.T).double()
        else:
            columns = self.buffer[:, ~free]
            self.free_gram = self.gram - (columns @ columns.T).double()
        self.free = free.clone()  # the caller may reuse its mask
        return self.free_gram.to(self.buffer.dtype, copy=True)

    def compact(self):
        """``(theta, W, M)`` of the stored pairs."""
        m, theta = self.size, self.theta
        age = [(self.next - self.count + i) % m for i in range(self.count)]  # oldest first
        sy, ss = self.sy[age][:, age], self.ss[age][:, age]
        lower = torch.tril(sy, -1)
        inverse = torch.cat(
            [torch.cat([-torch.diag(torch.diag(sy)), lower.T], 1), torch.cat([lower, theta * ss], 1)], 0
        )
        used = torch.tensor(age + [m + i for i in age], device=self.buffer.device)
        scale = torch.cat([torch.ones(self.count), torch.full((self.count,), theta)]).to(inverse)
        middle = torch.zeros(2 * m, 2 * m, dtype=torch.float64, device=self.buffer.device)
        middle[used[:, None], used[None, :]] = scale[:, None] * torch.linalg.inv(inverse) * scale[None, :]
        return theta, self.buffer.T, middle.to(self.buffer.dtype)


def combine(w, coefficients, parts=4):
    """``W @ coefficients``: the columns of ``W`` (the buffer's rows) combined. On a CPU as a
    batched product over ``parts`` runs of the variables: torch's matrix-vector product runs
    on one thread there (twice as long over the 2m x n buffer on 2 cores)."""
    n = len(w)
    if w.device.type != "cpu" or n < parts:
        return w @ coefficients
    even = n - n % parts
    runs = w.T[:, :even].unflatten(1, (parts, -1)).transpose(0, 1)  # parts x 2m x (n / parts)
    combined = torch.bmm(coefficients.expand(parts, 1, -1), runs).reshape(-1)
    return torch.cat([combined, w[even:] @ coefficients]) if even < n else combined


def breakpoints(x, gradient, lower, upper):
    """Where each variable meets its bound along ``x - t g`` (inf: never; 0: already there)."""
    # The larger of the steps to either bound is the one ahead (the other is negative); with
    # g = 0 it is inf or 0/0. Arithmetic only: torch.where costs 10-20x an add on a CPU.
    steps = torch.maximum((x - upper) / gradient, (x - lower) / gradient)
    return steps.nan_to_num_(nan=math.inf, posinf=math.inf).clamp_(min=0)


def room(x, direction, lower, upper):
    """The largest t for which ``x + t * direction`` stays in the box (inf: no bound in the way)."""
    if not direction.numel():
        return math.inf
    steps = torch.maximum((upper - x) / direction, (lower - x) / direction)  # as in breakpoints
    return float(steps.nan_to_num_(nan=math.inf, posinf=math.inf).min())


class CauchyPoint(NamedTuple):
    """The generalized Cauchy point of a :class:`ProjectedPath`."""

    point: torch.Tensor  # x_c
    t: float  # t_c: x_c = P(x - t_c g)
    products: torch.Tensor  # c = W^T (x_c - x)
    free: torch.Tensor  # the variables not at a bound at x_c, t > t_c (bool)
    free_gradient: torch.Tensor  # W^T of the gradient on them (float64)


def cauchy_point(path, theta, w, middle):
    """The generalized Cauchy point of ``path`` (:class:`ProjectedPath`) for ``B = theta I - W M W^T``.

    On the segment before a breakpoint ``x(t) - x = a + t d`` with ``a = -t_i g_i`` on the
    variables already at their bounds and ``d = -g_i`` on the moving ones, so with
    ``W^T (x(t) - x) = p + t q`` the model's slope is ``-G + theta t G - q^T M (p + t q)`` and its
    curvature ``theta G - q^T M q`` (``G``: the sum of g_i^2 over the moving variables).
    Breakpoints are taken in sorted blocks (the Cauchy point usually lies a few hundred to a few
    thousand breakpoints past those at t = 0), each ``g_i w_i`` in the buffer's precision, prefix
    sums in float64. At the Cauchy point ``-q`` is ``W^T`` of the gradient on the free variables,
    which the subspace step needs.
    """
    x, gradient, t, moving = path.x, path.gradient, path.t, path.moving
    count = int(moving.sum())
    if not count:  # every variable held at a bound: x is its own Cauchy point
        zeros = torch.zeros(w.shape[1], dtype=torch.float64, device=x.device)
        return CauchyPoint(x.clone(), 0.0, zeros.to(w.dtype), moving, zeros)
    middle = middle.double()
    products = path.products if path.products is not None else (w.T @ path.moving_gradient).double()
    moving_gradient = path.moving_gradient.double()  # a float64 copy: 10x faster than a float64 norm
    carry = {
        "g2": float(torch.dot(moving_gradient, moving_gradient)),
        "q": -products,
        "p": torch.zeros(w.shape[1], dtype=torch.float64, device=x.device),
        "start": 0.0,
    }
    # The smallest breakpoints, about BLOCK, ESCALATE BLOCK, ... of them, each time those up to
    # a threshold read off a sorted sample (a comparison and a small sort: topk costs 3-10x
    # more), until a selection holds the Cauchy point; each selection sorts only the breakpoints
    # past the last one's threshold and extends it.
    keyed = (t / moving).nan_to_num_(nan=math.inf, posinf=math.inf)  # the held variables' 0 / 0 and inf / 0: inf
    stride = max(1, len(keyed) // SAMPLE) | 1  # odd: a power-of-two stride samples one face of a grid
    sample = torch.sort(keyed[::stride]).values.tolist()
    found, above, wanted = None, -math.inf, BLOCK
    sorted_t, order = keyed[:0], torch.zeros(0, dtype=torch.long, device=x.device)
    while found is None:
        threshold = sample[min(wanted // stride, len(sample) - 1)] if wanted < count else math.inf
        more_t, more = _smallest(keyed, moving, above, threshold)
        if len(more):
            done = len(order)
            sorted_t, order = torch.cat([sorted_t, more_t]), torch.cat([order, more])
            found = _scan(sorted_t, order, gradient, w, theta, middle, carry, count, done, len(order))
        above, wanted = threshold, wanted * ESCALATE
    t_c, c, q, passed = found
    free = t > t_c
    # Breakpoints equal to t_c that the scan did not pass are not free either (they follow the
    # passed ones in the sorted order): the scan's q still counts them.
    tail = sorted_t[passed:]
    equal = order[passed:][tail <= t_c]
    if len(equal):
        q = q + (w.T.index_select(1, equal) * gradient[equal]).double().sum(1)
    x_c = (x - torch.clamp(t, max=t_c) * gradient).clamp_(path.lower, path.upper)
    return CauchyPoint(x_c, t_c, c.to(w.dtype), free, -q)


def _smallest(keyed, moving, above, threshold):
    """The moving variables' breakpoints past ``above`` up to ``threshold``, ascending, and their
    indices; with an infinite threshold all those past ``above``, the infinite ones (never
    reached: all equal) unsorted at the end."""
    finite = threshold < math.inf
    window = keyed <= threshold if finite else keyed < math.inf
    if above > -math.inf:
        window &= keyed > above
    chosen = torch.nonzero(window).squeeze(1)
    sorted_t, order = torch.sort(keyed[chosen])
    if finite:
        return sorted_t, chosen[order]
    never = torch.nonzero(moving & torch.isinf(keyed)).squeeze(1)
    return torch.cat([sorted_t, keyed[never]]), torch.cat([chosen[order], never])


def _scan(sorted_t, index, gradient, w, theta, middle, carry, total, done, limit):
    """``(t_c, c, q, passed)`` from the sorted breakpoints ``done`` to ``limit`` of ``total``, in
    doubling blocks (``carry``: the sums up to ``done``; ``q`` on the Cauchy point's segment,
    after the first ``passed`` breakpoints); None when the minimizer lies beyond ``limit``."""
    block = BLOCK
    while done < limit:
        block = min(block, limit - done)
        ts = sorted_t[done : done + block].double()
        rows = index[done : done + block]
        gs = gradient[rows]
        # g_i w_i of each breakpoint as a column (2m x block): the buffer's columns are gathered
        # row by row, and every product below runs along contiguous rows.
        gw = (w.T.index_select(1, rows) * gs).double()
        found = _first_minimizer(ts, gs.double(), gw, theta, middle, carry)
        if found is not None:
            t_c, c, q, j = found
            return t_c, c, q, done + j
        if done + block >= total:  # nothing moves past the last breakpoint (a flat model): stop at it
            stop = float(ts[-1])
            return stop, carry["p"] + stop * carry["q"], carry["q"], total
        done, block = done + block, 2 * block
    return None


def _first_minimizer(ends, gs, gw, theta, middle, carry):
    """``(t_c, c, q, j)`` of the first segment ``j`` of this block that holds the model's
    minimizer along the path, or None (``carry`` then moves past the block). ``gw`` holds
    ``g_i w_i`` as columns, ``q`` and ``p`` below are columns too."""
    g2 = gs * gs
    moving_g2 = carry["g2"] - (torch.cumsum(g2, 0) - g2)  # sums before each entry
    tgw = torch.nan_to_num(gw * ends)  # infinite breakpoints (no bounds): kept finite
    both = torch.cat([gw, tgw])
    before = torch.cumsum(both, 1).sub_(both)  # one scan for both sums
    size = len(gw)
    q = before[:size].add_(carry["q"][:, None])
    p = before[size:].neg_().add_(carry["p"][:, None])
    starts = torch.cat([torch.tensor([carry["start"]], dtype=ends.dtype, device=ends.device), ends[:-1]])
    mq = middle @ q  # M is symmetric: each column q_j^T M
    qmq, qmp = (mq * q).sum(0), (mq * p).sum(0)
    curvature = theta * moving_g2 - qmq
    slope = -moving_g2 + starts * curvature - qmp
    minimizer = starts - slope / curvature.clamp(min=1e-300)
    found = (slope >= 0) | ((curvature > 0) & (minimizer <= ends))
    if bool(found.any()):
        j = int(torch.nonzero(found)[0])
        t_c = float(starts[j]) if bool(slope[j] >= 0) else float(minimizer[j])
        return t_c, p[:, j] + t_c * q[:, j], q[:, j], j
    carry.update(
        g2=float(moving_g2[-1] - g2[-1]), q=q[:, -1] + gw[:, -1], p=p[:, -1] - tgw[:, -1], start=float(ends[-1])
    )
    return None


def search_segment(path, pairs):
    """``x_bar - x``: the step to the projected subspace minimizer from the Cauchy point of
    ``path`` (:class:`ProjectedPath`)."""
    theta, w, middle = pairs.compact()
    x, gradient = path.x, path.gradient
    cauchy = cauchy_point(path, theta, w, middle)
    x_c, c, free = cauchy.point, cauchy.products, cauchy.free
    # The reduced gradient at x_c is base - W M c on the free variables, where x_c - x = -t_c g:
    # base = (1 - theta t_c) g_F, and W^T base follows from the Cauchy point's W^T g_F. With
    # W_F^T W_F at hand, one product over the variables gives the subspace step.
    shrink = 1.0 - theta * cauchy.t
    w_base = (shrink * cauchy.free_gradient).to(w.dtype)
    gram = pairs.free_products(free)
    m_c = middle @ c
    inner = torch.eye(len(c), dtype=w.dtype, device=w.device) - (middle @ gram) / theta
    v = torch.linalg.solve(inner, middle @ (w_base - gram @ m_c))
    # On the free variables: W (M c / theta - v / theta^2) - base / theta.
    subspace = combine(w, m_c / theta - v / theta**2).sub_(gradient, alpha=shrink / theta).mul_(free)
    projected = (x_c + subspace).clamp(path.lower, path.upper) - x
    if float(torch.dot(projected, gradient)) < 0:
        return projected
    return x_c + min(1.0, room(x_c, subspace, path.lower, path.upper)) * subspace - x
