"""Compiled kernels of Yeong-Torquato annealing (numba): the random generator, trial swaps with
incremental two-point counts along the lines through the swapped voxels, and a batch of the
Metropolis loop. :mod:`~napari_dmcr.baselines.yeong_torquato` drives them.

The state holds a label index per voxel; a swap exchanges two voxels of different labels, so
every label keeps its count. The two-point counts of the *matched* labels (one row each: the
phase of interest for two labels, whose other label's S2 follows from it; every label for three
or more) are updated on the lines through the two voxels.
"""

import math

import numpy as np
from numba import njit

# Status of a run, returned by each batch.
RUNNING, TARGET_REACHED, STALLED, MAX_SWAPS, CANCELLED = range(5)

# The state is a flat uint8 array of label indices of a (d0, d1, d2) lattice; a 2D reconstruction
# is stored as (1, H, W) with only axes 1 and 2 active. Sites are the voxels grouped by label
# (label k's in sites[offsets[k]:offsets[k + 1]]), so that a swap picks two labels in O(1).
# The random generator is xoshiro256** with its state in a uint64[4] array carried across
# calls, so a run does not depend on the batch size or on other numba code sharing the thread.


@njit(cache=True, nogil=True)
def _rotl(x, k):
    return (x << k) | (x >> (np.uint64(64) - k))


@njit(cache=True, nogil=True)
def _next_u64(s):
    result = _rotl(s[1] * np.uint64(5), np.uint64(7)) * np.uint64(9)
    t = s[1] << np.uint64(17)
    s[2] ^= s[0]
    s[3] ^= s[1]
    s[1] ^= s[2]
    s[0] ^= s[3]
    s[2] ^= t
    s[3] = _rotl(s[3], np.uint64(45))
    return result


@njit(cache=True, nogil=True)
def _uniform(s):
    return (_next_u64(s) >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(cache=True, nogil=True)
def _below(s, n):
    return np.int64(_next_u64(s) % np.uint64(n))


@njit(cache=True, nogil=True)
def _touches_other(img, x, dims, strides, axes):
    """Whether voxel x has a face neighbour (periodic) of another label."""
    value = img[x]
    for k in range(axes.shape[0]):
        a = axes[k]
        n = dims[a]
        s = strides[a]
        c = (x // s) % n
        base = x - c * s
        if img[base + ((c + 1) % n) * s] != value or img[base + ((c + n - 1) % n) * s] != value:
            return True
    return False


NO_LABEL = 255  # a voxel between two labels during a swap


@njit(cache=True, nogil=True)
def _pick_pair(sites, offsets, img, dims, strides, axes, interface_bias, rng):
    """Slots i and j of two voxels of different labels: i uniform over all voxels, j uniform over
    those of the other labels (every unordered pair of two labels as likely as with two phases
    picked one from each); with ``interface_bias`` both touch another label."""
    n = sites.shape[0]
    while True:
        i = _below(rng, n)
        if not interface_bias or _touches_other(img, sites[i], dims, strides, axes):
            break
    label = img[sites[i]]
    start, count = offsets[label], offsets[label + 1] - offsets[label]
    while True:
        j = _below(rng, n - count)
        if j >= start:
            j += count
        if not interface_bias or _touches_other(img, sites[j], dims, strides, axes):
            return i, j


@njit(cache=True, nogil=True)
def _line_sums(img, x, value, dims, strides, axes, max_lag, sign, delta):
    """delta[k, r] += sign * ([img(x + r e_k) = value] + [img(x - r e_k) = value]), r = 1..max_lag."""
    for k in range(axes.shape[0]):
        a = axes[k]
        n = dims[a]
        s = strides[a]
        c = (x // s) % n
        base = x - c * s
        for r in range(1, max_lag + 1):
            up = c + r
            if up >= n:
                up -= n
            down = c - r
            if down < 0:
                down += n
            delta[k, r] += sign * (np.int64(img[base + up * s] == value) + np.int64(img[base + down * s] == value))


@njit(cache=True, nogil=True)
def _swap(img, p, q, rows, dims, strides, axes, max_lag, delta):
    """Exchange the labels of p and q; delta receives the change of the matched labels' counts.

    Both voxels leave their labels before either joins the other's, so the pair (p, q) is
    counted exactly.
    """
    a, b = img[p], img[q]
    for row in (rows[a], rows[b]):
        if row >= 0:
            delta[row, :, 1:] = 0
    if rows[a] >= 0:
        _line_sums(img, p, a, dims, strides, axes, max_lag, -1, delta[rows[a]])
    if rows[b] >= 0:
        _line_sums(img, q, b, dims, strides, axes, max_lag, -1, delta[rows[b]])
    img[p] = NO_LABEL
    img[q] = NO_LABEL
    if rows[a] >= 0:
        _line_sums(img, q, a, dims, strides, axes, max_lag, 1, delta[rows[a]])
    img[q] = a
    if rows[b] >= 0:
        _line_sums(img, p, b, dims, strides, axes, max_lag, 1, delta[rows[b]])
    img[p] = b


@njit(cache=True, nogil=True)
def row_energy(counts, delta, target, inv_n, row):
    """Squared S2 error of one matched label (``delta`` added to its counts)."""
    energy = 0.0
    for k in range(counts.shape[1]):
        for r in range(counts.shape[2]):
            d = (counts[row, k, r] + delta[row, k, r]) * inv_n - target[row, k, r]
            energy += d * d
    return energy


@njit(cache=True, nogil=True)
def _row_energies(counts, delta, target, inv_n):
    energies = np.zeros(counts.shape[0])
    for row in range(counts.shape[0]):
        energies[row] = row_energy(counts, delta, target, inv_n, row)
    return energies


@njit(cache=True, nogil=True)
def s2_energy(counts, delta, target, inv_n):
    """Squared S2 error summed over the matched labels."""
    return _row_energies(counts, delta, target, inv_n).sum()


@njit(cache=True, nogil=True)
def _swap_change(img, p, q, rows, dims, strides, axes, max_lag, counts, delta, target, inv_n, energies):
    """Swap p and q; return the energy change (the rows of their labels only)."""
    a, b = img[p], img[q]
    _swap(img, p, q, rows, dims, strides, axes, max_lag, delta)
    change = 0.0
    for row in (rows[a], rows[b]):
        if row >= 0:
            change += row_energy(counts, delta, target, inv_n, row) - energies[row]
    return change


@njit(cache=True, nogil=True)
def mean_uphill(
    img, rows, dims, strides, axes, max_lag, counts, target, inv_n, sites, offsets, rng, n_trials, interface_bias
):
    """Mean energy rise over the uphill ones among n_trials trial swaps, all rolled back."""
    delta = np.zeros_like(counts)
    energies = _row_energies(counts, delta, target, inv_n)
    total = 0.0
    uphill = 0
    for _ in range(n_trials):
        i, j = _pick_pair(sites, offsets, img, dims, strides, axes, interface_bias, rng)
        p, q = sites[i], sites[j]
        a, b = img[p], img[q]
        change = _swap_change(img, p, q, rows, dims, strides, axes, max_lag, counts, delta, target, inv_n, energies)
        img[p] = a
        img[q] = b
        if change > 0.0:
            total += change
            uphill += 1
    return total / uphill if uphill > 0 else 0.0


@njit(cache=True, nogil=True)
def anneal_batch(
    img,
    rows,
    dims,
    strides,
    axes,
    max_lag,
    counts,
    target,
    inv_n,
    sites,
    offsets,
    best_img,
    best_counts,
    journal,
    rng,
    n_swaps,
    done,
    temperature,
    cooling,
    swaps_per_temperature,
    energy,
    best_energy,
    last_improvement,
    stall_swaps,
    target_energy,
    interface_bias,
):
    """Run up to n_swaps Metropolis trial swaps; update state, counts and best state in place.

    ``done`` is the number of trial swaps before this batch, so cooling and the stall count
    follow the global swap index. Accepted swaps are journaled; at the end the best state is
    written to best_img by undoing, on a copy, the swaps accepted after it.
    """
    delta = np.zeros_like(counts)
    energies = _row_energies(counts, delta, target, inv_n)
    accepted = 0
    best_mark = -1
    status = RUNNING
    i = 0
    while i < n_swaps:
        if done + i > 0 and (done + i) % swaps_per_temperature == 0:
            temperature *= cooling
        si, sj = _pick_pair(sites, offsets, img, dims, strides, axes, interface_bias, rng)
        p, q = sites[si], sites[sj]
        a, b = img[p], img[q]
        change = _swap_change(img, p, q, rows, dims, strides, axes, max_lag, counts, delta, target, inv_n, energies)
        i += 1
        if change <= 0.0 or (temperature > 0.0 and _uniform(rng) < math.exp(-change / temperature)):
            for row in (rows[a], rows[b]):
                if row >= 0:
                    counts[row] += delta[row]
                    delta[row] = 0
                    energies[row] = row_energy(counts, delta, target, inv_n, row)
            energy = energies.sum()
            sites[si] = q  # slot si keeps label a, now at q
            sites[sj] = p
            journal[accepted, 0] = p
            journal[accepted, 1] = q
            accepted += 1
            if energy < best_energy:
                best_energy = energy
                best_counts[:] = counts
                best_mark = accepted
                last_improvement = done + i
                if energy <= target_energy:
                    status = TARGET_REACHED
                    break
        else:
            img[p] = a
            img[q] = b
        if done + i - last_improvement >= stall_swaps:
            status = STALLED
            break
    if best_mark >= 0:
        best_img[:] = img
        for j in range(accepted - 1, best_mark - 1, -1):  # undo: each accepted swap exchanged two labels
            p, q = journal[j, 0], journal[j, 1]
            best_img[p], best_img[q] = best_img[q], best_img[p]
    return i, accepted, temperature, energy, best_energy, last_improvement, status
