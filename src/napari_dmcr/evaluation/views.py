"""What users look at for QA: the orthogonal mid-slices of a volume, side by side."""

from __future__ import annotations

import numpy as np

from napari_dmcr.labels import check_labels


def orthogonal_mid_slices(volume, gap=2):
    """The middle slices normal to z, y and x of a labeled volume, left to right in one image.

    Parameters
    ----------
    volume : array_like of int, 3D (z, y, x)
    gap : int
        Columns of label 0 between the slices.

    Returns
    -------
    numpy.ndarray
        ``(max(Y, Z), X + X + Y + 2 gap)``: ``volume[Z // 2]`` (y, x), ``volume[:, Y // 2]``
        (z, x) and ``volume[:, :, X // 2]`` (z, y), top-aligned, label 0 around them.

    Examples
    --------
    >>> volume = np.arange(2 * 3 * 4).reshape(2, 3, 4) % 2
    >>> orthogonal_mid_slices(volume, gap=1).shape
    (3, 13)
    """
    volume = check_labels(volume, ndims=(3,), what="the volume")
    z, y, x = volume.shape
    slices = [volume[z // 2], volume[:, y // 2], volume[:, :, x // 2]]
    height = max(s.shape[0] for s in slices)
    montage = np.zeros((height, sum(s.shape[1] for s in slices) + 2 * gap), volume.dtype)
    column = 0
    for image in slices:
        montage[: image.shape[0], column : column + image.shape[1]] = image
        column += image.shape[1] + gap
    return montage
