"""napari sample-data contributions (layer-data tuples; no napari import needed)."""

from napari_dmcr.samples.conglomerate import LABEL_NAMES, conglomerate_slice, conglomerate_volume


def conglomerate_slice_layers():
    data = conglomerate_slice((128, 128), seed=0)
    return [(data, {"name": "conglomerate slice", "metadata": {"label_names": dict(LABEL_NAMES)}}, "labels")]


def conglomerate_volume_layers():
    data = conglomerate_volume((128, 128, 128), seed=0)
    return [(data, {"name": "conglomerate truth", "metadata": {"label_names": dict(LABEL_NAMES)}}, "labels")]
