"""Indicator fields: from labeled images to the relaxed fields that descriptors act on.

A *field* is an array of values in [0, 1]: the indicator of one phase (exactly 0/1 for a labeled
image) or its relaxation during reconstruction. Descriptor functions take a 2D field ``(h, w)`` or
a stack of 2D slices ``(n, h, w)``, as a NumPy array or a torch tensor, and return the same kind:
NumPy in, NumPy out (float64, exact); torch in, torch out (differentiable, on the input's device).
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from napari_dmcr.errors import InputError
from napari_dmcr.labels import phase_labels


def indicator(labels, phase):
    """The indicator field of one phase of a labeled image.

    Parameters
    ----------
    labels : array_like of int
        Labeled image (2D) or volume (3D).
    phase : int
        Label of the phase of interest.

    Returns
    -------
    numpy.ndarray of float64
        1 where ``labels == phase``, else 0.
    """
    labels = np.asarray(labels)
    present = phase_labels(labels)
    if phase not in present:
        raise InputError(f"phase {phase} does not occur in the image; its labels are {present}")
    return (labels == phase).astype(np.float64)


def volume_slices(volume, axis):
    """All 2D slices of a volume normal to ``axis``, as a stack ``(n, h, w)``.

    For a volume ``(Z, Y, X)``: axis 0 gives ``Z`` slices of shape ``(Y, X)``, axis 1 gives ``Y``
    slices of shape ``(Z, X)`` and axis 2 gives ``X`` slices of shape ``(Z, Y)``. The in-plane
    axes keep their order, so the first slice axis is the lower-numbered volume axis. Works on
    NumPy arrays (a view) and torch tensors (differentiable).
    """
    order = (axis,) + tuple(a for a in range(3) if a != axis)
    if isinstance(volume, torch.Tensor):
        return volume.permute(order)
    return np.transpose(volume, order)


def batched(function):
    """Decorate a descriptor written for torch stacks ``(n, h, w)`` to accept any field.

    NumPy input is computed in float64 and returned as NumPy; a single 2D field loses the
    leading slice axis of the result again.
    """

    @functools.wraps(function)
    def wrapper(field, *args, **kwargs):
        from_numpy = not isinstance(field, torch.Tensor)
        tensor = _as_tensor(field)
        single = tensor.ndim == 2
        if single:
            tensor = tensor.unsqueeze(0)
        result = function(tensor, *args, **kwargs)
        return _restore(result, from_numpy, single)

    return wrapper


def _as_tensor(field):
    if isinstance(field, torch.Tensor):
        if not field.is_floating_point():
            field = field.double()
        tensor = field
    else:
        array = np.asarray(field)
        if array.dtype == object or not np.issubdtype(array.dtype, np.number):
            raise InputError(f"a field must be numeric, got dtype {array.dtype}")
        tensor = torch.as_tensor(array, dtype=torch.float64)
    if tensor.ndim not in (2, 3):
        raise InputError(
            f"a field must be a 2D image (h, w) or a stack of slices (n, h, w); "
            f"got shape {tuple(tensor.shape)}. Use volume_slices() for 3D volumes."
        )
    if min(tensor.shape[-2:]) < 2:
        raise InputError(f"a field needs at least 2x2 pixels, got {tuple(tensor.shape[-2:])}")
    return tensor


def _restore(result, from_numpy, single):
    if isinstance(result, (list, tuple)):
        return type(result)(_restore(r, from_numpy, single) for r in result)
    if single:
        result = result[0]
    if from_numpy:
        return result.detach().cpu().numpy()
    return result
