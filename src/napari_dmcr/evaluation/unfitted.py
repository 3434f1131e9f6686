"""Measures a reconstruction was not fitted to, against the original slice and a 3D truth:
lineal path, chord lengths, clusters, Euler characteristic, interface density, local thickness."""

from __future__ import annotations

import math

import numpy as np

from napari_dmcr.errors import InputError
from napari_dmcr.evaluation import morphology
from napari_dmcr.evaluation.common import (
    AXIS_NAMES,
    check_reconstruction,
    default_lag,
    relative_error,
    rms,
    slice_stacks,
)
from napari_dmcr.evaluation.thickness import local_thickness


def slice_statistics(slices, phase, *, max_length=None, connectivity=1):
    """Measures of a phase in 2D slices, pooled over a stack (one image is a stack of one).

    Every slice is treated as a 2D image: this is what a reconstruction's slices can be compared
    with when the original is a single slice.

    Parameters
    ----------
    slices : array_like of int, shape (h, w) or (n, h, w)
        Labeled slice or stack of slices.
    phase : int
        Label of the phase.
    max_length : int, optional
        Largest segment length of the lineal path; half the smaller side by default.
    connectivity : int
        1 (4 neighbours) or 2 (8 neighbours) for clusters and the Euler characteristic.

    Returns
    -------
    dict
        ``lineal_path`` ((L+1,), over both in-plane axes and every slice), ``chord_length``
        (``probability`` per length 1..max side and ``mean_length``, chords not touching the
        border), ``euler_characteristic_density`` (Euler characteristic per pixel),
        ``specific_perimeter`` (interface length per unit phase area; 4/pi times it estimates
        the 3D interface area per unit phase volume), ``largest_cluster_fraction`` (mean over
        the slices that contain the phase), ``percolating_slices`` (share of those slices in
        which the phase spans the image, per in-plane axis) and ``thickness`` (``fraction`` of
        the phase pixels with each local thickness 0, 1, 2, ... pixels, and ``mean``).

    Raises
    ------
    InputError
        If no slice contains the phase.
    """
    slices = np.asarray(slices)
    slices = slices[None] if slices.ndim == 2 else slices
    if slices.ndim != 3:
        raise InputError(f"expected a 2D slice or a stack of slices, got shape {slices.shape}")
    present = [image for image in slices if np.any(image == phase)]
    if not present:
        raise InputError(f"phase {phase} does not occur in any slice; its labels are {np.unique(slices).tolist()}")
    height, width = slices.shape[1:]
    max_length = min(height, width) // 2 if max_length is None else int(max_length)

    # Lineal path and chords pool over lines: the 2D measures along each axis of the stack.
    lineal = np.mean([morphology.lineal_path(slices, phase, max_length, a) for a in (1, 2)], axis=0)
    lengths = np.arange(1, max(height, width) + 1)
    chord_counts = np.zeros(lengths.size)
    for axis in (1, 2):
        chords = morphology.chord_length_distribution(slices, phase, axis)
        chord_counts[: chords["probability"].size] += chords["probability"] * chords["n_chords"]
    n_chords = chord_counts.sum()

    euler = perimeter = area = 0.0
    largest, percolating, thickness = [], [], []
    for image in present:
        mask = image == phase
        phase_area = np.count_nonzero(mask)
        area += phase_area
        euler += morphology.euler_characteristic_density(image, phase, connectivity=connectivity)
        perimeter += morphology.specific_surface_area(image, phase) * phase_area
        clusters = morphology.connectivity(image, phase, connectivity=connectivity)
        largest.append(clusters["largest_cluster_fraction"])
        percolating.append(clusters["percolates"])
        thickness.append(local_thickness(image, phase)[mask].astype(np.int64))
    thickness = np.concatenate(thickness)
    return {
        "lineal_path": lineal,
        "chord_length": {
            "length": lengths,
            "probability": chord_counts / n_chords if n_chords else chord_counts,
            "mean_length": float(lengths @ chord_counts / n_chords) if n_chords else math.nan,
        },
        "euler_characteristic_density": euler / len(slices),
        "specific_perimeter": perimeter / area,
        "largest_cluster_fraction": float(np.mean(largest)),
        "percolating_slices": np.mean(percolating, axis=0).tolist(),
        "thickness": {
            "fraction": np.bincount(thickness) / thickness.size,
            "mean": float(thickness.mean()),
        },
    }


def morphology_comparison(reference, candidate, phase, *, connectivity=1, max_length=None):
    """Unfitted measures of a candidate against a reference, with their errors.

    Two 3D volumes are compared with :func:`~napari_dmcr.evaluation.morphology.morphology_summary`
    (3D clusters, percolation, Euler characteristic, surface area, local thickness, and the
    lineal path, chords and two-point cluster function per axis). A 2D reference (the original
    slice) is compared with every slicing direction of the candidate by
    :func:`slice_statistics`.

    Parameters
    ----------
    reference : array_like of int, shape (h, w) or (d, h, w)
        The original slice or the true volume.
    candidate : array_like of int, shape (h, w) or (d, h, w)
        The reconstruction (3D whenever the reference is).
    phase : int
        Label of the phase.
    connectivity : int
        Neighbourhood of clusters and of the Euler characteristic: 1 (face neighbours) or the
        dimension of the candidate (all neighbours; its 2D slices then use 2).
    max_length : int, optional
        Largest lag of the lineal path and cluster function; by default a quarter of the
        smallest side of either image.

    Returns
    -------
    dict
        ``reference`` and ``candidate`` (the measures: a summary, or ``{direction: summary}``
        for the candidate's slices) and ``errors`` (``{measure: {direction or axis: value}}``:
        RMS differences of curves, relative errors of scalars, except the Euler characteristic
        density, whose reference is often near 0: its absolute difference, per pixel or voxel).
    """
    reference, candidate = np.asarray(reference), np.asarray(candidate)
    max_length = default_lag(max_length, reference.shape + candidate.shape)
    if reference.ndim == 2:
        # All neighbours in the volume (connectivity 3) means all neighbours in its slices (2).
        options = {"max_length": max_length, "connectivity": 1 if connectivity == 1 else 2}
        ref = slice_statistics(reference, phase, **options)
        cand = {
            name: slice_statistics(stack, phase, **options)
            for name, stack in slice_stacks(check_reconstruction(candidate)).items()
        }
        scalars = {
            "mean_chord_length": lambda s: s["chord_length"]["mean_length"],
            "specific_perimeter": lambda s: s["specific_perimeter"],
            "largest_cluster_fraction": lambda s: s["largest_cluster_fraction"],
            "mean_thickness": lambda s: s["thickness"]["mean"],
        }
        errors = {
            "lineal_path_rms": {n: rms(c["lineal_path"] - ref["lineal_path"]) for n, c in cand.items()},
            "euler_characteristic_density_abs": {
                n: abs(c["euler_characteristic_density"] - ref["euler_characteristic_density"]) for n, c in cand.items()
            },
        }
        for key, value in scalars.items():
            errors[key] = {n: relative_error(value(c), value(ref)) for n, c in cand.items()}
        return {"reference": ref, "candidate": cand, "errors": errors}

    if candidate.ndim != 3 or reference.ndim != 3:
        raise InputError(f"a 3D reference needs a 3D candidate, got shapes {reference.shape} and {candidate.shape}")
    options = {"max_length": max_length, "max_lag": max_length, "connectivity": connectivity}
    ref = morphology.morphology_summary(reference, phase, **options)
    cand = morphology.morphology_summary(candidate, phase, **options)
    names = dict(enumerate(AXIS_NAMES))
    errors = {
        f"{curve}_rms": {names[a]: rms(cand[curve][a] - ref[curve][a]) for a in names}
        for curve in ("lineal_path", "two_point_cluster")
    }
    errors["mean_chord_length"] = {
        names[a]: relative_error(cand["chord_length"][a]["mean_length"], ref["chord_length"][a]["mean_length"])
        for a in names
    }
    errors["percolating_fraction"] = {
        names[a]: abs(cand["connectivity"]["percolating_fraction"][a] - ref["connectivity"]["percolating_fraction"][a])
        for a in names
    }
    errors["euler_characteristic_density_abs"] = {
        "3d": abs(cand["euler_characteristic_density"] - ref["euler_characteristic_density"])
    }
    for key, value in {
        "largest_cluster_fraction": lambda s: s["connectivity"]["largest_cluster_fraction"],
        "specific_surface_area": lambda s: s["specific_surface_area"],
        "mean_thickness": lambda s: s["size_distribution"]["mean_thickness"],
    }.items():
        errors[key] = {"3d": relative_error(value(cand), value(ref))}
    return {"reference": ref, "candidate": cand, "errors": errors}
