"""Export a labeled volume as a FLAC3D grid (``.f3grid``); the triaxial-test file beside it is
written by :mod:`napari_dmcr.io.f3dat`.

Geometry. Voxel ``labels[k, j, i]`` of a (z, y, x) volume becomes the B8 brick zone
``origin + h * ([i, i+1] x [j, j+1] x [k, k+1])`` (x = column, y = row, z = slice, z up), where
``h`` is the voxel size times the coarsening factor. Gridpoints shared between zones are written
once; gridpoint, zone and face ids are consecutive from 1.

Records (ASCII ``.f3grid``, see ``docs/export.md``)::

    G id x y z                       gridpoints
    Z B8 id p0 p1 p2 p3 p4 p5 p6 p7  zones, FLAC3D node order (p0..p3 a right-handed frame)
    F Q4 id n0 n1 n2 n3              boundary faces, nodes counter-clockwise seen from outside
    ZGROUP "gravel" SLOT "Default"   one zone group per phase, followed by its zone ids
    FGROUP "top" SLOT "Default"      face groups "bottom", "top" and "lateral"

The file is written layer by layer (memory independent of the number of layers) into a
temporary file that is renamed onto the target when complete.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from napari_dmcr.errors import InputError
from napari_dmcr.io.atomic import atomic_path
from napari_dmcr.labels import check_labels

DEFAULT_GROUP_NAMES = {0: "gravel", 1: "matrix"}
FACE_GROUPS = ("bottom", "top", "lateral")
SLOT = "Default"
_IDS_PER_LINE = 16
_ROWS_PER_CHUNK = 1 << 13  # records formatted at once: bounds the memory of the text buffers


def default_group_name(label):
    """FLAC3D group name of a label: ``gravel`` (0), ``matrix`` (1), else ``phase<label>``."""
    return DEFAULT_GROUP_NAMES.get(int(label), f"phase{int(label)}")


def group_names_for(labels_present, group_names=None):
    """Map every label present to a FLAC3D zone group name.

    Parameters
    ----------
    labels_present : iterable of int
        Labels that occur in the volume.
    group_names : dict or sequence of str, optional
        Names by label (``{0: "gravel", 1: "matrix"}``), or a sequence indexed by label.
        Labels without a name get :func:`default_group_name`.

    Returns
    -------
    names : dict of int to str
    """
    if group_names is None:
        group_names = {}
    elif not isinstance(group_names, dict):
        group_names = dict(enumerate(group_names))
    names = {}
    for label in sorted(int(v) for v in labels_present):
        name = str(group_names.get(label, default_group_name(label))).strip()
        if not name or any(c in name for c in "\"'\n\r\t"):
            raise InputError(f"group name {name!r} for label {label}: use a non-empty name without quotes")
        names[label] = name
    if len(set(names.values())) != len(names):
        raise InputError(f"group names must differ between labels, got {names}")
    return names


def labels_present(labels):
    """Sorted distinct labels of a volume, layer by layer (no sorted copy of the whole volume)."""
    return np.unique(np.concatenate([np.unique(layer) for layer in labels]))


def coarsen_labels(labels, factor):
    """Merge ``factor``^3 voxel blocks into one by majority vote.

    Ties go to the smallest label. Trailing voxels that do not fill a whole block along an axis
    are dropped.

    Parameters
    ----------
    labels : ndarray of int, shape (z, y, x)
        Label volume.
    factor : int
        Block edge in voxels (1 returns the volume unchanged).

    Returns
    -------
    coarse : ndarray, shape (z // factor, y // factor, x // factor)
    """
    factor = positive_integer(factor, "coarsening factor")
    if factor == 1:
        return labels
    shape = tuple(n // factor for n in labels.shape)
    if min(shape) == 0:
        raise InputError(
            f"coarsening by {factor} leaves no zones along an axis of the {labels.shape} volume; "
            f"use a factor of at most {min(labels.shape)}"
        )
    nz, ny, nx = shape
    values = labels_present(labels)
    coarse = np.empty(shape, dtype=labels.dtype)
    for k in range(nz):  # one layer of blocks at a time keeps the temporaries small
        blocks = labels[k * factor : (k + 1) * factor, : ny * factor, : nx * factor]
        blocks = blocks.reshape(factor, ny, factor, nx, factor)
        best_count = np.full((ny, nx), -1)
        for value in values:
            count = np.count_nonzero(blocks == value, axis=(0, 2, 4))
            better = count > best_count
            coarse[k][better] = value
            best_count[better] = count[better]
    return coarse


def specimen_mask(shape, zone_size=1.0, cylinder=False):
    """Zones kept for the specimen: a footprint in (y, x) and a range of z layers.

    Parameters
    ----------
    shape : tuple of 3 int
        Zone grid shape (z, y, x).
    zone_size : float, optional
        Zone edge length in model units.
    cylinder : bool or (float, float), optional
        ``False`` keeps the whole block. ``True`` carves the largest vertical cylinder: diameter
        the smaller horizontal side, the full height. ``(diameter, height)`` in model units carves
        a centred cylinder of that size (e.g. ``(0.05, 0.1)`` for a 50 mm x 100 mm core in m).
        A zone is kept when its centre lies inside the cylinder.

    Returns
    -------
    footprint : ndarray of bool, shape (y, x)
    layers : tuple of 2 int
        First and one-past-last kept z layer.
    """
    nz, ny, nx = shape
    if cylinder is False or cylinder is None:
        return np.ones((ny, nx), dtype=bool), (0, nz)
    if cylinder is True:
        diameter, height = min(nx, ny) * zone_size, nz * zone_size
    else:
        try:
            diameter, height = (float(v) for v in cylinder)
        except (TypeError, ValueError):
            raise InputError(f"cylinder must be True/False or (diameter, height), got {cylinder!r}") from None
        if not (diameter > 0 and height > 0):
            raise InputError(f"cylinder diameter and height must be positive, got {cylinder!r}")
        limit = 1 + 1e-9
        if diameter > min(nx, ny) * zone_size * limit or height > nz * zone_size * limit:
            raise InputError(
                f"a cylinder of diameter {diameter:g} and height {height:g} does not fit in the "
                f"block of {nx * zone_size:g} x {ny * zone_size:g} x {nz * zone_size:g} "
                "model units; "
                "check the voxel size and the cylinder size (same units)"
            )
    centre_y = (np.arange(ny) + 0.5) * zone_size - ny * zone_size / 2
    centre_x = (np.arange(nx) + 0.5) * zone_size - nx * zone_size / 2
    radius2 = (diameter / 2) ** 2 * (1 + 1e-9)
    footprint = centre_y[:, None] ** 2 + centre_x[None, :] ** 2 <= radius2
    centre_z = (np.arange(nz) + 0.5) * zone_size - nz * zone_size / 2
    kept = np.flatnonzero(np.abs(centre_z) <= height / 2 * (1 + 1e-9))
    if not footprint.any() or kept.size == 0:
        raise InputError(f"the cylinder {cylinder!r} contains no zone centre; make it larger")
    return footprint, (int(kept[0]), int(kept[-1]) + 1)


def write_f3grid(
    path,
    labels,
    *,
    voxel_size=1.0,
    origin=(0.0, 0.0, 0.0),
    group_names=None,
    coarsen=1,
    cylinder=False,
    face_groups=True,
):
    """Write a labeled volume as an ASCII FLAC3D grid of B8 brick zones.

    Parameters
    ----------
    path : str or Path
        Output ``.f3grid`` file (written atomically).
    labels : ndarray of int, shape (z, y, x)
        Label volume; every label becomes one zone group.
    voxel_size : float, optional
        Voxel edge length in model units (e.g. metres).
    origin : tuple of 3 float, optional
        Position (x, y, z) of the volume's corner in model units.
    group_names : dict or sequence of str, optional
        Zone group name by label; defaults to ``gravel`` (0), ``matrix`` (1), ``phase<k>``.
    coarsen : int, optional
        Merge ``coarsen``^3 voxels into one zone by majority vote (see :func:`coarsen_labels`).
    cylinder : bool or (float, float), optional
        Carve a vertical cylindrical specimen and drop the zones outside (see
        :func:`specimen_mask`).
    face_groups : bool, optional
        Write the boundary faces as face groups ``bottom`` (z min), ``top`` (z max) and
        ``lateral`` (the sides), for platens and confinement.

    Returns
    -------
    counts : dict
        ``gridpoints``, ``zones``, ``faces``, ``groups`` (zones per group name),
        ``face_groups`` (faces per face group), ``shape`` (zone grid), ``zone_size``,
        ``origin`` and ``height`` (specimen height) in model units.
    """
    labels = _checked_volume(labels)
    voxel_size = positive_number(voxel_size, "voxel size")
    try:
        origin = tuple(float(v) for v in origin)
    except (TypeError, ValueError):
        origin = ()
    if len(origin) != 3 or not all(math.isfinite(v) for v in origin):
        raise InputError("origin must be three finite numbers (x, y, z)")
    coarsen = positive_integer(coarsen, "coarsening factor")
    labels = coarsen_labels(labels, coarsen)
    zone_size = voxel_size * coarsen
    names = group_names_for(labels_present(labels), group_names)
    footprint, (k0, k1) = specimen_mask(labels.shape, zone_size, cylinder)
    grid = _Grid(footprint, k0, k1)
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        handle.write(
            (
                f"* FLAC3D grid written by napari-dmcr: {grid.n_zones} B8 zones of "
                f"{zone_size:.12g} model units, origin ({', '.join(f'{v:.12g}' for v in origin)})\n"
                f"* zone groups (slot {SLOT}): "
                + ", ".join(f"{name} = label {label}" for label, name in names.items())
                + f"\n* import with: zone import '{path.name}' use-given-ids\n"
            ).encode()
        )
        handle.write(b"* GRIDPOINTS\n")
        grid.write_gridpoints(handle, zone_size, origin)
        handle.write(b"* ZONES\n")
        grid.write_zones(handle)
        face_counts = {}
        if face_groups:
            handle.write(b"* FACES\n")
            face_counts = grid.write_faces(handle)
        handle.write(b"* ZONE GROUPS\n")
        group_counts = {}
        for label, name in names.items():
            group_counts[name] = grid.write_zone_group(handle, name, labels, label)
        if face_groups:
            handle.write(b"* FACE GROUPS\n")
            first = 1
            for name in FACE_GROUPS:
                _write_group(handle, "FGROUP", name, [np.arange(first, first + face_counts[name])])
                first += face_counts[name]
    return {
        "gridpoints": grid.n_gridpoints,
        "zones": grid.n_zones,
        "faces": sum(face_counts.values()),
        "groups": group_counts,
        "face_groups": face_counts,
        "shape": tuple(int(n) for n in labels.shape),
        "zone_size": zone_size,
        "origin": origin,
        "height": (k1 - k0) * zone_size,
    }


class _Grid:
    """Ids of the kept gridpoints, zones and boundary faces of a prismatic specimen, per layer.

    The kept zones are ``footprint`` (y, x) in every layer ``k0 <= k < k1``. Gridpoints and zones
    are numbered layer by layer in C order, so ids are ``1 + layer * per_layer + local index``.
    """

    def __init__(self, footprint, k0, k1):
        ny, nx = footprint.shape
        self.footprint, self.k0, self.k1 = footprint, k0, k1
        self.n_layers = k1 - k0
        corners = np.zeros((ny + 1, nx + 1), dtype=bool)
        for dj in (0, 1):
            for di in (0, 1):
                corners[dj : dj + ny, di : di + nx] |= footprint
        self.gp_j, self.gp_i = np.nonzero(corners)
        self.gp_per_layer = self.gp_j.size
        local = np.full(corners.shape, -1, dtype=np.int64)
        local[corners] = np.arange(self.gp_per_layer)
        j, i = np.nonzero(footprint)
        self.zones_per_layer = j.size
        # Corners of each kept zone in the layer below:
        # (a, b, c, d) = (i, j), (i+1, j), (i, j+1), (i+1, j+1).
        self.a, self.b = local[j, i], local[j, i + 1]
        self.c, self.d = local[j + 1, i], local[j + 1, i + 1]
        self.n_gridpoints = self.gp_per_layer * (self.n_layers + 1)
        self.n_zones = self.zones_per_layer * self.n_layers
        self.gp_width = len(str(self.n_gridpoints)) + 1
        self.zone_width = len(str(max(self.n_zones, 1))) + 1
        # Exposed sides of the footprint (no kept neighbour): the lateral boundary of every layer.
        padded = np.pad(footprint, 1)
        self.sides = {
            "-x": footprint & ~padded[1:-1, :-2],
            "+x": footprint & ~padded[1:-1, 2:],
            "-y": footprint & ~padded[:-2, 1:-1],
            "+y": footprint & ~padded[2:, 1:-1],
        }

    def write_gridpoints(self, handle, zone_size, origin):
        ny1, nx1 = self.footprint.shape[0] + 1, self.footprint.shape[1] + 1
        x_text = _coordinate_text(origin[0] + zone_size * np.arange(nx1))
        y_text = _coordinate_text(origin[1] + zone_size * np.arange(ny1))
        z_text = _coordinate_text(origin[2] + zone_size * np.arange(self.k0, self.k1 + 1))
        for layer in range(self.n_layers + 1):
            ids = 1 + layer * self.gp_per_layer + np.arange(self.gp_per_layer)
            for rows in _chunks(self.gp_per_layer):
                handle.write(
                    _lines(
                        b"G",
                        _int_text(ids[rows, None], self.gp_width),
                        x_text[self.gp_i[rows]],
                        y_text[self.gp_j[rows]],
                        np.broadcast_to(z_text[layer], (len(ids[rows]), z_text.shape[1])),
                    )
                )

    def write_zones(self, handle):
        a, b, c, d, step = self.a, self.b, self.c, self.d, self.gp_per_layer
        # FLAC3D B8 order: p0 (0,0,0), p1 (1,0,0), p2 (0,1,0), p3 (0,0,1), p4 (1,1,0),
        # p5 (0,1,1), p6 (1,0,1), p7 (1,1,1).
        local_nodes = np.column_stack([a, b, c, a + step, d, c + step, b + step, d + step])
        for layer in range(self.n_layers):
            first = 1 + layer * self.zones_per_layer
            for rows in _chunks(self.zones_per_layer):
                ids = first + np.arange(rows.start, rows.start + len(local_nodes[rows]))
                nodes = local_nodes[rows] + (1 + layer * step)
                handle.write(
                    _lines(
                        b"Z B8",
                        _int_text(ids[:, None], self.zone_width),
                        _int_text(nodes, self.gp_width),
                    )
                )

    def write_faces(self, handle):
        """Write the boundary faces (bottom, top, then lateral) and return their counts."""
        a, b, c, d, step = self.a, self.b, self.c, self.d, self.gp_per_layer
        j, i = np.nonzero(self.footprint)
        side_nodes = {}
        for side, exposed in self.sides.items():
            keep = exposed[j, i]
            aa, bb, cc, dd = a[keep], b[keep], c[keep], d[keep]
            side_nodes[side] = {
                "-x": [aa, aa + step, cc + step, cc],
                "+x": [bb, dd, dd + step, bb + step],
                "-y": [aa, bb, bb + step, aa + step],
                "+y": [cc, cc + step, dd + step, dd],
            }[side]
        lateral = np.concatenate([np.column_stack(nodes) for nodes in side_nodes.values()])
        face_width = len(str(2 * self.zones_per_layer + len(lateral) * self.n_layers)) + 1
        layers = [
            ("bottom", np.column_stack([a, c, d, b]), [0]),
            ("top", np.column_stack([a, b, d, c]), [self.n_layers]),
            ("lateral", lateral, range(self.n_layers)),
        ]
        counts, next_id = {}, 1
        for name, local_nodes, layer_range in layers:
            counts[name] = 0
            for layer in layer_range:
                for rows in _chunks(len(local_nodes)):
                    nodes = local_nodes[rows] + (1 + layer * step)
                    ids = next_id + np.arange(len(nodes))
                    handle.write(
                        _lines(
                            b"F Q4",
                            _int_text(ids[:, None], face_width),
                            _int_text(nodes, self.gp_width),
                        )
                    )
                    next_id += len(nodes)
                    counts[name] += len(nodes)
        return counts

    def write_zone_group(self, handle, name, labels, label):
        """Write the group of the zones with ``label`` (nothing if none); return the count."""

        def members():
            for layer in range(self.n_layers):
                in_group = labels[self.k0 + layer][self.footprint] == label
                yield 1 + layer * self.zones_per_layer + np.flatnonzero(in_group)

        if not any(ids.size for ids in members()):
            return 0
        return _write_group(handle, "ZGROUP", name, members())


def _write_group(handle, keyword, name, id_arrays):
    """Write a group header and its member ids, ``_IDS_PER_LINE`` per line; return the count."""
    handle.write(f'{keyword} "{name}" SLOT "{SLOT}"\n'.encode())
    count = 0
    for ids in id_arrays:
        if ids.size == 0:
            continue
        count += ids.size
        width = len(str(int(ids.max()))) + 1
        full = ids.size - ids.size % _IDS_PER_LINE
        for rows in _chunks(full // _IDS_PER_LINE):
            block = ids[rows.start * _IDS_PER_LINE : rows.stop * _IDS_PER_LINE]
            handle.write(_lines(b"", _int_text(block.reshape(-1, _IDS_PER_LINE), width)))
        if full < ids.size:
            handle.write(_lines(b"", _int_text(ids[None, full:], width)))
    return count


def _chunks(n):
    return [slice(start, min(start + _ROWS_PER_CHUNK, n)) for start in range(0, n, _ROWS_PER_CHUNK)]


def _int_text(values, width):
    """Non-negative ints as right-aligned ASCII, ``width`` bytes each: (m, c) -> (m, c * width)."""
    remaining = np.array(values, dtype=np.int64)
    text = np.empty((*remaining.shape, width), dtype=np.uint8)
    # One digit position at a time, units first: temporaries stay the size of ``values``.
    for position in range(width - 1, -1, -1):
        shown = (remaining > 0) | (position == width - 1)
        text[..., position] = np.where(shown, remaining % 10 + ord("0"), ord(" "))
        remaining //= 10
    return text.reshape(remaining.shape[0], -1)


def _coordinate_text(values):
    """Coordinates as right-aligned ASCII with a leading space: (n,) -> (n, width) uint8."""
    strings = [f"{value:.12g}" for value in values]
    width = max(len(s) for s in strings) + 1
    return np.frombuffer("".join(s.rjust(width) for s in strings).encode(), dtype=np.uint8).reshape(-1, width)


def _lines(prefix, *columns):
    """Join a constant prefix and byte columns (each (m, w) uint8) into m newline-ended records."""
    m = columns[0].shape[0]
    parts = [np.broadcast_to(np.frombuffer(prefix, dtype=np.uint8), (m, len(prefix)))]
    parts += list(columns)
    parts.append(np.full((m, 1), ord("\n"), dtype=np.uint8))
    return np.concatenate(parts, axis=1).tobytes()


def _checked_volume(labels):
    if np.ndim(labels) != 3:
        raise InputError(f"a FLAC3D grid needs a 3D (z, y, x) label volume, got shape {np.shape(labels)}")
    return check_labels(labels, ndims=(3,))


def positive_number(value, what):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a number, got {value!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise InputError(f"{what} must be a positive number, got {value}")
    return value


def positive_integer(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(f"{what} must be a positive integer, got {value!r}")
    return int(value)
