"""Bundled, procedurally generated sample microstructures."""

from napari_dmcr.samples.conglomerate import (
    GRAVEL,
    MATRIX,
    conglomerate_slice,
    conglomerate_volume,
    representative_index,
)

__all__ = ["GRAVEL", "MATRIX", "conglomerate_slice", "conglomerate_volume", "representative_index"]
