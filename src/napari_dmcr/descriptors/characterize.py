"""Characterize a labeled image: every descriptor, per phase, in a pickle-free file.

File format (``.npz``, read with ``allow_pickle=False``):

- ``settings_json``: a JSON string with the settings, the labels and the image shape;
- ``phase_<label>/volume_fraction``, ``phase_<label>/volume_fraction_sd`` (its sampling SD, see
  :mod:`representativity`; older files lack it), ``phase_<label>/tv``: scalars;
- ``phase_<label>/s2_map`` (2L+1, 2L+1), ``phase_<label>/s2_axes`` (2, L+1) and
  ``phase_<label>/s2_radial`` (L+1,): S2 with lags 0..L (see :mod:`two_point`);
- ``phase_<label>/s3/level_<k>`` (R, R): S3 of multigrid level k (see :mod:`three_point`);
- ``phase_<label>/gram/<layer>`` (C, C): VGG-19 Gram matrices (when computed).
"""

from __future__ import annotations

import json
import math
import zipfile

import numpy as np
import torch

from napari_dmcr import __version__
from napari_dmcr.descriptors.descriptor_set import DescriptorSpec, descriptor_targets
from napari_dmcr.descriptors.fields import indicator
from napari_dmcr.descriptors.gram import GRAM_LAYERS
from napari_dmcr.descriptors.representativity import fraction_interval
from napari_dmcr.descriptors.three_point import displacement_vectors
from napari_dmcr.descriptors.total_variation import total_variation
from napari_dmcr.descriptors.two_point import s2_axis_profiles, s2_map, s2_radial, volume_fraction
from napari_dmcr.errors import InputError
from napari_dmcr.io.atomic import atomic_path
from napari_dmcr.labels import phase_labels

FORMAT_VERSION = 2  # 2: Gram matrices of non-periodic images wrap around
DEFAULT_MAX_LAG = 128  # S2 lags by default: the reach of cores up to 256 voxels wide


def characterize(
    image,
    *,
    phases=None,
    s2_max_lag=None,
    s3_limit_to=6,
    s3_levels=2,
    gram=True,
    periodic=False,
):
    """Compute every descriptor of a labeled 2D image, per phase.

    Parameters
    ----------
    image : array_like of int, shape (h, w)
        Labeled image with at least two phases.
    phases : list of int, optional
        Labels to characterize; all labels by default.
    s2_max_lag : int, optional
        Largest S2 lag; defaults to a quarter of the smaller image side, at most
        :data:`DEFAULT_MAX_LAG` (a CT slice's maps would otherwise fill tens of MB per phase).
    s3_limit_to : int
        S3 window size.
    s3_levels : int
        Multigrid levels of S3.
    gram : bool
        Compute the VGG-19 Gram matrices (needs the weights, see :mod:`vgg19_weights`); of an
        image beyond 2^19 pixels, the mean over tiles (see :func:`descriptor_targets`).
    periodic : bool
        Treat the image as periodic. CT slices are not, so the default is False.

    Returns
    -------
    dict
        ``{"settings": {...}, "phases": {label: {descriptor: value}}}``, values as NumPy arrays
        (float64) or floats; the layout of :func:`save_descriptors`.
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise InputError(f"characterize expects a 2D labeled image, got shape {image.shape}")
    labels = phase_labels(image)
    if len(labels) < 2:
        raise InputError(f"the image has a single label {labels}; a microstructure needs 2+ phases")
    phases = labels if phases is None else [int(p) for p in phases]
    s2_max_lag = max(1, min(min(image.shape) // 4, DEFAULT_MAX_LAG)) if s2_max_lag is None else int(s2_max_lag)
    settings = {
        "s2_max_lag": s2_max_lag,
        "s3_limit_to": int(s3_limit_to),
        "s3_levels": int(s3_levels),
        "gram": bool(gram),
        "periodic": bool(periodic),
        "labels": labels,
        "shape": list(image.shape),
        "format_version": FORMAT_VERSION,
        "napari_dmcr_version": __version__,
    }
    results = {}
    for phase in phases:
        field = indicator(image, phase)
        entry = {
            "volume_fraction": float(volume_fraction(field)),
            "volume_fraction_sd": fraction_interval(image, phase)["sd"],
            "s2_map": s2_map(field, s2_max_lag, periodic),
            "s2_axes": s2_axis_profiles(field, s2_max_lag, periodic),
            "s2_radial": s2_radial(field, s2_max_lag, periodic),
            "tv": float(total_variation(field, periodic)),
        }
        # In strips and tiles: a CT slice thousands of pixels wide characterized in bounded memory.
        specs = [DescriptorSpec("s3", limit_to=s3_limit_to, levels=s3_levels, periodic=periodic)]
        specs += [DescriptorSpec("gram")] if gram else []
        values = descriptor_targets(specs, torch.as_tensor(field)[None])
        entry["s3"] = [_square(part) for part in values["s3"]]
        if gram:
            entry["gram"] = {layer: _square(part) for layer, part in zip(GRAM_LAYERS, values["gram"])}
        results[phase] = entry
    return {"settings": settings, "phases": results}


def _square(part):
    """A flattened square matrix as a float64 array of its shape."""
    side = math.isqrt(part.numel())
    return part.reshape(side, side).double().numpy()


def save_descriptors(path, characterization):
    """Write a characterization to ``path`` (``.npz``) atomically; see the module docstring."""
    arrays = {"settings_json": np.array(json.dumps(characterization["settings"]))}
    for phase, entry in characterization["phases"].items():
        prefix = f"phase_{phase}/"
        for key, value in entry.items():
            if key == "s3":
                for level, matrix in enumerate(value):
                    arrays[f"{prefix}s3/level_{level}"] = np.asarray(matrix)
            elif key == "gram":
                for layer, matrix in value.items():
                    arrays[f"{prefix}gram/{layer}"] = np.asarray(matrix)
            else:
                arrays[prefix + key] = np.asarray(value)
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez_compressed(tmp, **arrays)


def load_descriptors(path):
    """Read a file written by :func:`save_descriptors` (no pickles)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise InputError(f"cannot read descriptor file {path} (a damaged or partial file?): {error}") from None
    if not all(np.isfinite(value).all() for key, value in arrays.items() if value.dtype.kind == "f"):
        raise InputError(f"{path}: NaN or infinite descriptor values; characterize the image again")
    if "settings_json" not in arrays:
        raise InputError(f"{path} is not a napari-dmcr descriptor file (no settings_json)")
    settings = json.loads(str(arrays.pop("settings_json")))
    if (
        settings.get("format_version", 1) < 2
        and not settings.get("periodic", False)
        and any(key.partition("/")[2].startswith("gram/") for key in arrays)
    ):
        raise InputError(
            f"{path} holds Gram matrices taken with zero padding (descriptor file format 1), "
            "which reconstructions no longer match; characterize the image again"
        )
    phases = {}
    for key, value in sorted(arrays.items()):
        phase_key, _, name = key.partition("/")
        entry = phases.setdefault(int(phase_key.removeprefix("phase_")), {})
        if name.startswith("s3/"):
            entry.setdefault("s3", []).append(value)
        elif name.startswith("gram/"):
            entry.setdefault("gram", {})[name.removeprefix("gram/")] = value
        else:
            entry[name] = float(value) if value.ndim == 0 else value
    for entry in phases.values():
        if "gram" in entry:
            entry["gram"] = {layer: entry["gram"][layer] for layer in GRAM_LAYERS}
    return {"settings": settings, "phases": phases}


def s3_vectors(characterization):
    """The displacement vectors that index the S3 matrices of a characterization."""
    return displacement_vectors(characterization["settings"]["s3_limit_to"])
