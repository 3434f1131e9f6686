"""From napari layers to the arrays the core takes: the shown slice, thresholds, label names."""

from __future__ import annotations

import numpy as np
from napari.layers import Image, Labels

from napari_dmcr.errors import InputError
from napari_dmcr.labels import minority_label

# Below this a slice holds no usable structure (the engine needs 4 voxels per side).
MIN_SLICE_SIDE = 8
# Names that mark the phase of interest of a conglomerate (the non-gravel matrix).
_PHASE_OF_INTEREST_NAMES = ("matrix", "non-gravel", "non gravel", "pore", "pores")


def layer_choices(viewer, types=(Image, Labels)):
    """``(name, layer)`` pairs of the viewer's layers of the given types, for a ComboBox."""
    return [(layer.name, layer) for layer in viewer.layers if isinstance(layer, types)]


def current_slice(layer, viewer):
    """The 2D slice of ``layer`` shown in the viewer and its pixel size.

    A 2D layer is returned whole; a 3D (or higher) layer gives the slice at the viewer's current
    position along the axes that are not displayed (the first axes in 3D view).

    Parameters
    ----------
    layer : napari.layers.Image or napari.layers.Labels
    viewer : napari.viewer.Viewer

    Returns
    -------
    image : numpy.ndarray, 2D
    pixel_size : tuple of 2 float
        The layer's scale along the two slice axes.

    Raises
    ------
    InputError
        For RGB images, layers of another type and slices too small to hold a structure.
    """
    if layer is None:
        raise InputError("choose an input layer (an Image or Labels layer of a segmented slice)")
    if not isinstance(layer, (Image, Labels)):
        raise InputError(f"layer {layer.name!r} is a {type(layer).__name__} layer; use an Image or Labels layer")
    if isinstance(layer, Image) and layer.rgb:
        raise InputError(
            f"layer {layer.name!r} is an RGB image; convert it to grey levels or segment it into labels first"
        )
    if layer.ndim == 2:
        image, axes = np.asarray(layer.data), (0, 1)
    else:
        position = layer.world_to_data(viewer.dims.point)
        offset = viewer.dims.ndim - layer.ndim
        order = [axis - offset for axis in viewer.dims.order if axis >= offset]
        axes = tuple(sorted(order[-2:]))
        index = tuple(
            slice(None) if axis in axes else int(np.clip(round(position[axis]), 0, layer.data.shape[axis] - 1))
            for axis in range(layer.ndim)
        )
        image = np.asarray(layer.data[index])
    if min(image.shape) < MIN_SLICE_SIDE:
        raise InputError(
            f"layer {layer.name!r} gives a {image.shape[0]}x{image.shape[1]} slice; "
            f"a slice needs at least {MIN_SLICE_SIDE} pixels per side"
        )
    return image, (float(layer.scale[axes[0]]), float(layer.scale[axes[1]]))


def otsu_threshold(image):
    """Otsu's threshold of a grey image (``None`` when the image has a single value)."""
    from skimage.filters import threshold_otsu

    values = np.asarray(image, dtype=np.float64)
    if not np.isfinite(values).all():
        raise InputError("the image contains NaN or infinite values; clean it before thresholding")
    if values.min() == values.max():
        return None
    return float(threshold_otsu(values))


def two_valued_labels(image):
    """0/1 labels of an image with exactly two values (bool, 0/1, 0/255, ...): 1 on the higher
    value. None when the image has another number of values (a grey image to threshold)."""
    values = np.unique(np.asarray(image))
    if values.size != 2:
        return None
    return (np.asarray(image) == values[1]).astype(np.uint8)


def needs_threshold(layer, viewer):
    """True for an Image layer whose shown slice is grey (more than two values)."""
    if not isinstance(layer, Image):
        return False
    try:
        image, _ = current_slice(layer, viewer)
    except InputError:
        return False
    return two_valued_labels(image) is None


def threshold(image, value):
    """Two-phase labels of a grey image: 1 above ``value`` (bright), 0 elsewhere."""
    return (np.asarray(image) > value).astype(np.uint8)


def label_names(layer):
    """``{label: name}`` from a layer's ``metadata["label_names"]`` (keys may be str or int)."""
    names = {} if layer is None else layer.metadata.get("label_names", {}) or {}
    return {int(label): str(name) for label, name in names.items()}


def default_phase(labels, names, images):
    """The phase of interest: the label named matrix (non-gravel) or pore, else the minority label
    of ``images`` (every method's default, :func:`napari_dmcr.labels.minority_label`)."""
    for label in labels:
        if names.get(label, "").lower() in _PHASE_OF_INTEREST_NAMES:
            return label
    return minority_label(images)


def phase_title(label, names):
    """How a phase shows in a ComboBox: ``"1: matrix"`` or ``"1"``."""
    return f"{label}: {names[label]}" if label in names else str(label)
