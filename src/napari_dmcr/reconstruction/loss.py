"""The reconstruction loss over all slices of all directions, with bounded memory.

With ``match="volume"`` (the default) each direction's descriptor is that of the volume: the
mean of its slices' values, as the volume's in-plane correlation functions are the mean of its
slices'. The loss is

    loss = sum_directions w_dir * sum_descriptors w_d * e_d(mean_slices D_d(slice))

with e_d the normalized error of :mod:`napari_dmcr.descriptors.descriptor_set` (a relative
squared error). Single slices may then depart from the target as slices of a real material do
(their phase fractions spread by several percent); with ``match="slices"`` every slice is held
to the target, ``e_d`` averaged over slices (each slice of such a core had the target fraction
to within 0.001, where true volumes' slices spread with SD 0.04-0.14).

The slices of each direction are evaluated in chunks of ``chunk_size`` slices, and each chunk's
part of the gradient accumulated into the volume's ``.grad``, so peak memory is set by the
chunk, not by the volume. For ``match="volume"`` over several chunks, a first pass without
gradients gives the mean descriptor; a second back-propagates each chunk's share.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from napari_dmcr.descriptors.descriptor_set import descriptor_targets, normalized_errors, parts_error
from napari_dmcr.descriptors.fields import volume_slices
from napari_dmcr.descriptors.multigrid import pooled
from napari_dmcr.progress import CancelToken
from napari_dmcr.reconstruction.isotropy import IsotropicS2

ISOTROPIC_RANGE = 16  # largest vector length of the isotropic 3D S2 term, in voxels of each level


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
    match : {"volume", "slices"}
        Match each direction's mean descriptor, or every slice's (see the module docstring).
    isotropic : IsotropicS2, optional
        A 3D term added to the loss with its own weight
        (:mod:`napari_dmcr.reconstruction.isotropy`), reported as ``s2_3d``.
    cache : dict, optional
        Keeps the target descriptors of each target tensor (by identity: the tensors must stay
        alive, as in :attr:`Target.cache`), for the next loss on the same targets.
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
        match="volume",
        isotropic=None,
        cache=None,
    ):
        self.shape = tuple(shape)
        self.match = match
        self.isotropic = isotropic
        self.direction_weights = tuple(float(w) for w in direction_weights)
        self.chunk_size = max(1, int(chunk_size))
        self.cancel = cancel or CancelToken()
        self.notes = []
        self.directions = []
        computed = {} if cache is None else cache
        for axis, phase_fields in enumerate(target_fields):
            slice_shape = self._slice_shape(axis)
            fitted, notes = fit_specs(specs, slice_shape)
            self.notes.extend(notes)
            target_specs = tuple(replace(s, periodic=target_periodic) for s in fitted)
            targets = []
            for f in phase_fields:
                if isinstance(f, torch.Tensor):
                    key = ("descriptors", id(f), target_specs)  # f lives on in the cache of its pooled image
                    if key not in computed:
                        computed[key] = descriptor_targets(target_specs, f[None], self.cancel)
                    f = computed[key]
                targets.append(f)
            self.directions.append((fitted, targets))
        self.total_weight = sum(
            w * sum(s.weight for s in fitted) * len(targets)
            for w, (fitted, targets) in zip(self.direction_weights, self.directions)
        )
        if isotropic is not None:
            self.total_weight += isotropic.weight * len(isotropic.targets)

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
        direction_errors = self._volume_errors if self.match == "volume" else self._slice_errors
        for axis, (specs, targets) in enumerate(self.directions):
            direction_weight = self.direction_weights[axis]
            errors = direction_errors(phase_fields_fn, variable, axis, specs, targets, direction_weight)
            for spec in specs:
                total = total + direction_weight * spec.weight * errors[spec.name]
                per_descriptor[spec.name] = per_descriptor.get(spec.name, 0.0) + direction_weight * errors[spec.name]
                weights[spec.name] = weights.get(spec.name, 0.0) + direction_weight * len(targets)
        if self.isotropic is not None:
            errors = self.isotropic.errors(phase_fields_fn(variable))
            term = self.isotropic.weight * sum(errors)
            term.backward()
            total = total + term.detach().double()
            per_descriptor["s2_3d"] = sum(e.detach().double() for e in errors)
            weights["s2_3d"] = len(errors)
        return float(total), {name: float(value) / weights[name] for name, value in per_descriptor.items()}

    def _slice_errors(self, phase_fields_fn, variable, axis, specs, targets, direction_weight):
        """Each slice held to the target: errors summed over phases (mean over slices); the
        gradient is accumulated chunk by chunk."""
        count = self._slice_count(axis)
        sums = {spec.name: 0.0 for spec in specs}
        for start in range(0, count, self.chunk_size):
            self.cancel.raise_if_cancelled()
            stacks = self._stack(phase_fields_fn(variable), axis)
            chunk_loss = 0.0
            for stack, phase_targets in zip(stacks, targets):
                errors = normalized_errors(specs, stack[start : start + self.chunk_size], phase_targets)
                for spec in specs:
                    error_sum = errors[spec.name].sum() / count
                    chunk_loss = chunk_loss + direction_weight * spec.weight * error_sum
                    sums[spec.name] = sums[spec.name] + error_sum.detach().double()
            chunk_loss.backward()
        return sums

    def _volume_errors(self, phase_fields_fn, variable, axis, specs, targets, direction_weight, backward=True):
        """The direction's mean descriptor held to the target: errors summed over phases."""
        count = self._slice_count(axis)
        starts = range(0, count, self.chunk_size)
        one_chunk = backward and len(starts) == 1
        means = []  # per phase, per spec: the mean parts over the direction's slices
        with torch.set_grad_enabled(one_chunk):
            for start in starts:
                self.cancel.raise_if_cancelled()
                stacks = self._stack(phase_fields_fn(variable), axis)
                for index, stack in enumerate(stacks):
                    chunk = stack[start : start + self.chunk_size]
                    sums = {spec.name: [p.sum(0) / count for p in spec.parts(chunk)] for spec in specs}
                    if len(means) <= index:
                        means.append(sums)
                    else:
                        for name, parts in sums.items():
                            means[index][name] = [m + p for m, p in zip(means[index][name], parts)]
        if backward and not one_chunk:  # leaves, so that the loss's gradient with respect to them can be taken
            means = [{n: [p.requires_grad_(True) for p in parts] for n, parts in m.items()} for m in means]
        loss = 0.0
        errors = {spec.name: 0.0 for spec in specs}
        for phase_means, phase_targets in zip(means, targets):
            for spec in specs:
                error = parts_error(spec, [p[None] for p in phase_means[spec.name]], phase_targets[spec.name])[0]
                loss = loss + direction_weight * spec.weight * error
                errors[spec.name] = errors[spec.name] + error.detach().double()
        if not backward:
            return errors
        loss.backward()
        if not one_chunk:
            # d loss / d slice values = (d loss / d mean) / count: one backward pass per chunk.
            for start in starts:
                self.cancel.raise_if_cancelled()
                stacks = self._stack(phase_fields_fn(variable), axis)
                surrogate = 0.0
                for stack, phase_means in zip(stacks, means):
                    chunk = stack[start : start + self.chunk_size]
                    for spec in specs:
                        for part, mean in zip(spec.parts(chunk), phase_means[spec.name]):
                            surrogate = surrogate + (part.sum(0) * mean.grad).sum() / count
                surrogate.backward()
        return errors

    def errors_per_direction(self, phase_fields):
        """Normalized error per direction and descriptor for fixed fields (no gradient): of the
        mean descriptor (``match="volume"``) or the mean of the slices' errors."""
        result = []
        with torch.no_grad():
            for axis, (specs, targets) in enumerate(self.directions):
                if self.match == "volume":
                    errors = self._volume_errors(lambda _: phase_fields, None, axis, specs, targets, 1.0, False)
                    result.append({name: float(value) / len(targets) for name, value in errors.items()})
                    continue
                stacks = self._stack(phase_fields, axis)
                sums = {spec.name: 0.0 for spec in specs}
                for stack, phase_targets in zip(stacks, targets):
                    for start in range(0, stack.shape[0], self.chunk_size):
                        errors = normalized_errors(specs, stack[start : start + self.chunk_size], phase_targets)
                        for name, value in errors.items():
                            sums[name] += float(value.sum()) / stack.shape[0] / len(targets)
                result.append(sums)
            if self.isotropic is not None:
                errors = self.isotropic.errors(phase_fields)
                for sums in result:
                    sums["s2_3d"] = float(sum(errors)) / len(errors)
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
    for image in target.images:  # an isotropic target's one image is pooled once, in the target's cache
        key = ("pooled", id(image), tuple(phases), level, dtype, str(device))
        if key not in target.cache:
            target.cache[key] = [
                pooled(torch.as_tensor(image == phase, dtype=dtype, device=device)[None], level)[0] for phase in phases
            ]
        fields.append(target.cache[key])
    return fields


def shape_at_level(shape, level):
    """The shape of multigrid level ``level`` (0: full size; each level halves every side)."""
    return tuple(max(1, s // 2**level) for s in shape)


def level_loss(settings, phases, level, chunk_size, cancel=None):
    """The loss of one multigrid level (full size at level 0), with the isotropic 3D term
    where it applies: a 3D run from one target image."""
    shape = shape_at_level(settings.shape, level)
    target, device = settings.target, settings.device
    images = pooled_target_fields(target, phases.matched, level, torch.float32, device)
    isotropic, note = None, None
    if settings.isotropic_s2 and len(shape) == 3:
        if target.characterization is not None:
            note = "isotropic 3D S2 off: a descriptor file holds no radial S2"
        elif not target.isotropic:
            note = "isotropic 3D S2 off: three orthogonal slices describe an anisotropic material"
        else:
            isotropic = IsotropicS2(images[0], shape, ISOTROPIC_RANGE, settings.isotropic_s2, settings.target_periodic)
    loss = SliceLoss(
        settings.specs,
        images,
        shape,
        settings.direction_weights,
        chunk_size,
        settings.target_periodic,
        cancel,
        settings.match,
        isotropic,
        target.cache,
    )
    loss.notes += [note] if note else []
    return loss
