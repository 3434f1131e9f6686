"""Reconstruction as optimization: a relaxed field whose slices match target descriptors."""

from napari_dmcr.reconstruction.cost import check_memory, default_chunk_size, estimate_run, largest_fitting_side
from napari_dmcr.reconstruction.engine import reconstruct, run_reconstruction
from napari_dmcr.reconstruction.result import ReconstructionResult
from napari_dmcr.reconstruction.schedule import (
    MAX_ITER,
    default_multigrid_levels,
    planned_iterations,
    planned_total,
    resolved_start,
    schedule,
    stages,
)
from napari_dmcr.reconstruction.settings import (
    ReconstructionSettings,
    check_settings,
    options_from_parameters,
    resolve_device,
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
    "planned_total",
    "reconstruct",
    "resolve_device",
    "resolved_start",
    "run_reconstruction",
    "schedule",
    "stages",
]
