"""The one label rule of the package: what a labeled image is, its neighbourhoods, the default phase.

Every entry point (readers' results, reconstruction targets, Yeong-Torquato, smoothing,
evaluation, writers, FLAC3D) checks its label arrays with :func:`check_labels`, and every method
takes :func:`minority_label` as its default phase of interest.
"""

from __future__ import annotations

import numpy as np

from napari_dmcr.errors import InputError


def check_labels(labels, ndims=(2, 3), what="labels"):
    """A labeled image as an array of non-negative integers: the one label rule of the package.

    Booleans become uint8; floats with whole finite values become int64 (a label image saved as
    float); anything else is refused.

    Parameters
    ----------
    labels : array_like
        Labeled image or volume.
    ndims : tuple of int
        Accepted numbers of dimensions.
    what : str
        What the array is, for the messages ("the target image", ...).

    Raises
    ------
    InputError
        For an empty array, another number of dimensions, NaN or infinite values, non-whole values
        (a grey image), other dtypes or negative labels.

    Examples
    --------
    >>> check_labels(np.array([[0.0, 1.0], [1.0, 0.0]])).dtype
    dtype('int64')
    """
    labels = np.asarray(labels)
    if labels.ndim not in ndims or labels.size == 0:
        wanted = " or ".join(f"{n}D" for n in ndims)
        raise InputError(f"{what}: expected a non-empty {wanted} label array, got shape {labels.shape}")
    if labels.dtype == bool:
        return labels.astype(np.uint8)
    if labels.dtype.kind == "f":
        if not np.isfinite(labels).all():
            raise InputError(f"{what}: NaN or infinite values; give integer labels 0, 1, ...")
        if not np.array_equal(labels, np.round(labels)):
            raise InputError(
                f"{what}: non-whole values, a grey image rather than labels; segment it first "
                "(e.g. threshold with Otsu) so that each phase has one integer label"
            )
        labels = labels.astype(np.int64)
    if labels.dtype.kind not in "iu":
        raise InputError(f"{what}: labels must be integers, got dtype {labels.dtype}; segment the image first")
    if labels.min() < 0:
        raise InputError(
            f"{what} must be non-negative integers (0, 1, ...), got {int(labels.min())}; relabel the phases first"
        )
    return labels


def neighbourhood(ndim, connectivity):
    """The structuring element of :func:`scipy.ndimage.generate_binary_structure`, checked.

    ``connectivity`` 1 means face neighbours, ``ndim`` every neighbour in the 3^ndim block.
    """
    from scipy.ndimage import generate_binary_structure

    connectivity = int(connectivity)
    if not 1 <= connectivity <= ndim:
        raise InputError(f"connectivity={connectivity} is not valid for a {ndim}D image: use 1 to {ndim}")
    return generate_binary_structure(ndim, connectivity)


def distinct_images(images):
    """``images`` with each array once, in order: an isotropic target repeats one image per direction."""
    return list({id(image): image for image in images if image is not None}.values())


def phase_labels(labels):
    """The sorted distinct labels of a labeled image, as Python ints."""
    return [int(v) for v in np.unique(np.asarray(labels))]


def minority_label(images):
    """The default phase of interest of every method: the label with the fewest pixels over
    ``images`` (the smallest label among equals; an image given twice counts twice)."""
    counts = {}
    for image in images:
        values, image_counts = np.unique(image, return_counts=True)
        for value, count in zip(values.tolist(), image_counts.tolist()):
            counts[value] = counts.get(value, 0) + count
    return int(min(sorted(counts), key=counts.get))
