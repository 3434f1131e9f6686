"""Shared by the evaluation modules: slice stacks, checks of the inputs, error arithmetic."""

from __future__ import annotations

import math

import numpy as np

from napari_dmcr.descriptors import volume_slices
from napari_dmcr.errors import InputError
from napari_dmcr.labels import check_labels

AXIS_NAMES = ("z", "y", "x")


def slice_stacks(volume):
    """The stacks of slices to compare with a 2D original: one per direction, or the image."""
    if volume.ndim == 2:
        return {"image": volume[None]}
    return {name: volume_slices(volume, axis) for axis, name in enumerate(AXIS_NAMES)}


def default_lag(max_lag, sizes):
    smallest = min(sizes)
    if max_lag is None:
        return max(1, smallest // 4)
    max_lag = int(max_lag)
    if not 1 <= max_lag < smallest:
        raise InputError(f"max_lag={max_lag} does not fit images with a side of {smallest}: use 1 to {smallest - 1}")
    return max_lag


def rms(difference):
    return float(np.sqrt(np.mean(np.square(difference))))


def relative_error(value, reference):
    return abs(value - reference) / abs(reference) if reference else math.nan


def check_slice(original):
    """The original: a labeled 2D slice (the package's label rule)."""
    return check_labels(original, ndims=(2,), what="the original slice")


def check_reconstruction(reconstruction):
    """The reconstruction: a labeled 2D image or 3D volume (the package's label rule)."""
    return check_labels(reconstruction, ndims=(2, 3), what="the reconstruction")


def check_phase_mask(labels, phase):
    """Where ``labels`` (the package's label rule) is ``phase``; a phase that does not occur fails."""
    labels = check_labels(labels)
    mask = labels == phase
    if not mask.any():
        present = np.unique(labels).tolist()
        raise InputError(f"phase {phase} does not occur in the image; its labels are {present}")
    return mask
