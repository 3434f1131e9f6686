"""How faithful is a reconstruction: its statistics against the original slice (and a 3D truth).

:func:`evaluate` gathers every figure in one dict (the command ``dmcr evaluate`` writes it as
JSON and :func:`napari_dmcr.plotting.evaluation.draw_report` draws it). The pieces:

- :func:`fraction_errors`: phase fractions and their absolute and relative errors;
- :func:`s2_comparison`: S2 of the original slice against S2 of the reconstruction's slices
  normal to each axis, radially averaged and along each axis, with the RMS error over the lags;
- :func:`descriptor_gaps`: the relative gaps of the fitted descriptors (S3, Gram matrices, volume
  fraction, total variation) per slicing direction;
- :func:`~napari_dmcr.evaluation.unfitted.slice_statistics` and
  :func:`~napari_dmcr.evaluation.unfitted.morphology_comparison`: measures that were *not* fitted
  (lineal path, chord lengths, clusters, Euler characteristic, interface density, local
  thickness), in 2D slices against the original and in 3D against a true volume.

Conventions: a volume is indexed (z, y, x) and "direction z" means the slices normal to z. The
original slice is never periodic; ``periodic`` applies to the reconstruction only. S2, S3 and TV
of a stack of slices are averaged over its slices before they are compared (the statistic the
reconstruction was fitted to). Relative errors are ``|value - reference| / |reference|`` (NaN where
the reference is 0); RMS errors of curves are taken over their common range.
"""

from __future__ import annotations

import numpy as np
import torch

from napari_dmcr.descriptors import (
    DescriptorSpec,
    descriptor_targets,
    displacement_vectors,
    gram_matrices,
    indicator,
    s2_axis_profiles,
    s2_radial,
    s3,
    total_variation,
    volume_fraction,
)
from napari_dmcr.errors import InputError
from napari_dmcr.evaluation.common import (
    AXIS_NAMES,
    check_reconstruction,
    check_slice,
    default_lag,
    relative_error,
    rms,
    slice_stacks,
)
from napari_dmcr.evaluation.unfitted import morphology_comparison

# Slices per S3 / VGG-19 evaluation in descriptor_gaps: bounds the memory of the intermediates.
_CHUNK = 16


def phase_fractions(labels):
    """Fraction of every label of a labeled image, as ``{label: fraction}``."""
    values, counts = np.unique(np.asarray(labels), return_counts=True)
    return {int(v): float(c) / counts.sum() for v, c in zip(values, counts, strict=True)}


def fraction_errors(reference, candidate):
    """Phase fractions of two labeled images and the candidate's errors.

    Parameters
    ----------
    reference, candidate : array_like of int
        Labeled images or volumes (any shapes).

    Returns
    -------
    dict
        ``reference``, ``candidate``, ``absolute_error`` and ``relative_error``, each
        ``{label: float}`` over the labels of both images (fraction 0 where a label is missing).
    """
    reference, candidate = phase_fractions(reference), phase_fractions(candidate)
    labels = sorted(set(reference) | set(candidate))
    ref = {label: reference.get(label, 0.0) for label in labels}
    cand = {label: candidate.get(label, 0.0) for label in labels}
    return {
        "reference": ref,
        "candidate": cand,
        "absolute_error": {label: abs(cand[label] - ref[label]) for label in labels},
        "relative_error": {label: relative_error(cand[label], ref[label]) for label in labels},
    }


def s2_comparison(original, reconstruction, phase, max_lag=None, *, periodic=False):
    """S2 of the original slice against S2 of the reconstruction's slices.

    Parameters
    ----------
    original : array_like of int, shape (h, w)
        Labeled original slice.
    reconstruction : array_like of int, shape (d, h, w) or (h, w)
        Labeled reconstruction (a 2D reconstruction is one slice, direction ``"image"``).
    phase : int
        Label of the phase.
    max_lag : int, optional
        Largest lag in pixels; by default a quarter of the smallest side of either image.
    periodic : bool
        Measure the reconstruction with wrap-around.

    Returns
    -------
    dict
        ``max_lag``; ``original``: ``radial`` (L+1,) and ``axes`` (the mean of its two axis
        profiles, (L+1,)); ``reconstruction``: ``radial`` per slicing direction and ``axes`` per
        volume axis (the mean of the axis profiles of the two slicing directions that contain
        the axis); ``rms_error``: ``radial`` and ``axes``, the RMS over the lags 0..L of the
        difference to the original's curve, per direction / axis.
    """
    original = check_slice(original)
    reconstruction = check_reconstruction(reconstruction)
    max_lag = default_lag(max_lag, original.shape + reconstruction.shape)
    field = indicator(original, phase)
    reference = {
        "radial": s2_radial(field, max_lag, periodic=False),
        "axes": s2_axis_profiles(field, max_lag, periodic=False).mean(axis=0),
    }
    measured = _stack_s2(reconstruction, phase, max_lag, periodic)
    return {
        "max_lag": max_lag,
        "original": reference,
        "reconstruction": measured,
        "rms_error": {
            kind: {name: rms(curve - reference[kind]) for name, curve in measured[kind].items()}
            for kind in ("radial", "axes")
        },
    }


def descriptor_gaps(original, reconstruction, phase, *, s3_limit_to=6, gram=False, periodic=False):
    """Relative gaps of the fitted descriptors, per slicing direction of the reconstruction.

    With the descriptor of a stack taken as its mean over the slices::

        E_S3 = ||S3_rec - S3_orig||_2 / ||S3_orig||_2
        E_G  = ||G_rec - G_orig||_F / ||G_orig||_F   (the five VGG-19 layers together)
        E_V  = |V_rec - V_orig| / V_orig
        E_TV = |TV_rec - TV_orig| / TV_orig

    Parameters
    ----------
    original : array_like of int, shape (h, w)
        Labeled original slice.
    reconstruction : array_like of int, shape (d, h, w) or (h, w)
        Labeled reconstruction.
    phase : int
        Label of the phase.
    s3_limit_to : int
        Window of S3 (see :func:`napari_dmcr.descriptors.s3`).
    gram : bool
        Also compare the VGG-19 Gram matrices; needs the network weights (see
        :func:`napari_dmcr.descriptors.load_vgg19_weights`) and slices of 16 pixels or more.
    periodic : bool
        Measure the reconstruction with wrap-around.

    Returns
    -------
    dict
        ``{direction: {"s3": E_S3, "volume_fraction": E_V, "total_variation": E_TV[, "gram":
        E_G]}}``.
    """
    original = check_slice(original)
    reconstruction = check_reconstruction(reconstruction)
    field = indicator(original, phase)
    descriptors = {
        "s3": lambda f, p: s3(f, s3_limit_to, periodic=p),
        "volume_fraction": lambda f, p: volume_fraction(f),
        "total_variation": lambda f, p: total_variation(f, periodic=p),
    }
    if gram:
        descriptors["gram"] = lambda f, p: _gram_vector(f)
    reference = _reference_descriptors(field, descriptors, s3_limit_to)
    gaps = {}
    for name, stack in slice_stacks(reconstruction).items():
        fields = (stack == phase).astype(np.float64)
        gaps[name] = {}
        for key, function in descriptors.items():
            measured = _slice_mean(function, fields, periodic)
            gaps[name][key] = float(np.linalg.norm(measured - reference[key]) / np.linalg.norm(reference[key]))
    return gaps


def evaluate(
    original,
    reconstruction,
    truth=None,
    *,
    phases=None,
    max_lag=None,
    s3_limit_to=6,
    gram=False,
    periodic=False,
    connectivity=1,
    properties=None,
):
    """Every fidelity figure of a reconstruction, as one dict (see the module docstring).

    Parameters
    ----------
    original : array_like of int, shape (h, w)
        The labeled slice the reconstruction was made from.
    reconstruction : array_like of int, shape (d, h, w) or (h, w)
        The labeled reconstruction.
    truth : array_like of int, shape (d, h, w), optional
        A true volume to compare the reconstruction with in 3D as well.
    phases : sequence of int, optional
        Labels to evaluate; every label of the original by default.
    max_lag : int, optional
        Largest lag of S2, the lineal path and the cluster function; a quarter of the smallest
        side of the images by default.
    s3_limit_to : int
        Window of S3 in :func:`descriptor_gaps`.
    gram : bool
        Compare the VGG-19 Gram matrices too (needs the weights).
    periodic : bool
        Measure the reconstruction's S2, S3, TV and Gram matrices with wrap-around.
    connectivity : int
        Neighbourhood of clusters and the Euler characteristic: 1 (face neighbours) or the
        dimension of the reconstruction (all neighbours; its 2D slices then use 2).
    properties : dict, optional
        Settings of :func:`~napari_dmcr.properties.volume_properties` (``phase``, ``young``,
        ``poisson``, ``material``, ``elastic``, ``device``): adds ``properties``, the transport and
        elastic properties of a 3D reconstruction and of the truth with their relative
        differences per axis (see :func:`~napari_dmcr.properties.compare_properties`).

    Returns
    -------
    dict
        ``settings``, ``fractions`` (:func:`fraction_errors` of the reconstruction against the
        original, and ``truth_fractions`` against the truth), and ``phases``:
        ``{label: {"s2", "descriptor_gaps", "morphology"[, "truth"]}}`` where ``truth`` holds
        ``s2`` (per-axis and radial S2 of both volumes) and ``morphology`` in 3D. ``errors``
        gathers, per phase, every error as ``{measure: {direction: value}}``.
    """
    original = check_slice(original)
    reconstruction = check_reconstruction(reconstruction)
    if truth is not None:
        truth = np.asarray(truth)
        if truth.ndim != 3 or reconstruction.ndim != 3:
            raise InputError(
                f"a true volume is compared with a 3D reconstruction; got truth {truth.shape} "
                f"and reconstruction {reconstruction.shape}"
            )
    if properties is not None:
        # Imported here: the properties package measures with this package's helpers.
        from napari_dmcr.properties.summary import check_properties_settings, compare_properties

        if reconstruction.ndim != 3:
            raise InputError(f"properties are measured on a 3D reconstruction, got shape {reconstruction.shape}")
        check_properties_settings({key: value for key, value in properties.items() if key != "phase"})
    if connectivity not in (1, reconstruction.ndim):
        raise InputError(
            f"connectivity must be 1 (face neighbours) or {reconstruction.ndim} (all neighbours), got {connectivity}"
        )
    sizes = original.shape + reconstruction.shape + (() if truth is None else truth.shape)
    max_lag = default_lag(max_lag, sizes)
    phases = sorted(phase_fractions(original)) if phases is None else [int(p) for p in phases]
    results = {
        "settings": {
            "max_lag": max_lag,
            "s3_limit_to": s3_limit_to,
            "gram": bool(gram),
            "periodic": bool(periodic),
            "connectivity": connectivity,
            "original_shape": original.shape,
            "reconstruction_shape": reconstruction.shape,
            "truth_shape": None if truth is None else truth.shape,
        },
        "fractions": fraction_errors(original, reconstruction),
        "phases": {},
        "errors": {},
    }
    if truth is not None:
        results["fractions_truth"] = fraction_errors(truth, reconstruction)
    for phase in phases:
        entry = {
            "s2": s2_comparison(original, reconstruction, phase, max_lag, periodic=periodic),
            "descriptor_gaps": descriptor_gaps(
                original,
                reconstruction,
                phase,
                s3_limit_to=s3_limit_to,
                gram=gram,
                periodic=periodic,
            ),
            "morphology": morphology_comparison(
                original, reconstruction, phase, connectivity=connectivity, max_length=max_lag
            ),
        }
        errors = {
            "volume_fraction_abs": {"all": results["fractions"]["absolute_error"][phase]},
            "s2_rms_radial": entry["s2"]["rms_error"]["radial"],
            "s2_rms_axis": entry["s2"]["rms_error"]["axes"],
        }
        for key in next(iter(entry["descriptor_gaps"].values())):
            errors[f"E_{key}"] = {n: g[key] for n, g in entry["descriptor_gaps"].items()}
        errors.update(entry["morphology"]["errors"])
        if truth is not None:
            reference = _stack_s2(truth, phase, max_lag, periodic=False)
            measured = _stack_s2(reconstruction, phase, max_lag, periodic)
            entry["truth"] = {
                "s2": {"truth": reference, "reconstruction": measured},
                "morphology": morphology_comparison(
                    truth, reconstruction, phase, connectivity=connectivity, max_length=max_lag
                ),
            }
            errors["truth/volume_fraction_abs"] = {"all": results["fractions_truth"]["absolute_error"][phase]}
            errors["truth/s2_rms_axis"] = {
                n: rms(measured["axes"][n] - reference["axes"][n]) for n in reference["axes"]
            }
            for key, value in entry["truth"]["morphology"]["errors"].items():
                errors[f"truth/{key}"] = value
        results["phases"][phase] = entry
        results["errors"][phase] = errors
    if properties is not None:
        results["properties"] = compare_properties(reconstruction, truth, **properties)
    return results


def _stack_s2(volume, phase, max_lag, periodic):
    """Radial S2 per slicing direction and S2 along each axis, averaged over the slices."""
    radial, profiles = {}, {}
    for name, stack in slice_stacks(volume).items():
        fields = (stack == phase).astype(np.float64)
        radial[name] = s2_radial(fields, max_lag, periodic=periodic).mean(axis=0)
        profiles[name] = s2_axis_profiles(fields, max_lag, periodic=periodic).mean(axis=0)
    if volume.ndim == 2:
        return {"radial": radial, "axes": {"y": profiles["image"][0], "x": profiles["image"][1]}}
    axes = {}
    for axis, name in enumerate(AXIS_NAMES):
        # Slices normal to another axis keep the volume axes in order: find this one among them.
        along = [
            profiles[AXIS_NAMES[normal]][[a for a in range(3) if a != normal].index(axis)]
            for normal in range(3)
            if normal != axis
        ]
        axes[name] = np.mean(along, axis=0)
    return {"radial": radial, "axes": axes}


def _slice_mean(function, fields, periodic):
    """Mean over the slices of a per-slice descriptor, by chunks of slices (bounded memory)."""
    total = sum(
        function(fields[start : start + _CHUNK], periodic).sum(axis=0) for start in range(0, len(fields), _CHUNK)
    )
    return total / len(fields)


def _reference_descriptors(field, descriptors, s3_limit_to):
    """The original slice's descriptors as ``descriptors`` measure a slice; S3 and Gram matrices
    strip by strip and tile by tile (a CT slice's S3 copies alone would take gigabytes at once)."""
    reference = {key: f(field[None], False)[0] for key, f in descriptors.items() if key not in ("s3", "gram")}
    s3_spec = DescriptorSpec("s3", limit_to=s3_limit_to, periodic=False)
    (values,) = descriptor_targets([s3_spec], torch.as_tensor(field)[None])["s3"]
    side = len(displacement_vectors(s3_limit_to))
    reference["s3"] = values.numpy().reshape(side, side)
    if "gram" in descriptors:
        grams = descriptor_targets([DescriptorSpec("gram")], torch.as_tensor(field, dtype=torch.float32)[None])["gram"]
        reference["gram"] = torch.cat(grams).double().numpy()
    return reference


def _gram_vector(fields):
    """The five VGG-19 Gram matrices of each slice, concatenated: shape (n, 64^2 + ... + 512^2)."""
    with torch.no_grad():
        grams = gram_matrices(torch.as_tensor(fields, dtype=torch.float32))
    return torch.cat([g.flatten(1) for g in grams], dim=1).double().numpy()
