"""The records of a ``.f3grid`` (see :mod:`napari_dmcr.io.flac3d`): ids of the gridpoints, zones
and boundary faces of a prismatic specimen, and their ASCII text.

Records are formatted as byte arrays, a bounded number at a time, and written layer by layer, so
memory does not grow with the number of layers.
"""

from __future__ import annotations

import numpy as np

FACE_GROUPS = ("bottom", "top", "lateral")
SLOT = "Default"
_IDS_PER_LINE = 16
_ROWS_PER_CHUNK = 1 << 13  # records formatted at once: bounds the memory of the text buffers


def write_records(handle, grid, labels, names, zone_size, origin, face_groups):
    """Write the gridpoints, zones, faces and groups of ``grid``; return the zone and face group counts.

    ``names`` maps each label of ``labels`` (the zone grid) to its zone group name.
    """
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
    return group_counts, face_counts


class SpecimenGrid:
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
