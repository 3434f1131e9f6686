"""What a reconstruction returns (its progress steps and its result), and the rules that its
polish keeps the start's network and leaves no more specks than the target shows."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

from napari_dmcr.evaluation.morphology import connectivity, euler_characteristic_density
from napari_dmcr.io.atomic import json_ready
from napari_dmcr.labels import distinct_images
from napari_dmcr.postprocessing.specks import RANK_SIGMA, remove_specks, speck_density
from napari_dmcr.progress import ProgressStep, fractions_line

LARGEST_CLUSTER_DROP = 0.02  # share of the phase the polish may split off the start's largest cluster
# The polish may raise the phase's Euler characteristic by at most this times the start's (and
# MIN_EULER): the true sub-volumes' spread is 0.4-1 times their mean (fidelity3d.json).
EULER_RISE = 1.0
MIN_EULER = 10


@dataclass
class ReconstructionResult:
    """Everything a reconstruction produced.

    Attributes
    ----------
    labels : numpy.ndarray
        Final labeled image/volume (the target's label values, exact target fractions).
    field : numpy.ndarray of float32
        The continuous field of the phase of interest before rounding.
    history : list of dict
        One entry per optimizer iteration: restart, run (the index of the optimizer run in
        :func:`stages`), level, stage ("optimize" or "sharpen"), iteration, evaluations
        (counted per run), loss, residual, elapsed and the error of each descriptor.
    final_errors : list of dict
        Normalized error of each descriptor per direction, measured on ``labels``.
    residual : float
        Weighted RMS relative descriptor error of ``labels`` (see descriptor_set).
    fractions : dict
        Target and result phase fractions per label.
    parameters : dict
        Every setting of the run (seed, device, descriptor specs, ...) and software versions.
    timings : dict
        Wall times in seconds: ``optimize_s`` (all optimizer runs), ``loss_s`` (of which in the
        loss and its gradient; the rest is the optimizer's own work and the progress reports),
        ``total_s`` (the whole run: also the losses' set-up, fitted starts, the final labels).
    cancelled : bool
        True when the run was stopped before it finished.
    notes : list of str
        What the run adapted or noticed (descriptors skipped on small slices, a start kept), and
        warnings (``"warning: ..."``: a residual above 1, a core that is not the target's material).
    """

    labels: np.ndarray
    field: np.ndarray
    history: list
    final_errors: list
    residual: float
    fractions: dict
    parameters: dict
    timings: dict
    cancelled: bool = False
    notes: list = field(default_factory=list)

    def record(self):
        """What a sidecar or a layer's metadata keeps of the run (all but the arrays)."""
        shape = self.parameters["shape"]
        return json_ready({
            "method": "dmcr", "cancelled": bool(self.cancelled), "parameters": self.parameters,
            "device": self.parameters["device"], "timings": self.timings, "residual": self.residual,
            "final_errors": dict(zip("zyx" if len(shape) == 3 else ["image"], self.final_errors)),
            "fractions": self.fractions, "notes": self.notes, "history": self.history,
        })  # fmt: skip

    def quality(self):
        return f"residual {self.residual:.4g} (weighted RMS relative descriptor error)"

    def _material_fraction(self):
        """What the target says of the material's fraction of the phase: one slice is a sample."""
        known = self.parameters.get("fraction_intervals", {}).get(self.parameters.get("phase"))
        if not known:
            return []
        return [
            f"  the target's fraction of {self.parameters['phase']}: {known['fraction']:.4f}; "
            f"95 % interval for the material {known['low']:.4f}-{known['high']:.4f}"
        ]

    def summary(self):
        """Lines for a terminal: fractions, quality, notes, and whether the run was cancelled."""
        lines = [fractions_line(self.labels), *self._material_fraction(), self.quality()]
        lines += [f"  {note}" for note in self.notes]
        return lines + (["cancelled: the best state reached was written"] if self.cancelled else [])


def keep_the_network(phases, record, labels, field, images, parameters):
    """Labels without excess specks (:func:`without_excess_specks`) whose polish has not broken
    the fitted start's network: else the start's, cleaned the same way.

    The polish refines statistics the slices show; 3D connectivity is what they cannot tell and
    the start's model carries. The start is kept where the start's phase joins two opposite faces
    and the polished one's does not, where the polish splits more than
    :data:`LARGEST_CLUSTER_DROP` of the phase off its largest cluster, or where it raises the
    phase's Euler characteristic by more than :data:`EULER_RISE` times the start's (fewer loops,
    more isolated pieces; fidelity3d.json: the Berea start percolated along every axis, its polish
    along one; a Rabbani polish split 3.4 % of the pores off the network, 2.9 SD below the rock's
    largest cluster). Both are compared after their specks are removed.
    """
    phase, other = phases.order
    targets = {label: speck_density(distinct_images(images), label) for label in (phase, other)}
    start_field = record.start_cut.astype(np.float32)
    polished, polished_changed = without_excess_specks(phase, labels, field, targets)
    start, start_changed = without_excess_specks(
        phase, np.where(record.start_cut, phase, other).astype(labels.dtype), start_field, targets
    )
    states = {name: network(volume, phase) for name, volume in (("start", start), ("polished", polished))}
    parameters["polish_network"] = states
    before, after = states["start"], states["polished"]
    cut = [axis for axis, was, now in zip("zyx", before["percolates"], after["percolates"]) if was and not now]
    split = before["largest_cluster_fraction"] - after["largest_cluster_fraction"]
    rise = after["euler"] - before["euler"]
    reasons = [f"disconnected phase {phase} along {', '.join(cut)}"] if cut else []
    reasons += [f"split {split:.1%} of phase {phase} off its largest cluster"] if split > LARGEST_CLUSTER_DROP else []
    if rise > EULER_RISE * max(abs(before["euler"]), MIN_EULER):
        reasons.append(f"raised its Euler characteristic from {before['euler']} to {after['euler']}")
    parameters["polish_kept"] = not reasons
    chosen, changed = (polished, polished_changed) if not reasons else (start, start_changed)
    if reasons:
        record.notes.append(f"the fitted start was kept: the polish {'; '.join(reasons)}")
        field = start_field
    parameters["speck_voxels_changed"] = changed
    if changed:
        record.notes.append(f"specks removed: {changed} voxels changed, fractions kept")
    return chosen, field


def network(volume, phase):
    """What the polish must keep of a phase: percolation per axis, the largest cluster's share,
    the cluster count and the Euler characteristic (6-connected phase)."""
    state = connectivity(volume, phase)
    return {
        "percolates": state["percolates"],
        "largest_cluster_fraction": state["largest_cluster_fraction"],
        "clusters": state["n_clusters"],
        "euler": round(euler_characteristic_density(volume, phase) * volume.size),
    }


def without_excess_specks(phase, labels, field, targets):
    """``(labels, voxels changed)``: two-phase labels whose slices hold no more small clusters
    per pixel than ``targets`` (label -> the target images' density), every fraction kept
    (:func:`~napari_dmcr.postprocessing.specks.remove_specks`).

    The polish's interface noise and a cemented pack's closed pockets leave specks the material
    does not have; they count as clusters and in the Euler number in 3D (fidelity3d.json: the
    sandstones' cluster counts and Euler numbers). The field ranks where the interface moves.
    """
    rank = ndi.gaussian_filter(field, RANK_SIGMA, mode="wrap")
    clean = remove_specks(labels, phase, targets, rank=rank)
    return clean, int(np.count_nonzero(clean != labels))


def progress_step(iteration, total, stage, loss, errors, start, preview, shape):
    """A :class:`~napari_dmcr.progress.ProgressStep` with the field shown at the output shape."""
    volume = preview.detach().cpu().numpy().astype(np.float32)
    if volume.shape != tuple(shape):
        # Coarse multigrid levels are shown at full size so that a live view keeps its shape.
        factors = [s // v for s, v in zip(shape, volume.shape)]
        for axis, factor in enumerate(factors):
            volume = np.repeat(volume, factor, axis=axis)
        pad = [(0, s - v) for s, v in zip(shape, volume.shape)]
        volume = np.pad(volume, pad, mode="edge")
    losses = {name: float(value) for name, value in errors.items()}
    losses["total"] = float(loss)
    return ProgressStep(
        iteration=int(iteration),
        total=int(total),
        stage=stage,
        losses=losses,
        elapsed=time.perf_counter() - start,
        volume=volume,
    )
