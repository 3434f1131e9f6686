"""A procedurally generated coarse-grained conglomerate: the bundled sample.

Gravel clasts are rounded, irregular ellipsoids of log-normally distributed sizes with random
orientations, placed one after another (largest first) in a periodic box; a clast that would
overlap the gravel already placed by more than a tolerated fraction of its own volume is rejected,
so clasts touch but hardly interpenetrate, as in a clast-supported conglomerate. Placement stops
when the non-gravel (matrix plus void) fraction reaches the target (0.37 by default, as in the CT
data the project targets).

No third-party data is involved: the sample is reproducible from its seed.
"""

from __future__ import annotations

import numpy as np

from napari_dmcr.errors import InputError

GRAVEL = 0
MATRIX = 1
LABEL_NAMES = {str(GRAVEL): "gravel", str(MATRIX): "matrix"}  # as layers and sidecars keep them


def conglomerate_volume(
    shape=(128, 128, 128),
    matrix_fraction=0.37,
    mean_radius=None,
    radius_spread=0.45,
    elongation=0.35,
    roughness=0.12,
    max_overlap=0.25,
    seed=0,
    gravel_label=GRAVEL,
    matrix_label=MATRIX,
):
    """Generate a synthetic conglomerate volume.

    Parameters
    ----------
    shape : tuple of 3 int
        Volume shape (z, y, x) in voxels.
    matrix_fraction : float
        Target fraction of non-gravel voxels (matrix plus void), in (0.05, 0.95).
    mean_radius : float, optional
        Median clast radius in voxels. Defaults to ``min(shape) / 14``.
    radius_spread : float
        Standard deviation of the log radius (polydispersity).
    elongation : float
        Spread of the ellipsoid axis ratios around 1.
    roughness : float
        Amplitude of the low-order surface undulation (0 gives smooth ellipsoids).
    max_overlap : float
        Largest tolerated fraction of a new clast's volume that may overlap earlier clasts.
    seed : int
        Seed of the random generator; the same seed gives the same volume.
    gravel_label, matrix_label : int
        Labels written for gravel and for non-gravel voxels.

    Returns
    -------
    volume : numpy.ndarray of uint8, shape ``shape``
        Labeled volume (periodic in every axis).
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 8:
        raise InputError(f"shape must be 3 sizes of at least 8 voxels, got {shape}")
    if not 0.05 < matrix_fraction < 0.95:
        raise InputError(f"matrix_fraction must lie in (0.05, 0.95), got {matrix_fraction}")
    rng = np.random.default_rng(seed)
    if mean_radius is None:
        mean_radius = min(shape) / 14.0
    gravel = np.zeros(shape, dtype=bool)
    target_gravel = (1.0 - matrix_fraction) * gravel.size
    min_radius = max(2.0, mean_radius / 3.0)
    placed = 0
    while placed < target_gravel:
        # Draw a batch of radii and place the largest first: big clasts frame the packing,
        # small ones fill the gaps.
        radii = mean_radius * np.exp(radius_spread * rng.standard_normal(64))
        accepted = 0
        for radius in np.sort(np.maximum(radii, min_radius))[::-1]:
            new = _place_clast(gravel, radius, elongation, roughness, max_overlap, rng)
            accepted += new > 0
            placed += new
            if placed >= target_gravel:
                break
        # Once the box is crowded, shrink the clasts so that the gaps can still be filled,
        # then tolerate more overlap (the fraction is always reached).
        if accepted < 16:
            if mean_radius > min_radius:
                mean_radius = max(min_radius, mean_radius * 0.8)
            else:
                max_overlap = min(1.0, max_overlap + 0.1)
    volume = np.full(shape, matrix_label, dtype=np.uint8)
    volume[gravel] = gravel_label
    return volume


def conglomerate_slice(shape=(128, 128), seed=0, axis=0, **kwargs):
    """The representative 2D slice of :func:`conglomerate_volume`: the one whose matrix fraction
    is closest to the volume's (see :func:`representative_index`).

    Parameters
    ----------
    shape : tuple of 2 int
        Slice shape.
    seed : int
        Seed of the underlying volume.
    axis : int
        Axis normal to the slice; the volume is ``min(shape)`` deep along it.
    **kwargs
        Passed on to :func:`conglomerate_volume`.

    Returns
    -------
    numpy.ndarray of uint8
    """
    if axis not in (0, 1, 2):
        raise InputError(f"axis must be 0, 1 or 2, got {axis!r}")
    rows, cols = (int(s) for s in shape)
    volume_shape = [rows, cols]
    volume_shape.insert(axis, min(rows, cols))
    volume = conglomerate_volume(tuple(volume_shape), seed=seed, **kwargs)
    return np.take(volume, representative_index(volume, axis, kwargs.get("matrix_label", MATRIX)), axis=axis)


def representative_index(volume, axis, label=MATRIX):
    """Index of the slice normal to ``axis`` whose fraction of ``label`` is closest to the volume's
    (the first of equals).

    A single slice's fraction strays from the volume's (the middle z slice of the 64^3 sample has
    30.5 % matrix against 37 %); compared with the truth, a core made from it shows the slice's
    fraction, not the reconstruction's error.

    Parameters
    ----------
    volume : numpy.ndarray, 3D
        Labeled volume.
    axis : int
        Axis normal to the slices.
    label : int
        Label whose fraction is matched.

    Returns
    -------
    int
    """
    phase = np.asarray(volume) == label
    fractions = phase.mean(axis=tuple(a for a in range(phase.ndim) if a != axis))
    return int(np.argmin(np.abs(fractions - phase.mean())))


def _place_clast(gravel, radius, elongation, roughness, max_overlap, rng):
    """Try to add one clast; return the number of new gravel voxels (0 if rejected)."""
    semi_axes = radius * np.exp(elongation * rng.uniform(-1.0, 1.0, 3))
    rotation = _random_rotation(rng)
    reach = int(np.ceil(semi_axes.max() * (1.0 + roughness))) + 1
    center = rng.uniform(0, gravel.shape)
    offsets = np.arange(-reach, reach + 1)
    index = [(np.floor(center[axis]).astype(int) + offsets) % gravel.shape[axis] for axis in range(3)]
    grid = np.stack(
        np.meshgrid(*(np.floor(center[a]) + offsets - center[a] for a in range(3)), indexing="ij"),
        axis=-1,
    )
    local = grid @ rotation  # coordinates in the clast's own frame
    scaled = local / semi_axes
    distance = np.sqrt((scaled**2).sum(axis=-1))
    direction = local / np.maximum(np.linalg.norm(local, axis=-1, keepdims=True), 1e-9)
    inside = distance < 1.0 + roughness * _undulation(direction, rng)
    volume = int(inside.sum())
    if volume == 0:
        return 0
    block = gravel[np.ix_(*index)]
    overlap = np.count_nonzero(block & inside)
    if overlap > max_overlap * volume:
        return 0
    block |= inside
    gravel[np.ix_(*index)] = block
    return volume - overlap


def _undulation(direction, rng, n_waves=4):
    """A smooth random function on the unit sphere with values in about [-1, 1]."""
    waves = rng.standard_normal((n_waves, 3))
    phases = rng.uniform(0, 2 * np.pi, n_waves)
    values = np.cos(2.0 * direction @ waves.T + phases)
    return values.mean(axis=-1) * np.sqrt(2.0)


def _random_rotation(rng):
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    return q * np.sign(np.diag(r))
