"""Fidelity of a reconstruction: errors against the original slice and a true volume, and
morphological measures that the reconstruction was not fitted to."""

from napari_dmcr.evaluation.compare import (
    descriptor_gaps,
    evaluate,
    fraction_errors,
    phase_fractions,
    s2_comparison,
)
from napari_dmcr.evaluation.morphology import (
    chord_length_distribution,
    connectivity,
    euler_characteristic_density,
    lineal_path,
    morphology_summary,
    specific_surface_area,
    two_point_cluster_function,
)
from napari_dmcr.evaluation.structure import (
    grain_measures,
    percolation,
    structure_measures,
    truth_spread,
    z_scores,
)
from napari_dmcr.evaluation.thickness import local_thickness, size_distribution
from napari_dmcr.evaluation.unfitted import morphology_comparison, slice_statistics

__all__ = [
    "chord_length_distribution",
    "connectivity",
    "descriptor_gaps",
    "euler_characteristic_density",
    "evaluate",
    "fraction_errors",
    "grain_measures",
    "lineal_path",
    "local_thickness",
    "morphology_comparison",
    "morphology_summary",
    "percolation",
    "phase_fractions",
    "s2_comparison",
    "size_distribution",
    "slice_statistics",
    "specific_surface_area",
    "structure_measures",
    "truth_spread",
    "two_point_cluster_function",
    "z_scores",
]
