"""Post-processing of labeled images: exact-fraction rounding, smoothing, clean-up."""

from napari_dmcr.postprocessing.assignment import assign_with_counts, counts_from_fractions
from napari_dmcr.postprocessing.smoothing import gaussian_smooth, remove_small_islands

__all__ = ["assign_with_counts", "counts_from_fractions", "gaussian_smooth", "remove_small_islands"]
