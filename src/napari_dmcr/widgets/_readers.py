"""npe2 reader for VTK image data (.vti), which napari cannot open on its own.

Slices in .npy, .tif and .png open with napari's built-in readers; the widgets take Image and
Labels layers alike.
"""

from __future__ import annotations

from napari_dmcr.io.writers import read_sidecar, read_volume, read_voxel_size


def get_vti_reader(path):
    """Return the reader for a single ``.vti`` path, else None (npe2 reader contract)."""
    if isinstance(path, str) and path.lower().endswith(".vti"):
        return read_vti_layers
    return None


def read_vti_layers(path):
    """A .vti volume as a Labels layer with its voxel size as scale and its sidecar as metadata.

    Parameters
    ----------
    path : str

    Returns
    -------
    list of tuple
        One ``(data, attributes, "labels")`` layer-data tuple.
    """
    volume = read_volume(path)
    voxel_size = read_voxel_size(path) or 1.0
    sidecar = read_sidecar(path)
    metadata = {"dmcr": sidecar} if sidecar else {}
    if "label_names" in sidecar:
        metadata["label_names"] = sidecar["label_names"]
    return [(volume, {"scale": (voxel_size,) * volume.ndim, "metadata": metadata}, "labels")]
