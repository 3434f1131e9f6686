"""napari sample-data contributions (layer-data tuples; no napari import needed)."""

from napari_dmcr.samples.conglomerate import conglomerate_slice, conglomerate_volume

_LABEL_NAMES = {"0": "gravel", "1": "matrix"}


def conglomerate_slice_layers():
    data = conglomerate_slice((128, 128), seed=0)
    return [(data, {"name": "conglomerate slice", "metadata": {"label_names": _LABEL_NAMES}}, "labels")]


def conglomerate_volume_layers():
    data = conglomerate_volume((128, 128, 128), seed=0)
    return [(data, {"name": "conglomerate truth", "metadata": {"label_names": _LABEL_NAMES}}, "labels")]
