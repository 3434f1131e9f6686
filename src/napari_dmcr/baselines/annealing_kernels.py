"""Compiled kernels of Yeong-Torquato annealing (numba): the random generator, trial swaps with
incremental two-point counts along the lines through the swapped voxels, and a batch of the
Metropolis loop. :mod:`~napari_dmcr.baselines.yeong_torquato` drives them.
"""

import math

import numpy as np
from numba import njit

# Status of a run, returned by each batch.
RUNNING, TARGET_REACHED, STALLED, MAX_SWAPS, CANCELLED = range(5)

# The state is a flat uint8 indicator of a (d0, d1, d2) lattice; a 2D reconstruction is stored
# as (1, H, W) with only axes 1 and 2 active. The random generator is xoshiro256** with its
# state in a uint64[4] array carried across calls, so a run does not depend on the batch size
# or on other numba code sharing the thread.


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
    """Whether voxel x has a face neighbour (periodic) of the other phase."""
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


@njit(cache=True, nogil=True)
def _pick(sites, img, dims, strides, axes, interface_bias, rng):
    while True:
        i = _below(rng, sites.shape[0])
        if not interface_bias or _touches_other(img, sites[i], dims, strides, axes):
            return i


@njit(cache=True, nogil=True)
def _line_sums(img, x, dims, strides, axes, max_lag, sign, delta):
    """delta[k, r] += sign * (I(x + r e_k) + I(x - r e_k)) for r = 1..max_lag."""
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
            delta[k, r] += sign * (np.int64(img[base + up * s]) + np.int64(img[base + down * s]))


@njit(cache=True, nogil=True)
def _swap(img, p, q, dims, strides, axes, max_lag, delta):
    """Turn p (phase) off and q on; delta receives the change of every pair count.

    Done as two single flips in sequence, so pairs of p and q with each other (same line,
    within max_lag) come out exactly: the second flip already sees p switched off.
    """
    delta[:, 1:] = 0
    _line_sums(img, p, dims, strides, axes, max_lag, -1, delta)
    img[p] = 0
    _line_sums(img, q, dims, strides, axes, max_lag, 1, delta)
    img[q] = 1


@njit(cache=True, nogil=True)
def s2_energy(counts, delta, target, inv_n):
    energy = 0.0
    for k in range(counts.shape[0]):
        for r in range(counts.shape[1]):
            d = (counts[k, r] + delta[k, r]) * inv_n - target[k, r]
            energy += d * d
    return energy


@njit(cache=True, nogil=True)
def mean_uphill(
    img,
    dims,
    strides,
    axes,
    max_lag,
    counts,
    target,
    inv_n,
    energy,
    phase_sites,
    other_sites,
    rng,
    n_trials,
    interface_bias,
):
    """Mean energy rise over the uphill ones among n_trials trial swaps, all rolled back."""
    delta = np.zeros_like(counts)
    total = 0.0
    uphill = 0
    for _ in range(n_trials):
        p = phase_sites[_pick(phase_sites, img, dims, strides, axes, interface_bias, rng)]
        q = other_sites[_pick(other_sites, img, dims, strides, axes, interface_bias, rng)]
        _swap(img, p, q, dims, strides, axes, max_lag, delta)
        change = s2_energy(counts, delta, target, inv_n) - energy
        img[p] = 1
        img[q] = 0
        if change > 0.0:
            total += change
            uphill += 1
    return total / uphill if uphill > 0 else 0.0


@njit(cache=True, nogil=True)
def anneal_batch(
    img,
    dims,
    strides,
    axes,
    max_lag,
    counts,
    target,
    inv_n,
    phase_sites,
    other_sites,
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
    accepted = 0
    best_mark = -1
    status = RUNNING
    i = 0
    while i < n_swaps:
        if done + i > 0 and (done + i) % swaps_per_temperature == 0:
            temperature *= cooling
        ip = _pick(phase_sites, img, dims, strides, axes, interface_bias, rng)
        iq = _pick(other_sites, img, dims, strides, axes, interface_bias, rng)
        p = phase_sites[ip]
        q = other_sites[iq]
        _swap(img, p, q, dims, strides, axes, max_lag, delta)
        new = s2_energy(counts, delta, target, inv_n)
        change = new - energy
        i += 1
        if change <= 0.0 or (temperature > 0.0 and _uniform(rng) < math.exp(-change / temperature)):
            counts += delta
            energy = new
            phase_sites[ip] = q
            other_sites[iq] = p
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
            img[p] = 1
            img[q] = 0
        if done + i - last_improvement >= stall_swaps:
            status = STALLED
            break
    if best_mark >= 0:
        best_img[:] = img
        for j in range(accepted - 1, best_mark - 1, -1):
            best_img[journal[j, 0]] = 1
            best_img[journal[j, 1]] = 0
    return i, accepted, temperature, energy, best_energy, last_improvement, status
