"""3D structure measures a reconstruction is not fitted to, scored against true volumes.

A core "is the material" when what it does in 3D (connectivity, grain shape, interface
orientation) lies within the natural spread of true volumes of the same size. This module turns
a labeled volume into a flat dict of scalar measures (:func:`structure_measures`), the truth's
spread over several true sub-volumes into means and standard deviations
(:func:`truth_spread`), and a candidate into z-scores against that spread (:func:`z_scores`;
a measure passes within 2 SD).

Measures, for one phase (``phase``) and the rest of the volume (``other``), all non-periodic:

======================== ==================================================================
``fraction``             volume fraction of the phase
``largest_cluster``      share of the phase in its largest 6-connected cluster
``clusters``             number of 6-connected clusters of the phase
``tiny_clusters``        clusters of at most :data:`TINY_CLUSTER` voxels (specks)
``euler_6``/``euler_26`` Euler characteristic per voxel, 6- and 26-connected phase (negative:
                         a network with loops; positive: isolated blobs)
``chord_phase_z`` ...    mean chord length of the phase along z, y, x (chords cut by the
                         border left out); ``chord_other_*`` the same for the rest
``thickness_phase``      mean local thickness of the phase (voxels); ``thickness_other``
``thin_fraction``        share of the phase's voxels whose local thickness is 1 voxel
``specific_surface``     interface area per phase volume (marching cubes, 1/voxel)
``slice_fraction_sd``    standard deviation of the phase fraction over the slices, mean of
                         the three directions
``interface_alignment``  voxel faces between the phases over the marching-cubes area of the
                         raw interface: 1 when every interface is normal to an axis, about
                         1.4-1.5 for interfaces of every orientation
======================== ==================================================================

With ``grains`` (the label of the grain phase of a grain-in-matrix material): ``grain_count``
(its 6-connected clusters of more than :data:`TINY_CLUSTER` voxels), ``grain_diameter`` (mean
equivalent-sphere diameter) and ``grain_diameter_cv`` (its coefficient of variation) and
``grain_sphericity`` (mean of pi^(1/3) (6V)^(2/3) / A over the grains that do not touch the
border).

Percolation (a boolean per axis, :func:`percolation`) is kept apart: it is compared with the
truth's, not z-scored.

Examples
--------
>>> import numpy as np
>>> volume = np.zeros((16, 16, 16), np.uint8)
>>> volume[:, 6:10, 6:10] = 1  # a square rod along z
>>> m = structure_measures(volume, 1)
>>> m["fraction"], m["clusters"], percolation(volume, 1)
(0.0625, 1.0, [True, False, False])
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi
from skimage import measure, morphology, segmentation

from napari_dmcr.errors import InputError
from napari_dmcr.evaluation.common import check_phase_mask
from napari_dmcr.evaluation.morphology import (
    chord_length_distribution,
    connectivity,
    euler_characteristic_density,
    specific_surface_area,
)
from napari_dmcr.evaluation.thickness import local_thickness

AXES = ("z", "y", "x")
TINY_CLUSTER = 8  # voxels: a 2x2x2 cube
PASS_Z = 2.0
COUNTS = ("clusters", "tiny_clusters", "grain_count")


def structure_measures(volume, phase, *, grains=None):
    """Scalar 3D structure measures of one phase of a labeled volume (see module docstring).

    Parameters
    ----------
    volume : array_like of int, shape (d, h, w)
        Labeled volume.
    phase : int
        Label of the phase of interest (e.g. pore, matrix).
    grains : int, optional
        Label of the grain phase of a grain-in-matrix material: adds the grain measures.

    Returns
    -------
    dict of str to float
    """
    volume = np.asarray(volume)
    if volume.ndim != 3:
        raise InputError(f"structure measures need a 3D volume, got shape {volume.shape}")
    mask = check_phase_mask(volume, phase)
    if mask.all():
        raise InputError(f"phase {phase} fills the whole volume; there is no structure to measure")
    clusters, count = ndi.label(mask)
    sizes = np.bincount(clusters.ravel())[1:]
    binary = mask.astype(np.uint8)
    thickness = local_thickness(binary, 1)[mask]
    result = {
        "fraction": float(mask.mean()),
        "largest_cluster": float(sizes.max() / sizes.sum()),
        "clusters": float(count),
        "tiny_clusters": float(np.count_nonzero(sizes <= TINY_CLUSTER)),
        "euler_6": euler_characteristic_density(binary, 1, connectivity=1),
        "euler_26": euler_characteristic_density(binary, 1, connectivity=3),
    }
    for name, part in (("phase", 1), ("other", 0)):
        for axis, axis_name in enumerate(AXES):
            result[f"chord_{name}_{axis_name}"] = chord_length_distribution(binary, part, axis)["mean_length"]
    result["thickness_phase"] = float(thickness.mean())
    result["thickness_other"] = float(local_thickness(binary, 0)[~mask].mean())
    result["thin_fraction"] = float(np.mean(thickness <= 1))
    area = _interface_area(mask.astype(np.float32))
    result["specific_surface"] = specific_surface_area(binary, 1)
    result["slice_fraction_sd"] = float(
        np.mean([mask.mean(axis=tuple(a for a in range(3) if a != axis)).std() for axis in range(3)])
    )
    result["interface_alignment"] = float(_voxel_faces(mask) / area) if area else math.nan
    if grains is not None:
        result.update(grain_measures(volume, grains))
    return result


def grain_measures(volume, grains):
    """Count, size and shape of the grains of the label ``grains``.

    Touching grains are split by a watershed of the distance map from its maxima of height 1
    voxel or more (as SNOW partitioning does for pores); regions of at most
    :data:`TINY_CLUSTER` voxels are not grains. Sphericity is measured on the grains that do not
    touch the border, with the raw marching-cubes area (a digital ball scores about 0.92).
    """
    mask = check_phase_mask(volume, grains)
    distance = ndi.distance_transform_edt(mask)
    markers, _ = ndi.label(morphology.h_maxima(distance, 1.0))
    regions = segmentation.watershed(-distance, markers, mask=mask)
    sizes = np.bincount(regions.ravel())
    sizes[0] = 0
    kept = np.flatnonzero(sizes > TINY_CLUSTER)
    diameters = (6.0 * sizes[kept] / math.pi) ** (1.0 / 3.0)
    touching = np.zeros(sizes.size, bool)
    for axis in range(3):
        for end in (0, -1):
            touching[np.take(regions, end, axis=axis)] = True
    sphericities = []
    for index, box in enumerate(ndi.find_objects(regions), start=1):
        if box is None or touching[index] or sizes[index] <= TINY_CLUSTER:
            continue
        area = _interface_area(np.pad(regions[box] == index, 1).astype(np.float32))
        sphericities.append(math.pi ** (1 / 3) * (6 * sizes[index]) ** (2 / 3) / area)
    return {
        "grain_count": float(kept.size),
        "grain_diameter": float(diameters.mean()) if kept.size else 0.0,
        "grain_diameter_cv": float(diameters.std() / diameters.mean()) if kept.size else 0.0,
        "grain_sphericity": float(np.mean(sphericities)) if sphericities else 0.0,
    }


def percolation(volume, phase):
    """Whether a 6-connected cluster of the phase joins the two faces normal to z, y and x."""
    return connectivity(volume, phase, connectivity=1)["percolates"]


def truth_spread(measures):
    """Mean and standard deviation (ddof 1) of each measure over true sub-volumes.

    Parameters
    ----------
    measures : list of dict
        :func:`structure_measures` of N >= 2 true volumes of the reconstruction's size.

    Returns
    -------
    dict of str to dict
        ``{name: {"mean": float, "sd": float}}`` over the measures every volume has.
    """
    if len(measures) < 2:
        raise InputError("the truth's spread needs at least two true volumes")
    names = [n for n in measures[0] if all(n in m for m in measures)]
    spread = {}
    for name in names:
        values = np.array([m[name] for m in measures], dtype=float)
        values = values[np.isfinite(values)]
        spread[name] = {
            "mean": float(values.mean()) if values.size else math.nan,
            "sd": float(values.std(ddof=1)) if values.size > 1 else math.nan,
        }
    return spread


def z_scores(measures, spread):
    """z = (value - truth mean) / truth SD of each measure.

    The SD is floored at 1 % of the mean's magnitude (1 for counts), so that a spread of zero
    (every true volume alike, e.g. no specks in any) gives large rather than infinite scores.
    """
    scores = {}
    for name, stats in spread.items():
        value = measures.get(name, math.nan)
        floor = 1.0 if name in COUNTS else max(0.01 * abs(stats["mean"]), 1e-12)
        sd = stats["sd"] if math.isfinite(stats["sd"]) else math.nan
        scores[name] = float((value - stats["mean"]) / max(sd, floor)) if math.isfinite(value) else math.nan
    return scores


def passing(scores, limit=PASS_Z):
    """Names of the measures whose |z| is within ``limit``."""
    return [name for name, z in scores.items() if math.isfinite(z) and abs(z) <= limit]


def _interface_area(field):
    """Area of the 0.5 level of a 3D field (marching cubes), 0 when there is none."""
    if field.min() >= 0.5 or field.max() <= 0.5:
        return 0.0
    vertices, faces, _, _ = measure.marching_cubes(field, 0.5)
    return float(measure.mesh_surface_area(vertices, faces))


def _voxel_faces(mask):
    """Number of faces between a phase voxel and a neighbour outside the phase, inside the volume."""
    return sum(int(np.count_nonzero(np.diff(mask.view(np.int8), axis=axis))) for axis in range(3))
