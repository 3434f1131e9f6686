"""Reconstruction as optimization: a relaxed field whose slices match target descriptors."""

from napari_dmcr.reconstruction.engine import (
    MAX_ITER,
    ReconstructionResult,
    default_chunk_size,
    default_multigrid_levels,
    planned_iterations,
    reconstruct,
    resolve_device,
    resolved_start,
    run_reconstruction,
    schedule,
    stages,
)
from napari_dmcr.reconstruction.targets import Target, make_target

__all__ = [
    "MAX_ITER",
    "ReconstructionResult",
    "Target",
    "default_chunk_size",
    "default_multigrid_levels",
    "make_target",
    "planned_iterations",
    "reconstruct",
    "resolve_device",
    "resolved_start",
    "run_reconstruction",
    "schedule",
    "stages",
]
