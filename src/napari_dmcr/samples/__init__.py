"""Bundled, procedurally generated sample microstructures."""

from napari_dmcr.samples.conglomerate import (
    GRAVEL,
    LABEL_NAMES,
    MATRIX,
    conglomerate_slice,
    conglomerate_volume,
    representative_index,
)

__all__ = ["GRAVEL", "LABEL_NAMES", "MATRIX", "conglomerate_slice", "conglomerate_volume", "representative_index"]
