"""How the optimization variable maps to phase fields, and fields back to labels.

Two phases: the variable is the field of the phase of interest in [0, 1] (box constraints),
filtered and then projected (:mod:`~napari_dmcr.reconstruction.field_maps`). Three or more: one
variable per label, and the fields are their softmax. The final labels keep the target's exact
phase fractions, ranked by the fields.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from napari_dmcr.postprocessing.assignment import assign_with_counts, counts_from_fractions
from napari_dmcr.reconstruction.field_maps import periodic_gaussian, projection


class Phases:
    """How the optimization variable maps to phase fields, for two or more labels."""

    def __init__(self, target, phase, filter_sigma=0.0):
        self.labels = target.labels
        self.filter_sigma = filter_sigma
        self.multiphase = len(self.labels) > 2
        fractions = target.fractions()
        if self.multiphase:
            self.matched = list(self.labels)
            self.fractions = fractions
        else:
            other = next(label for label in self.labels if label != phase)
            self.matched = [phase]
            self.order = [phase, other]
            self.fractions = np.array([fractions[self.labels.index(phase)], fractions[self.labels.index(other)]])
        self.preview_index = self.labels.index(phase) if (self.multiphase and phase is not None) else 0

    def initial(self, shape, generator, device):
        noise = torch.randn((len(self.labels),) + tuple(shape) if self.multiphase else shape, generator=generator)
        if self.multiphase:
            log_fractions = torch.log(torch.as_tensor(self.fractions, dtype=torch.float32).clamp_min(1e-3))
            values = log_fractions.view(-1, *([1] * len(shape))) + 0.5 * noise
        else:
            values = _inside_bounds((self.fractions[0] + 0.15 * noise).clamp(0.0, 1.0))
        return values.to(device=device, dtype=torch.float32)

    def start(self, initial, shape, device):
        """The variable of a given start state (labels or field), average-pooled to ``shape``."""
        if np.issubdtype(initial.dtype, np.integer):
            fields = np.stack([initial == label for label in (self.labels if self.multiphase else self.matched)])
        else:
            fields = initial[None]
        fields = torch.as_tensor(fields, dtype=torch.float32)
        if tuple(fields.shape[1:]) != tuple(shape):
            fields = F.interpolate(fields[None], size=tuple(shape), mode="area")[0]
        if self.multiphase:
            # Logits whose softmax is the pooled one-hot, softened so that no phase starts at 0.
            return torch.log(0.9 * fields + 0.1 / len(self.labels)).to(device)
        return _inside_bounds(fields[0]).to(device)

    def fields(self, variable, steepness=0.0):
        """The phase fields of the variable: filtered, then (two phases) projected."""
        smooth = periodic_gaussian(variable, self.filter_sigma, variable.ndim - self.multiphase)
        if self.multiphase:
            return list(torch.softmax(smooth, dim=0))
        return [projection(smooth, steepness)]

    def preview(self, fields):
        return fields[self.preview_index]

    def next_level_start(self, variable, shape):
        """The start of a finer level: the upsampled solution, inside the bounds (two phases)."""
        if self.multiphase:
            return _upsampled(variable, shape)
        return _inside_bounds(_upsampled(variable[None], shape)[0].clamp(0.0, 1.0))

    def upsample_fields(self, fields, shape):
        """Linear upsampling of phase fields (a list of tensors) to ``shape``."""
        return list(_upsampled(torch.stack(fields), shape))

    def labels_from(self, fields):
        """Labels with the target fractions, ranked by the phase fields."""
        with torch.no_grad():
            fields = [f.detach().cpu().double().numpy() for f in fields]
        scores = np.stack(fields) if self.multiphase else np.stack([fields[0], 1.0 - fields[0]])
        counts = counts_from_fractions(self.fractions, scores[0].size)
        index = assign_with_counts(scores, counts)
        values = np.array(self.labels if self.multiphase else self.order)
        return values[index].astype(np.uint8 if values.max() < 256 else np.int32)

    def indicator_fields(self, labels, device):
        return [torch.as_tensor(labels == m, dtype=torch.float32, device=device) for m in self.matched]


def _inside_bounds(field, margin=0.05):
    """Map a field from [0, 1] onto [margin, 1 - margin].

    L-BFGS-B started with many variables on their bounds (a clipped random field, an upsampled
    coarse solution or a labeled start) was seen to crawl, lowering the loss by a few parts per thousand per
    iteration; started strictly inside the box, the same runs converge (sample at 48^3: residual
    0.07 instead of 0.20).
    """
    return margin + (1.0 - 2.0 * margin) * field


def _upsampled(channels, shape):
    """(Bi/tri)linear upsampling of a stack of channels ``(c, *grid)`` to ``(c, *shape)``."""
    mode = "bilinear" if len(shape) == 2 else "trilinear"
    return F.interpolate(channels[None], size=tuple(shape), mode=mode, align_corners=False)[0]
