"""The end of a run: from the optimizer's best fields to a :class:`ReconstructionResult`.

The fields become labels with the target's exact fractions; from a fitted start (one slice or
three of an isotropic material) the polish then gives way to the start where it broke its
network, and the specks go (:func:`~napari_dmcr.reconstruction.result.keep_the_network`); last,
the labels are scored under the full-size loss.
"""

from __future__ import annotations

import math
import time

import numpy as np

from napari_dmcr.reconstruction.loss import level_loss
from napari_dmcr.reconstruction.result import ReconstructionResult, keep_the_network

IMPLAUSIBLE_RESIDUAL = 1.0  # a core whose descriptors are this far off is not the target's material


# Three slices whose mean chords along two axes differ by more than this show a layered or
# elongated material (real sandstones and the sample: 1.08-1.21; three_slices.json).
MAX_CHORD_ANISOTROPY = 1.5


def labels_score(final_loss, settings, phases, labels):
    """``(weighted loss, residual, errors per direction)`` of labels under a full-size loss."""
    final_errors = final_loss.errors_per_direction(phases.indicator_fields(labels, settings.device))
    weighted = sum(
        w * sum(spec.weight * errors[spec.name] for spec in specs) * len(targets)
        for w, errors, (specs, targets) in zip(settings.direction_weights, final_errors, final_loss.directions)
    )
    if final_loss.isotropic is not None:
        weighted += final_loss.isotropic.weight * final_errors[0]["s2_3d"] * len(phases.matched)
    return weighted, math.sqrt(weighted / max(final_loss.total_weight, 1e-12)), final_errors


def finished_result(settings, phases, record, final_fields, cancelled, chunk_size, parameters):
    """Labels with the exact fractions, their descriptor errors, and the result of the run."""
    shape = settings.shape
    if tuple(final_fields[0].shape) != shape:  # cancelled on a coarse level
        final_fields = phases.upsample_fields(final_fields, shape)
    labels = phases.labels_from(final_fields)
    field = phases.preview(final_fields).cpu().numpy().astype(np.float32)
    parameters["stopped_at_time_limit"] = record.timed_out
    # The fitted start carries the 3D network the slices cannot show, from one slice or three
    # (three slices through one point: the polish cut Yan's pore network along two axes); not
    # where three slices show a layered material, which need not percolate where the start did.
    isotropic = settings.target.chord_anisotropy() <= MAX_CHORD_ANISOTROPY
    fitted = record.start_cut is not None and not phases.multiphase
    if fitted and not cancelled and len(settings.shape) == 3 and isotropic:
        labels, field = keep_the_network(phases, record, labels, field, settings.target.images, parameters)
    final_loss = level_loss(settings, phases, 0, chunk_size)  # no cancel token: a cancelled run is scored too
    weighted, residual, final_errors = labels_score(final_loss, settings, phases, labels)
    # Mean over the directions (a small direction may have dropped a descriptor).
    names = dict.fromkeys(name for errors in final_errors for name in errors)
    mean_errors = {n: float(np.mean([e[n] for e in final_errors if n in e])) for n in names}
    record.report(
        record.done if cancelled else record.total,
        "done",
        weighted,
        mean_errors,
        lambda: phases.preview(final_fields),
        force=True,
    )
    if residual > IMPLAUSIBLE_RESIDUAL and not cancelled:
        record.notes.append(
            f"warning: residual {residual:.3g}: the core's descriptors are more than 100 % off the target's; check "
            "that the target is a segmentation with the phases you expect, or give the run more iterations"
        )
    fractions = {
        str(label): {"target": float(f), "result": float((labels == label).mean())}
        for label, f in zip(phases.labels, settings.target.fractions())
    }
    return ReconstructionResult(
        labels=labels,
        field=field,
        history=record.history,
        final_errors=final_errors,
        residual=residual,
        fractions=fractions,
        parameters=parameters,
        timings={
            "optimize_s": record.optimize_seconds,
            "loss_s": record.loss_seconds,
            "total_s": time.perf_counter() - record.start,
        },
        cancelled=cancelled,
        notes=record.notes,
    )
