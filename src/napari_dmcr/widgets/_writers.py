"""npe2 writers (File > Save Layers) and the export shared with the Export widget."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_dmcr.io.atomic import write_json
from napari_dmcr.io.f3dat import check_confining_pressures, write_f3dat
from napari_dmcr.io.flac3d import group_names_for, write_f3grid
from napari_dmcr.io.writers import file_sha256, sidecar_path, write_volume

# FLAC3D settings of File > Save Layers, where there is no form to ask for them.
FLAC3D_DEFAULTS = {
    "group_names": None,
    "coarsen": 1,
    "cylinder": False,
    "f3dat": True,
    "confining_pressures_mpa": (0.1, 0.2, 0.3, 0.4),
}


def export_layer_data(path, labels, *, voxel_size, parameters, flac3d=None):
    """Write ``labels`` to ``path`` (format by suffix) with its sidecar JSON.

    Parameters
    ----------
    path : Path
        Output file; ``.f3grid`` writes a FLAC3D grid, other suffixes go to
        :func:`napari_dmcr.io.writers.write_volume`.
    labels : numpy.ndarray
    voxel_size : float
    parameters : dict
        What the sidecar records (the run's parameters, the source layer).
    flac3d : dict, optional
        ``group_names``, ``coarsen``, ``cylinder``, ``f3dat`` (bool) and
        ``confining_pressures_mpa`` for a FLAC3D export; missing keys take
        :data:`FLAC3D_DEFAULTS`.

    Returns
    -------
    list of Path
        The files written.
    """
    if path.suffix != ".f3grid":
        write_volume(path, labels, voxel_size=voxel_size, parameters=parameters)
        return [path, sidecar_path(path)]
    flac3d = {**FLAC3D_DEFAULTS, **(flac3d or {})}
    if flac3d["f3dat"]:
        check_confining_pressures(flac3d["confining_pressures_mpa"])  # before the grid's first byte
    names = group_names_for(np.unique(labels), flac3d["group_names"])
    counts = write_f3grid(
        path,
        labels,
        voxel_size=voxel_size,
        group_names=names,
        coarsen=flac3d["coarsen"],
        cylinder=flac3d["cylinder"],
    )
    written = [path]
    if flac3d["f3dat"]:
        written.append(
            write_f3dat(
                path.with_suffix(".f3dat"),
                path,
                group_names=names,
                confining_pressures_mpa=flac3d["confining_pressures_mpa"],
            )
        )
    sidecar = {
        **parameters,
        "voxel_size": voxel_size,
        "format": "f3grid",
        "coarsen": flac3d["coarsen"],
        "cylinder": flac3d["cylinder"],
        "group_names": {str(label): name for label, name in names.items()},
        "flac3d": counts,
        "sha256": file_sha256(path),
    }
    write_json(sidecar_path(path), sidecar)
    return [*written, sidecar_path(path)]


def layer_parameters(name, metadata):
    """What a sidecar records of a layer: its name, label names and the run's parameters."""
    parameters = {"source_layer": name, **metadata.get("dmcr", {})}
    if metadata.get("label_names"):
        parameters["label_names"] = {str(k): v for k, v in metadata["label_names"].items()}
    return parameters


def write_labels(path, data, attributes):
    """npe2 writer of a Labels layer: .npy, .tif, .vti or .f3grid (+ .f3dat), with the sidecar JSON.

    Parameters
    ----------
    path : str
        Target file; its suffix picks the format.
    data : array_like
        The layer's labels.
    attributes : dict
        The layer's attributes (``name``, ``scale``, ``metadata``).

    Returns
    -------
    list of str
        The files written.
    """
    metadata = attributes.get("metadata", {}) or {}
    names = {int(k): v for k, v in (metadata.get("label_names") or {}).items()}
    parameters = layer_parameters(attributes.get("name"), metadata)
    flac3d = {**FLAC3D_DEFAULTS, "group_names": names or None}
    written = export_layer_data(
        Path(path),
        np.asarray(data),
        voxel_size=float(attributes.get("scale", [1.0])[-1]),
        parameters=parameters,
        flac3d=flac3d,
    )
    return [str(p) for p in written]
