"""Reconstruction as optimization: a relaxed field whose slices match target descriptors."""

from napari_dmcr.reconstruction.cost import check_memory, default_chunk_size, estimate_run, largest_fitting_side
from napari_dmcr.reconstruction.engine import ReconstructionResult, reconstruct, run_reconstruction
from napari_dmcr.reconstruction.settings import (
    MAX_ITER,
    ReconstructionSettings,
    check_settings,
    default_multigrid_levels,
    options_from_parameters,
    planned_iterations,
    resolve_device,
    resolved_start,
    schedule,
    stages,
)
from napari_dmcr.reconstruction.targets import Target, make_target

__all__ = [
    "MAX_ITER",
    "ReconstructionResult",
    "ReconstructionSettings",
    "Target",
    "check_memory",
    "check_settings",
    "default_chunk_size",
    "default_multigrid_levels",
    "estimate_run",
    "largest_fitting_side",
    "make_target",
    "options_from_parameters",
    "planned_iterations",
    "reconstruct",
    "resolve_device",
    "resolved_start",
    "run_reconstruction",
    "schedule",
    "stages",
]
