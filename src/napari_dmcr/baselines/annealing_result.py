"""The outcome of a Yeong-Torquato run and what a sidecar or a layer keeps of it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from napari_dmcr.io.atomic import json_ready
from napari_dmcr.progress import fractions_line


@dataclass
class AnnealingResult:
    """Outcome of a Yeong-Torquato run.

    Attributes
    ----------
    labels : numpy.ndarray of uint8
        The lowest-energy state met during the run, with the target's labels.
    energy : float
        Energy of ``labels``.
    energy_history : numpy.ndarray of float64
        Energy of the current state at the start and after every batch of trial swaps.
    history_swaps : numpy.ndarray of int64
        Trial swaps done at each entry of ``energy_history``.
    s2 : numpy.ndarray of float64, shape (n_axes, max_lag + 1)
        Periodic S2 of ``labels`` along each axis (from the incrementally updated pair counts),
        of the phase of interest; for three or more labels one row per label (in increasing
        order), shape (n_labels, n_axes, max_lag + 1).
    target_s2 : numpy.ndarray of float64
        The target profile each axis was matched to, shaped as ``s2``.
    swaps : int
        Trial swaps done.
    accepted : int
        Trial swaps accepted.
    swaps_per_second : float
        Trial swaps per second of annealing time (compilation, set-up and previews excluded).
    elapsed : float
        Wall time of the whole run in seconds.
    initial_temperature, final_temperature : float
        Temperature at the first and at the last trial swap.
    stop_reason : str
        ``"target_energy"``, ``"stall"``, ``"max_swaps"`` or ``"cancelled"``.
    cancelled : bool
        True when the run was stopped through its cancel token; ``labels`` is then the best
        state found so far.
    parameters : dict
        Every setting of the run, defaults resolved (seed included).
    """

    labels: np.ndarray
    energy: float
    energy_history: np.ndarray
    history_swaps: np.ndarray
    s2: np.ndarray
    target_s2: np.ndarray
    swaps: int
    accepted: int
    swaps_per_second: float
    elapsed: float
    initial_temperature: float
    final_temperature: float
    stop_reason: str
    cancelled: bool = False
    parameters: dict = field(default_factory=dict)

    @property
    def timings(self):
        return {"total_s": self.elapsed}

    @property
    def notes(self):
        return []

    def record(self):
        """What a sidecar or a layer's metadata keeps of the run (all but the arrays)."""
        return json_ready({
            "method": "yt", "cancelled": bool(self.cancelled), "parameters": self.parameters, "device": "cpu",
            "timings": self.timings, "energy": self.energy, "swaps": self.swaps, "accepted": self.accepted,
            "swaps_per_second": self.swaps_per_second, "stop_reason": self.stop_reason, "notes": self.notes,
        })  # fmt: skip

    def quality(self):
        return (f"S2 energy {self.energy:.4g} after {self.swaps} swaps "
                f"({self.swaps_per_second:.3g}/s, stop: {self.stop_reason})")  # fmt: skip

    def summary(self):
        """Lines for a terminal: fractions, quality, and whether the run was cancelled."""
        lines = [fractions_line(self.labels), self.quality()]
        return lines + (["cancelled: the best state reached was written"] if self.cancelled else [])
