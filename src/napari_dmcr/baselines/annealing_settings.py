"""The settings of a Yeong-Torquato run: defaults, checks and the record beside its result.

:func:`check_annealing_settings` checks every argument of
:func:`~napari_dmcr.baselines.yeong_torquato.yeong_torquato` before any work and returns one
frozen :class:`AnnealingSettings`; :meth:`AnnealingSettings.parameters` is the record a result
carries (``result.parameters``), as :class:`~napari_dmcr.reconstruction.ReconstructionSettings`
is for the differentiable engine.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from napari_dmcr.checks import whole_number
from napari_dmcr.descriptors.representativity import SLICE_NAMES, common_fraction, slice_disagreements
from napari_dmcr.errors import InputError
from napari_dmcr.labels import check_labels, minority_label
from napari_dmcr.postprocessing.assignment import counts_from_fractions

SWAPS_PER_VOXEL = 500  # default swap budget


@dataclass(frozen=True, eq=False)
class AnnealingSettings:
    """Every setting of one Yeong-Torquato run, checked (see ``yeong_torquato`` for their meaning)."""

    images: list
    shape: tuple
    phase: int
    labels: tuple
    max_lag: int
    isotropic: bool
    target_periodic: bool
    initial_given: bool
    max_swaps: int
    target_energy: float
    stall_swaps: int
    initial_temperature: float | None
    initial_acceptance: float
    cooling: float
    swaps_per_temperature: int
    interface_bias: bool
    seed: int
    preview: bool
    preview_interval_s: float
    fraction: float
    counts: tuple

    @property
    def order(self):
        """The labels by index in the annealed state: two labels as (other, phase), so that the
        state is the phase's indicator; three or more in increasing order."""
        if len(self.labels) == 2:
            return (next(label for label in self.labels if label != self.phase), self.phase)
        return self.labels

    @property
    def matched(self):
        """The labels whose S2 is matched: the phase for two (the other's follows), else all."""
        return (self.phase,) if len(self.labels) == 2 else self.labels

    def parameters(self):
        """The record of the run (JSON types)."""
        return dict(
            shape=self.shape,
            phase=self.phase,
            labels=list(self.labels),
            max_lag=self.max_lag,
            isotropic=self.isotropic,
            target_periodic=self.target_periodic,
            initial_given=self.initial_given,
            max_swaps=self.max_swaps,
            target_energy=self.target_energy,
            stall_swaps=self.stall_swaps,
            initial_temperature=self.initial_temperature,
            initial_acceptance=self.initial_acceptance,
            cooling=self.cooling,
            swaps_per_temperature=self.swaps_per_temperature,
            interface_bias=self.interface_bias,
            seed=self.seed,
            preview=self.preview,
            preview_interval_s=self.preview_interval_s,
            target_phase_fraction=self.fraction,
            label_counts=dict(zip(map(str, self.order), self.counts)),
        )


def check_annealing_settings(
    target,
    shape,
    *,
    phase=None,
    max_lag=None,
    isotropic=False,
    target_periodic=False,
    initial_given=False,
    max_swaps=None,
    target_energy=0.0,
    stall_swaps=None,
    initial_temperature=None,
    initial_acceptance=None,
    cooling=0.95,
    swaps_per_temperature=None,
    interface_bias=False,
    seed=0,
    preview=True,
    preview_interval_s=0.5,
):
    """Check the arguments of ``yeong_torquato`` and fill in the defaults.

    Returns
    -------
    AnnealingSettings

    Raises
    ------
    InputError
        With a one-line message that says what to change.
    """
    images = _target_images(target)
    shape = _check_shape(shape, images)
    labels, phase = _labels(images, phase)
    indicators = [image == phase for image in images]
    lengths = [shape[a] for a in range(len(shape))]
    target_lengths = [n for image in images for n in image.shape]
    largest = min(min(lengths), min(target_lengths)) // 2
    if max_lag is None:
        max_lag = largest
    max_lag = whole_number("max_lag", max_lag, 1)
    if max_lag > min(lengths) // 2:
        raise InputError(
            f"shape {shape} is too small for max_lag={max_lag}: every axis needs at least "
            f"{2 * max_lag} voxels. Enlarge the shape or lower max_lag."
        )
    if max_lag > min(target_lengths) // 2:
        raise InputError(
            f"the target is too small for max_lag={max_lag}: every target axis needs at least "
            f"{2 * max_lag} pixels. Lower max_lag to at most {min(target_lengths) // 2}."
        )

    n_voxels = math.prod(shape)
    fraction = sum(int(ind.sum()) for ind in indicators) / sum(ind.size for ind in indicators)
    if len(labels) == 2:
        n_phase = round(fraction * n_voxels)
        counts = (n_voxels - n_phase, n_phase)  # (other, phase): the order of the state
    else:
        counts = tuple(int(c) for c in counts_from_fractions(_fractions(images, labels), n_voxels))
    if len(images) == 3:  # slices normal to z, y and x: as the differentiable engine takes them
        for line in slice_disagreements(images, SLICE_NAMES, [phase] if len(labels) == 2 else list(labels)):
            warnings.warn(line, stacklevel=3)
        if len(labels) == 2:
            images = common_fraction(images, phase, fraction)
    if min(counts) == 0:
        raise InputError(
            f"at {n_voxels} voxels a label of the target ({', '.join(f'{f:.2%}' for f in _fractions(images, labels))}) "
            "rounds to no voxel: enlarge the shape so that every phase occurs."
        )

    if max_swaps is None:
        max_swaps = SWAPS_PER_VOXEL * n_voxels
    max_swaps = whole_number("max_swaps", max_swaps, 0)
    if stall_swaps is None:
        stall_swaps = 20 * n_voxels
    stall_swaps = whole_number("stall_swaps", stall_swaps, 1)
    if swaps_per_temperature is None:
        swaps_per_temperature = n_voxels
    swaps_per_temperature = whole_number("swaps_per_temperature", swaps_per_temperature, 1)
    if not 0.0 < cooling <= 1.0:
        raise InputError(f"cooling must lie in (0, 1], got {cooling}")
    if initial_temperature is not None and not initial_temperature >= 0.0:
        raise InputError(f"initial_temperature must be 0 or more, got {initial_temperature}")
    if initial_acceptance is None:
        initial_acceptance = 0.05 if initial_given else 0.5
    if not 0.0 < initial_acceptance < 1.0:
        raise InputError(f"initial_acceptance must lie in (0, 1), got {initial_acceptance}")
    if not target_energy >= 0.0:
        raise InputError(f"target_energy must be 0 or more, got {target_energy}")
    if not preview_interval_s >= 0.0:
        raise InputError(f"preview_interval_s must be 0 or more, got {preview_interval_s}")
    seed = whole_number("seed", seed, 0)

    return AnnealingSettings(
        images=images, shape=shape, phase=phase, labels=tuple(labels), max_lag=max_lag, isotropic=bool(isotropic),
        target_periodic=bool(target_periodic), initial_given=bool(initial_given), max_swaps=max_swaps,
        target_energy=float(target_energy), stall_swaps=stall_swaps,
        initial_temperature=None if initial_temperature is None else float(initial_temperature),
        initial_acceptance=float(initial_acceptance), cooling=float(cooling),
        swaps_per_temperature=swaps_per_temperature, interface_bias=bool(interface_bias), seed=seed,
        preview=bool(preview), preview_interval_s=float(preview_interval_s), fraction=fraction, counts=counts,
    )  # fmt: skip


def _target_images(target):
    if isinstance(target, dict):
        missing = [axis for axis in "xyz" if axis not in target]
        if missing:
            raise InputError(f"orthogonal targets need slices for x, y and z; missing {missing}")
        target = [target[axis] for axis in "zyx"]  # image k is normal to volume axis k
    if isinstance(target, np.ndarray) or not isinstance(target, Sequence):
        image = check_labels(target, what="the target")
        if image.ndim not in (2, 3):
            raise InputError(f"target must be a 2D image or a 3D volume, got {image.ndim}D")
        return [image]
    if len(target) != 3:
        raise InputError(f"a sequence target must hold 3 images (one normal to each volume axis), got {len(target)}")
    images = [check_labels(image, what="each target image") for image in target]
    if any(image.ndim != 2 for image in images):
        raise InputError("the 3 target images must each be 2D")
    return images


def _check_shape(shape, images):
    try:
        shape = tuple(int(n) for n in shape)
    except TypeError:
        raise InputError(f"shape must be a tuple of 2 or 3 sizes, got {shape!r}") from None
    if len(shape) not in (2, 3) or min(shape) < 2:
        raise InputError(f"shape must be 2 or 3 sizes of at least 2 voxels, got {shape}")
    if len(shape) == 2 and (len(images) != 1 or images[0].ndim != 2):
        raise InputError("a 2D reconstruction needs a single 2D target image")
    return shape


def _labels(images, phase):
    """The target's labels (sorted) and the phase of interest (default: the minority)."""
    labels = np.unique(np.concatenate([np.unique(image) for image in images]))
    if labels.size < 2:
        raise InputError(f"the target holds a single label ({labels[0]}): there is no structure to reconstruct")
    if phase is None:
        phase = minority_label(images)
    if phase not in labels:
        raise InputError(f"phase {phase} does not occur in the target (labels {labels.tolist()})")
    if labels.min() < 0 or labels.max() > 254:
        raise InputError(f"labels must lie in 0..254, got {labels.tolist()}")
    return [int(label) for label in labels], int(phase)


def _fractions(images, labels):
    return [np.mean([np.mean(image == label) for image in images]) for label in labels]
