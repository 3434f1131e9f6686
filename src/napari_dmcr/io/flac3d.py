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

The records are written by :mod:`napari_dmcr.io.f3grid_records`, layer by layer, into a temporary
file that is renamed onto the target when complete.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from napari_dmcr.checks import positive_integer, positive_number
from napari_dmcr.errors import InputError
from napari_dmcr.io.atomic import atomic_path
from napari_dmcr.io.f3grid_records import SLOT, SpecimenGrid, write_records
from napari_dmcr.labels import check_labels

DEFAULT_GROUP_NAMES = {0: "gravel", 1: "matrix"}


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
    factor = positive_integer("coarsening factor", factor)
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
    voxel_size = positive_number("voxel size", voxel_size)
    origin = _checked_origin(origin)
    coarsen = positive_integer("coarsening factor", coarsen)
    labels = coarsen_labels(labels, coarsen)
    zone_size = voxel_size * coarsen
    names = group_names_for(labels_present(labels), group_names)
    footprint, (k0, k1) = specimen_mask(labels.shape, zone_size, cylinder)
    grid = SpecimenGrid(footprint, k0, k1)
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        handle.write(_header(grid, zone_size, origin, names, path.name))
        group_counts, face_counts = write_records(handle, grid, labels, names, zone_size, origin, face_groups)
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


def _header(grid, zone_size, origin, names, file_name):
    """Comment lines that say what the grid is and how to import it."""
    return (
        f"* FLAC3D grid written by napari-dmcr: {grid.n_zones} B8 zones of "
        f"{zone_size:.12g} model units, origin ({', '.join(f'{v:.12g}' for v in origin)})\n"
        f"* zone groups (slot {SLOT}): "
        + ", ".join(f"{name} = label {label}" for label, name in names.items())
        + f"\n* import with: zone import '{file_name}' use-given-ids\n"
    ).encode()


def _checked_volume(labels):
    if np.ndim(labels) != 3:
        raise InputError(f"a FLAC3D grid needs a 3D (z, y, x) label volume, got shape {np.shape(labels)}")
    return check_labels(labels, ndims=(3,))


def _checked_origin(origin):
    try:
        origin = tuple(float(v) for v in origin)
    except (TypeError, ValueError):
        origin = ()
    if len(origin) != 3 or not all(math.isfinite(v) for v in origin):
        raise InputError("origin must be three finite numbers (x, y, z)")
    return origin
