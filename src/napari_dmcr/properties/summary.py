"""What a core does: its transport and elastic properties per axis, in one checked call."""

from __future__ import annotations

import time

import numpy as np

from napari_dmcr.errors import InputError
from napari_dmcr.evaluation.common import check_phase_mask
from napari_dmcr.labels import check_labels, minority_label
from napari_dmcr.properties.elasticity import TOLERANCE as ELASTIC_TOLERANCE
from napari_dmcr.properties.elasticity import check_moduli, elastic_properties
from napari_dmcr.properties.materials import DEFAULT_MATERIAL, UNIT, phase_moduli
from napari_dmcr.properties.transport import TOLERANCE as DIFFUSION_TOLERANCE
from napari_dmcr.properties.transport import diffusion
from napari_dmcr.reconstruction.settings import resolve_device

AXES = ("z", "y", "x")
PER_AXIS = ("tortuosity", "diffusivity", "young_modulus")
# The settings of volume_properties and their defaults (its signature's), for checks made
# before the volumes are at hand.
VOLUME_DEFAULTS = {
    "young": None,
    "poisson": None,
    "material": DEFAULT_MATERIAL,
    "device": "cpu",
    "elastic": True,
    "label_names": None,
}


def volume_properties(
    volume,
    phase=None,
    *,
    young=None,
    poisson=None,
    material=DEFAULT_MATERIAL,
    device="cpu",
    elastic=True,
    label_names=None,
    cancel=None,
):
    """Tortuosity, diffusivity and elastic moduli of a labeled 3D volume along z, y and x.

    Every input is checked before any solve starts.

    Parameters
    ----------
    volume : array_like of int, shape (d, h, w)
        Labeled volume.
    phase : int, optional
        The label that conducts (pores, matrix); the minority label by default.
    young, poisson : sequence of float, optional
        Moduli per label, in label order; the ``material``'s by default (GPa).
    material : str
        A key of :data:`~napari_dmcr.properties.materials.MATERIALS`.
    device : str
        ``"cpu"``, ``"cuda"`` or ``"auto"``.
    elastic : bool
        Also compute the stiffness (the longer solve).
    label_names : dict, optional
        ``{label: name}`` of the volume (a layer's or a sidecar's): with ``material="auto"``, the
        material they name (:func:`~napari_dmcr.properties.materials.named_material`).
    cancel : CancelToken, optional

    Returns
    -------
    dict
        ``axes``, ``tortuosity`` (None on an axis the phase does not cross), ``diffusivity``
        (D_eff / D, 0 there), ``percolates``, ``young_modulus``, ``poisson_ratio``,
        ``shear_modulus``, ``stiffness`` (Voigt 6 x 6), ``solver`` (iterations, residuals,
        convergence and seconds of each solve), ``notes`` and ``parameters``.

    Examples
    --------
    >>> layers = np.zeros((6, 4, 4), np.uint8)
    >>> layers[:, :, :2] = 1  # sheets of label 1 normal to x
    >>> result = volume_properties(layers, 1, young=(1.0, 2.0), poisson=(0.0, 0.0))
    >>> [round(value, 6) for value in result["diffusivity"]], result["tortuosity"][2]
    ([0.5, 0.5, 0.0], None)
    """
    volume, phase, young, poisson, device, described = check_volume(
        volume, phase, young, poisson, material, device, elastic, label_names
    )
    result = {"axes": list(AXES), "notes": [f"phase moduli: {described}"] if elastic else []}
    solver = {"diffusion": []}
    for axis, name in enumerate(AXES):
        start = time.perf_counter()
        solve = diffusion(volume, phase, axis, device=device, cancel=cancel)
        for key in ("tortuosity", "diffusivity", "percolates"):
            result.setdefault(key, []).append(solve[key])
        solver["diffusion"].append(
            {key: solve[key] for key in ("iterations", "residual", "converged", "flux_mismatch")}
            | {"seconds": time.perf_counter() - start}
        )
        if not solve["percolates"]:
            result["notes"].append(
                f"phase {phase} does not cross the volume along {name}: diffusivity 0, no tortuosity"
            )
        elif not solve["converged"]:
            result["notes"].append(
                f"the diffusion solve along {name} stopped at its iteration cap before its tolerance"
            )
    if elastic:
        start = time.perf_counter()
        moduli = elastic_properties(volume, young, poisson, device=device, cancel=cancel)
        result.update({key: moduli[key] for key in ("young_modulus", "poisson_ratio", "shear_modulus", "stiffness")})
        solver["elasticity"] = {
            key: moduli[key] for key in ("iterations", "residuals", "converged", "symmetry_error")
        } | {"seconds": time.perf_counter() - start}
        result["notes"] += moduli["notes"]
        if not moduli["converged"]:
            result["notes"].append("the elastic solve stopped at its iteration cap before its tolerance")
    result["solver"] = solver
    result["parameters"] = {
        "phase": phase,
        "shape": list(volume.shape),
        "fraction": float(np.mean(volume == phase)),
        "material": material,
        "moduli": described,
        "young_modulus": None if young is None else list(young),
        "poisson_ratio": None if poisson is None else list(poisson),
        "unit": UNIT,
        "device": device,
        "diffusion_tolerance": DIFFUSION_TOLERANCE,
        "elastic_tolerance": ELASTIC_TOLERANCE,
        "boundary": "diffusion: fixed concentrations on two opposite faces, the others closed; "
        "elasticity: periodic unit cell",
    }
    return result


def check_volume(volume, phase, young, poisson, material, device, elastic, label_names=None):
    """A volume and its settings, checked; ``(volume, phase, young, poisson, device, described)``
    (``described``: which label is what, see :func:`~napari_dmcr.properties.materials.phase_moduli`)."""
    volume = check_labels(volume, ndims=(3,), what="the volume")
    phase = minority_label([volume]) if phase is None else int(phase)
    check_phase_mask(volume, phase)
    device = resolve_device(device)
    described = None
    if elastic:  # the moduli of a transport-only run are not needed, nor assumed
        labels = np.unique(volume)
        young, poisson, described = phase_moduli(
            material, young, poisson, labels=labels, phase=phase, label_names=label_names
        )
        check_moduli(young, poisson, labels)
    return volume, phase, young, poisson, device, described


def check_properties_settings(settings):
    """Check the keyword arguments of :func:`volume_properties` that do not need the volume;
    all of them, the defaults filled in (:data:`VOLUME_DEFAULTS`)."""
    unknown = set(settings) - set(VOLUME_DEFAULTS)
    if unknown:
        raise InputError(f"unknown property settings: {', '.join(sorted(unknown))}")
    settings = {**VOLUME_DEFAULTS, **settings}
    resolve_device(settings["device"])
    young, poisson, _ = phase_moduli(
        settings["material"], settings["young"], settings["poisson"], label_names=settings["label_names"]
    )
    if settings["elastic"] and young is not None:
        check_moduli(young, poisson)
    return settings


def compare_properties(reconstruction, truth=None, phase=None, **settings):
    """:func:`volume_properties` of a reconstruction and of a true volume, and their relative
    differences per axis (``{"reconstruction", "truth", "differences"}``; no truth: the first)."""
    settings = check_properties_settings(settings)
    phase = check_volume(reconstruction, phase, **settings)[1]
    if truth is not None:  # both volumes pass their checks before either is solved
        check_volume(truth, phase, **settings)
    compared = {"reconstruction": volume_properties(reconstruction, phase, **settings)}
    if truth is not None:
        compared["truth"] = volume_properties(truth, phase, **settings)
        compared["differences"] = relative_differences(compared["reconstruction"], compared["truth"])
    return compared


def relative_differences(properties, reference):
    """Per axis, (value - reference) / reference of each of :data:`PER_AXIS` (None where undefined)."""
    out = {}
    for key in PER_AXIS:
        if key not in properties or key not in reference:
            continue
        out[key] = [
            None if value is None or base in (None, 0) else (value - base) / base
            for value, base in zip(properties[key], reference[key])
        ]
    return out
