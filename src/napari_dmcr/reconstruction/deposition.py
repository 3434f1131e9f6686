"""Gravity deposition of spheres: each grain dropped, then rolled until it rests (numba).

The first step of a process-based sandstone (Oren and Bakke 2002, *Transport in Porous Media*
46: 311-343): grains fall one at a time at random places into a box periodic across (y, x)
and closed by a floor. A falling grain stops on the first grain (or the floor) it meets, rolls
down that grain's surface until it meets a second, rolls in the groove between the two until it
meets a third, and stays where the three (or two, or the floor) hold it against gravity;
otherwise it rolls on, or falls again from the edge it reached. Contacts along a path are found
by stepping the centre :data:`STEP` voxels at a time and bisecting the step that overlaps.

:func:`deposit` returns the centres; every grain touches the floor or a grain below its centre.
"""

from __future__ import annotations

import numpy as np
from numba import njit

STEP = 0.1  # voxels the centre moves between overlap checks while rolling
BISECTIONS = 12  # halvings of the step that meets a grain: contacts to STEP / 4096 voxels
MAX_MOVES = 64  # falls and rolls of one grain before it is left where it is (touching another)
TOUCH = 1e-6  # overlap (voxels) that counts as a contact, not a collision


@njit(cache=True)
def _wrap(d, side):
    return d - side * np.floor(d / side + 0.5)


@njit(cache=True)
def _cell_of(p, cell, n_cells):
    cx = int(np.floor(p[0] / cell[0])) % n_cells[0]
    cy = int(np.floor(p[1] / cell[1])) % n_cells[1]
    cz = min(max(int(np.floor(p[2] / cell[2])), 0), n_cells[2] - 1)
    return cx, cy, cz


@njit(cache=True)
def _first_overlap(p, r, pos, rad, heads, links, cell, n_cells, sides, skip0, skip1):
    """The index of a placed grain that ``p`` (radius ``r``) overlaps, -2 for the floor, -1 for none."""
    if p[2] < r - TOUCH:
        return -2
    cx, cy, cz = _cell_of(p, cell, n_cells)
    for dz in range(-1, 2):
        z = cz + dz
        if z < 0 or z >= n_cells[2]:
            continue
        for dy in range(-1, 2):
            for dx in range(-1, 2):
                k = heads[(cx + dx) % n_cells[0], (cy + dy) % n_cells[1], z]
                while k >= 0:
                    if k != skip0 and k != skip1:
                        ex = _wrap(p[0] - pos[k, 0], sides[0])
                        ey = _wrap(p[1] - pos[k, 1], sides[1])
                        ez = p[2] - pos[k, 2]
                        reach = r + rad[k] - TOUCH
                        if ex * ex + ey * ey + ez * ez < reach * reach:
                            return k
                    k = links[k]
    return -1


@njit(cache=True)
def _landing(x, y, below, r, pos, rad, count, sides, skip):
    """Height and grain (-2: the floor) where a grain of radius ``r`` falling at (x, y) from
    ``below`` first touches (grain ``skip``, just rolled off, left out)."""
    best, hit = r, -2
    for k in range(count):
        if k == skip:
            continue
        ex = _wrap(x - pos[k, 0], sides[0])
        ey = _wrap(y - pos[k, 1], sides[1])
        reach = r + rad[k]
        h2 = ex * ex + ey * ey
        if h2 < reach * reach:
            z = pos[k, 2] + np.sqrt(reach * reach - h2)
            if best < z <= below + TOUCH:
                best, hit = z, k
    return best, hit


@njit(cache=True)
def _toward(a, sides, p):
    """``a`` moved by whole periods to the copy nearest ``p`` (across y and x)."""
    out = a.copy()
    out[0] = p[0] - _wrap(p[0] - a[0], sides[0])
    out[1] = p[1] - _wrap(p[1] - a[1], sides[1])
    return out


@njit(cache=True)
def _support(p, centres, count):
    """Contact forces (the coefficients of the unit normals from each centre to ``p`` that sum
    to the vertical), least squares; ``count`` of 2 or 3 centres."""
    m = np.zeros((3, count))
    for i in range(count):
        d = p - centres[i]
        m[:, i] = d / np.sqrt(np.sum(d * d))
    up = np.array([0.0, 0.0, 1.0])
    return np.linalg.lstsq(m, up)[0]


@njit(cache=True)
def _march(path, n_steps, r, pos, rad, heads, links, cell, n_cells, sides, a, b):
    """Walk ``path(t)`` for t in [0, 1] (as an array of points ``n_steps + 1`` long); return
    (point reached, grain met or -1 / -2 floor). The step that overlaps is bisected."""
    for s in range(1, n_steps + 1):
        hit = _first_overlap(path[s], r, pos, rad, heads, links, cell, n_cells, sides, a, b)
        if hit != -1:
            lo, hi = path[s - 1].copy(), path[s].copy()
            for _ in range(BISECTIONS):
                mid = 0.5 * (lo + hi)
                if _first_overlap(mid, r, pos, rad, heads, links, cell, n_cells, sides, a, b) != -1:
                    hi = mid
                else:
                    lo = mid
            # The grain met is the one the last bisected step overlaps (not the full step's first).
            return lo, _first_overlap(hi, r, pos, rad, heads, links, cell, n_cells, sides, a, b)
    return path[n_steps].copy(), -1


@njit(cache=True)
def _roll_one(p, r, a, pos, rad, heads, links, cell, n_cells, sides, direction):
    """Roll on grain ``a`` down the vertical great circle through ``p`` (away from ``a``, or along
    ``direction`` when ``p`` is on top) to its equator."""
    centre = _toward(pos[a], sides, p)
    reach = r + rad[a]
    h = p[:2] - centre[:2]
    norm = np.sqrt(np.sum(h * h))
    u = h / norm if norm > 1e-9 else direction
    theta0 = np.arccos(min(1.0, max(-1.0, (p[2] - centre[2]) / reach)))
    n_steps = max(1, int((np.pi / 2 - theta0) * reach / STEP) + 1)
    path = np.empty((n_steps + 1, 3))
    for s in range(n_steps + 1):
        t = theta0 + (np.pi / 2 - theta0) * s / n_steps
        path[s, 0] = centre[0] + reach * np.sin(t) * u[0]
        path[s, 1] = centre[1] + reach * np.sin(t) * u[1]
        path[s, 2] = centre[2] + reach * np.cos(t)
    return _march(path, n_steps, r, pos, rad, heads, links, cell, n_cells, sides, a, -1)


@njit(cache=True)
def _roll_two(p, r, a, b, pos, rad, heads, links, cell, n_cells, sides):
    """Roll in the groove of grains ``a`` and ``b`` (the circle of points touching both) down to
    the circle's lowest point."""
    ca, cb = _toward(pos[a], sides, p), _toward(pos[b], sides, p)
    ra, rb = r + rad[a], r + rad[b]
    axis = cb - ca
    dist = np.sqrt(np.sum(axis * axis))
    n = axis / dist
    along = (dist * dist + ra * ra - rb * rb) / (2 * dist)
    centre = ca + along * n
    rho = np.sqrt(max(ra * ra - along * along, 1e-12))
    e1 = p - centre
    e1 -= np.sum(e1 * n) * n
    e1 /= np.sqrt(np.sum(e1 * e1))
    e2 = np.cross(n, e1)
    down = np.array([0.0, 0.0, -1.0])
    down -= np.sum(down * n) * n
    if np.sum(down * down) < 1e-18:  # a horizontal groove: the point already is its lowest
        return p.copy(), -1
    lowest = np.arctan2(np.sum(down * e2), np.sum(down * e1))
    n_steps = max(1, int(abs(lowest) * rho / STEP) + 1)
    path = np.empty((n_steps + 1, 3))
    for s in range(n_steps + 1):
        t = lowest * s / n_steps
        path[s] = centre + rho * (np.cos(t) * e1 + np.sin(t) * e2)
    return _march(path, n_steps, r, pos, rad, heads, links, cell, n_cells, sides, a, b)


@njit(cache=True)
def _settle(x, y, r, pos, rad, count, heads, links, cell, n_cells, sides, top, direction):
    """Where a grain of radius ``r`` dropped at (x, y) comes to rest."""
    p = np.array([x, y, top])
    contacts = np.full(3, -1)
    n_contacts, rolled_off = 0, -1
    for _ in range(MAX_MOVES):
        if n_contacts == 0:
            z, hit = _landing(p[0], p[1], p[2], r, pos, rad, count, sides, rolled_off)
            p[2] = z
            if hit == -2:
                return p
            contacts[0], n_contacts = hit, 1
        if n_contacts == 1:
            p, hit = _roll_one(p, r, contacts[0], pos, rad, heads, links, cell, n_cells, sides, direction)
            if hit == -2:
                p[2] = r
                return p
            if hit == -1:  # over the equator: falls again
                n_contacts, rolled_off = 0, contacts[0]
                continue
            contacts[1], n_contacts = hit, 2
        p, hit = _roll_two(p, r, contacts[0], contacts[1], pos, rad, heads, links, cell, n_cells, sides)
        if hit == -2:
            p[2] = r
            return p
        centres = np.empty((3, 3))
        m = 3 if hit >= 0 else 2
        if hit >= 0:
            contacts[2] = hit
        for i in range(m):
            centres[i] = _toward(pos[contacts[i]], sides, p)
        force = _support(p, centres, m)
        weakest = 0
        for i in range(m):
            if force[i] < force[weakest]:
                weakest = i
        if force[weakest] >= 0.0:
            return p  # held by its contacts
        # It leaves the contact that pulls: rolls on the others.
        keep = 0
        for i in range(m):
            if i != weakest:
                contacts[keep] = contacts[i]
                keep += 1
        n_contacts = keep
    return p


@njit(cache=True)
def _deposit(radii, drops, directions, sides, height, cell, n_cells):
    count = radii.size
    pos = np.zeros((count, 3))
    heads = np.full((n_cells[0], n_cells[1], n_cells[2]), -1)
    links = np.full(count, -1)
    top = 0.0
    placed = 0
    volume = 0.0
    for i in range(count):
        r = radii[i]
        p = _settle(
            drops[i, 0] * sides[0],
            drops[i, 1] * sides[1],
            r,
            pos,
            radii,
            placed,
            heads,
            links,
            cell,
            n_cells,
            sides,
            top + 2 * cell[2],
            directions[i],
        )
        if p[2] + r >= n_cells[2] * cell[2]:
            break  # the box is full
        pos[placed] = p
        cx, cy, cz = _cell_of(p, cell, n_cells)
        links[placed] = heads[cx, cy, cz]
        heads[cx, cy, cz] = placed
        top = max(top, p[2] + r)
        placed += 1
        volume += 4.0 / 3.0 * np.pi * r**3
        if volume >= height * sides[0] * sides[1]:
            break
    return pos[:placed]


def deposit(radii, sides, height, seed=0):
    """Drop spheres of ``radii`` (in that order) into a box of lateral ``sides`` (y, x), periodic
    across them, until their volume fills ``height`` of it (a pile of about twice that height).

    Parameters
    ----------
    radii : array_like of float
        Radii (voxels), in the order the grains fall; more than enough to fill the box.
    sides : tuple of 2 float
        Lateral sides (y, x) of the box.
    height : float
        Height of solid the spheres' total volume must reach (volume over the box's base).
    seed : int
        Seed of the drop positions.

    Returns
    -------
    centres : numpy.ndarray, shape (n, 3)
        (y, x, z) of the ``n`` grains that came to rest, ``z`` up from the floor.

    Examples
    --------
    >>> centres = deposit([2.0] * 200, (16, 16), 8, seed=0)
    >>> bool(np.all(centres[:, 2] >= 2.0 - 1e-9))
    True
    """
    radii = np.asarray(radii, np.float64)
    rng = np.random.default_rng(int(seed))
    drops = rng.random((radii.size, 2))
    angles = rng.random(radii.size) * 2 * np.pi
    directions = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    reach = 2.0 * float(radii.max())  # no two grains closer than this touch
    sides = np.asarray(sides, np.float64)
    # Cells at least one reach wide that tile the periodic axes exactly; the pile's height is
    # about twice that of its solid.
    n_cells = np.array([max(1, int(sides[0] // reach)), max(1, int(sides[1] // reach)), int(4 * height / reach) + 4])
    cell = np.array([sides[0] / n_cells[0], sides[1] / n_cells[1], reach])
    return _deposit(radii, drops, directions, sides, float(height), cell, n_cells)
