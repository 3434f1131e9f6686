"""Read labeled 2D slices and 3D volumes, and check that they are usable label images.

Every reader returns a C-contiguous integer label array with axes (y, x) or (z, y, x) and raises
:class:`napari_dmcr.errors.InputError` with a message that says what to change when the file is
not a labeled image (wrong dimensionality, NaNs, a constant image, too many distinct values, ...).

Supported files: ``.npy``, ``.tif``/``.tiff`` (single or multi-page), ``.png``/``.jpg``/``.jpeg``/
``.bmp`` (greyscale or palette), ``.raw`` (with an explicit shape and dtype) and ``.vti`` (the VTK
image files that :func:`napari_dmcr.io.writers.write_volume` writes).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_dmcr.errors import InputError
from napari_dmcr.labels import check_labels

PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
TIFF_SUFFIXES = (".tif", ".tiff")
SUPPORTED_SUFFIXES = (".npy", *TIFF_SUFFIXES, *PICTURE_SUFFIXES, ".raw", ".vti")


def read_image(
    path,
    ndim=None,
    *,
    threshold="otsu",
    raw_shape=None,
    raw_dtype=None,
    max_labels=16,
    min_side=2,
    steps=None,
):
    """Read a labeled 2D slice or 3D volume.

    Parameters
    ----------
    path : str or Path
        Image file; the format follows the suffix (see the module docstring).
    ndim : {None, 2, 3}, optional
        Required dimensionality. With ``ndim=2``, a 3D stack with a single slice (any axis of
        length 1) is squeezed to 2D. ``None`` accepts both.
    threshold : {"otsu"}, float or None, optional
        What to do with grey images (floating point, or more than ``max_labels`` distinct values):
        ``"otsu"`` thresholds them with Otsu's method, a number thresholds every image at that
        value, ``None`` refuses grey images. Thresholding gives label 1 to values above the
        threshold and 0 to the others.
    raw_shape : tuple of int, optional
        Shape of a ``.raw`` file (z, y, x) or (y, x); required for ``.raw``.
    raw_dtype : str or numpy.dtype, optional
        Data type of a ``.raw`` file, e.g. ``"uint8"`` or ``"<u2"``; required for ``.raw``.
    max_labels : int, optional
        Most distinct values an image may have to count as labeled.
    min_side : int, optional
        Smallest allowed length of every axis; raise it to what the chosen descriptors need.
    steps : list, optional
        When given, what was done to the pixel values is appended to it as dicts (a threshold
        and its value, a renumbering and its mapping), for the record of a run.

    Returns
    -------
    labels : ndarray of uint8 (int32 beyond 256 labels)
        Label image. Labels already in ``0 .. max_labels - 1`` are kept as they are; other sets
        of values (e.g. 0/255 masks) are renumbered ``0, 1, ...`` in increasing order.

    Raises
    ------
    InputError
        If the file cannot be read as a labeled image; the message says what to change.
    """
    path = Path(path)
    if isinstance(threshold, str) and threshold != "otsu":
        raise InputError(f"unknown threshold {threshold!r}; use 'otsu', a number or None")
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give an image file ({', '.join(SUPPORTED_SUFFIXES)})")
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        array = _read_npy(path)
    elif suffix in TIFF_SUFFIXES:
        array = _read_tiff(path, max_labels)
    elif suffix in PICTURE_SUFFIXES:
        array = _read_picture(path, max_labels)
    elif suffix == ".raw":
        array = _read_raw(path, raw_shape, raw_dtype)
    elif suffix == ".vti":
        from napari_dmcr.io.writers import read_vti

        array = read_vti(path)
    else:
        raise InputError(f"{path}: unsupported file type {path.suffix!r}; use one of {', '.join(SUPPORTED_SUFFIXES)}")
    if ndim == 2 and array.ndim == 3 and 1 in array.shape:
        array = array.reshape([n for n in array.shape if n != 1] or [1])
    array = _labels_from_values(array, path.name, threshold, max_labels, [] if steps is None else steps)
    return validate_labels(array, what=path.name, ndim=ndim, max_labels=max_labels, min_side=min_side)


def validate_labels(array, what="image", ndim=None, max_labels=16, min_side=2):
    """Check that ``array`` is a usable label image and return it as a C-contiguous int array.

    Parameters
    ----------
    array : array_like
        Candidate label image, 2D (y, x) or 3D (z, y, x).
    what : str, optional
        Name used in error messages (a file or layer name).
    ndim : {None, 2, 3}, optional
        Required dimensionality; ``None`` accepts 2D and 3D.
    max_labels : int, optional
        Most distinct values a label image may have.
    min_side : int, optional
        Smallest allowed length of every axis.

    Returns
    -------
    labels : ndarray
        The same values, as uint8 where they fit (int32 otherwise).

    Raises
    ------
    InputError
        On a wrong dimensionality, a non-numeric dtype, NaNs or fractional values, negative
        labels, too many distinct values, an empty, too small or constant image.
    """
    array = np.asarray(array)
    allowed = (2, 3) if ndim is None else (ndim,)
    if array.ndim not in allowed:
        wanted = " or ".join(f"{n}D" for n in allowed)
        hint = ""
        if array.ndim == 3 and ndim == 2:
            hint = "; pick one slice of the stack (or read it as a volume)"
        elif array.ndim == 2 and ndim == 3:
            hint = "; a single slice is not a volume: reconstruct one first"
        elif array.ndim > 3:
            hint = "; colour or multi-channel images must be converted to one label channel"
        raise InputError(f"{what}: expected a {wanted} label image, got shape {array.shape}{hint}")
    if array.size == 0:
        raise InputError(f"{what}: the image is empty (shape {array.shape})")
    if min(array.shape) < min_side:
        raise InputError(
            f"{what}: shape {array.shape} is too small; every side needs at least {min_side} "
            "pixels for the chosen descriptors"
        )
    array = check_labels(array, what=what)  # the package's label rule: whole, finite, non-negative
    values = np.unique(array)
    if values.size > max_labels:
        raise InputError(
            f"{what}: {values.size} distinct values: this looks like a grey image, not a label "
            f"image (at most {max_labels} labels); segment it first or read it with a threshold"
        )
    if values.size == 1:
        raise InputError(
            f"{what}: the image is constant (every pixel is {values[0]}); a segmented image needs at least two phases"
        )
    dtype = np.uint8 if values[-1] <= np.iinfo(np.uint8).max else np.int32
    return np.ascontiguousarray(array, dtype=dtype)


def threshold_labels(array, threshold="otsu", steps=None):
    """Binarize a grey image: 1 above the threshold, 0 at or below it.

    Parameters
    ----------
    array : ndarray
        Grey image (any real dtype).
    threshold : {"otsu"} or float, optional
        Threshold value, or ``"otsu"`` for Otsu's method on the image histogram.
    steps : list, optional
        When given, ``{"step": "threshold", "method": ..., "value": ...}`` is appended to it.

    Returns
    -------
    labels : ndarray of uint8
    """
    if isinstance(threshold, str):
        if threshold != "otsu":
            raise InputError(f"unknown threshold {threshold!r}; use 'otsu', a number or None")
        from skimage.filters import threshold_otsu

        method, threshold = "otsu", threshold_otsu(array)
    else:
        method = "value"
    if steps is not None:
        steps.append(
            {
                "step": "threshold",
                "method": method,
                "value": float(threshold),
                "rule": "label 1 above the value, 0 at or below",
            }
        )
    return (array > threshold).astype(np.uint8)


def _labels_from_values(array, what, threshold, max_labels, steps):
    """Turn raw pixel values into labels: threshold grey images, renumber sparse label values."""
    if array.dtype == bool:
        return array.astype(np.uint8)
    if array.dtype.kind not in "iuf":
        return array  # validate_labels says what is wrong
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise InputError(f"{what}: the image contains NaN or infinite values; fill or mask them first")
    if threshold is not None and not isinstance(threshold, str):
        return threshold_labels(array, float(threshold), steps)
    values = np.unique(array)
    grey = values.size > max_labels or (array.dtype.kind == "f" and not np.all(values == np.round(values)))
    if grey:
        if threshold is None:
            raise InputError(
                f"{what}: {values.size} distinct values: this is a grey image, not a label image; segment it first",
                remedy="threshold",
                library_hint="or read it with threshold='otsu' or a threshold value",
            )
        labels = threshold_labels(array, threshold, steps)
        if labels.min() == labels.max():
            raise InputError(f"{what}: the image is constant; there is nothing to threshold")
        return labels
    if values.size == 0 or values[0] < 0 or values[-1] < max_labels:
        return array  # small labels are kept; validate_labels refuses empty or negative ones
    # Sparse values such as 0/255 masks or palette indices: renumber 0, 1, ... in order.
    steps.append({"step": "renumber", "mapping": {str(v.item()): i for i, v in enumerate(values)}})
    return np.searchsorted(values, array).astype(np.uint8 if values.size <= 256 else np.int32)


def _read_npy(path):
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as error:
        raise InputError(f"{path.name}: not a plain numeric .npy array ({error})") from None
    except EOFError:  # what np.load raises on a 0-byte file
        raise InputError(f"{path.name}: the file is empty or truncated; write it again") from None
    except OSError as error:
        raise InputError(f"{path.name}: cannot read this file ({error.strerror or error})") from None


def _read_tiff(path, max_labels):
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            if not tif.series:
                raise InputError(f"{path.name}: the TIFF file holds no image")
            array = tif.series[0].asarray()
            axes = tif.series[0].axes
    except (ValueError, OSError) as error:  # tifffile.TiffFileError is a ValueError
        if isinstance(error, InputError):
            raise
        raise InputError(f"{path.name}: cannot read this TIFF file ({error})") from None
    if axes.endswith("S") and array.shape[-1] in (3, 4):
        array = _colour_to_grey_or_labels(array, path.name, max_labels)
    return array


def _read_picture(path, max_labels):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if image.mode == "P":
                # Palette images: the palette indices are the labels.
                return np.asarray(image)
            if image.mode in ("LA", "PA"):
                image = image.getchannel(0)
            array = np.asarray(image)
    except (UnidentifiedImageError, OSError) as error:
        raise InputError(f"{path.name}: cannot read this image ({error})") from None
    if array.ndim == 3:
        array = _colour_to_grey_or_labels(array, path.name, max_labels)
    return array


def _colour_to_grey_or_labels(array, what, max_labels):
    """Reduce an RGB(A) image: grey if the channels agree, else one label per distinct colour."""
    rgb = array[..., :3]
    if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
        return np.ascontiguousarray(rgb[..., 0])
    colours, inverse = np.unique(rgb.reshape(-1, 3), axis=0, return_inverse=True)
    if len(colours) > max_labels:
        raise InputError(
            f"{what}: a colour image with {len(colours)} colours; save the segmentation as a "
            "greyscale or palette image with one value per phase"
        )
    return inverse.reshape(rgb.shape[:-1]).astype(np.uint8)


def _read_raw(path, shape, dtype):
    if shape is None or dtype is None:
        raise InputError(f"{path.name}: a .raw file needs its shape and dtype (raw_shape, raw_dtype)")
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise InputError(f"{path.name}: unknown raw dtype {dtype!r}; use e.g. 'uint8' or '<u2'") from None
    shape = tuple(int(n) for n in shape)
    if len(shape) not in (2, 3) or min(shape) < 1:
        raise InputError(f"{path.name}: raw shape {shape} must be 2 or 3 positive sizes (z, y, x)")
    expected = int(np.prod(shape)) * dtype.itemsize
    size = path.stat().st_size
    if size != expected:
        raise InputError(
            f"{path.name}: the file has {size} bytes but shape {shape} of {dtype} needs "
            f"{expected}; check raw_shape and raw_dtype (a header must be stripped first)"
        )
    return np.fromfile(path, dtype=dtype).reshape(shape)
