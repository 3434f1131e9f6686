"""Classical reconstruction methods, for comparison with the differentiable engine."""

from napari_dmcr.baselines.annealing_result import AnnealingResult
from napari_dmcr.baselines.yeong_torquato import run_yeong_torquato, yeong_torquato

__all__ = ["AnnealingResult", "run_yeong_torquato", "yeong_torquato"]
