"""What a reconstruction matches: target slices per direction, and the phase layout.

Volume axes are (z, y, x). Slices normal to axis 0 (z) are (y, x) images, normal to axis 1 (y)
are (z, x) images and normal to axis 2 (x) are (z, y) images (see
:func:`napari_dmcr.descriptors.volume_slices`). An *isotropic* target uses one 2D image for all
three directions; an *orthogonal* target gives one image per direction, in that orientation.
A *descriptor file* (written by ``dmcr characterize``) stands for an isotropic image that is not
at hand: its descriptors are the targets, and the reconstruction runs on one multigrid level.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from napari_dmcr.descriptors.characterize import load_descriptors
from napari_dmcr.descriptors.representativity import (
    SLICE_NAMES,
    common_fraction,
    disagreements,
    fraction_interval,
    interval,
)
from napari_dmcr.errors import InputError
from napari_dmcr.evaluation.morphology import chord_lengths
from napari_dmcr.labels import check_labels, distinct_images, phase_labels
from napari_dmcr.reconstruction.anisotropy import SEEN, SIGNIFICANT_Z, anisotropy_z, correlation_lengths, length_scales

AXIS_NAMES = ("z", "y", "x")
MAX_LABELS = 16


@dataclass
class Target:
    """Target images per direction and the labels they carry.

    Attributes
    ----------
    images : list of numpy.ndarray
        One labeled 2D image per slicing direction, in volume-axis order (z, y, x); for a 2D
        reconstruction a single image. None for a descriptor-file target.
    labels : list of int
        All labels present in the targets, sorted.
    characterization : dict, optional
        The contents of a descriptor file (see :func:`napari_dmcr.descriptors.load_descriptors`).
    given : list of numpy.ndarray, optional
        Three slices as given, where ``images`` are the same slices moved to one phase fraction
        (:func:`~napari_dmcr.descriptors.representativity.common_fraction`).
    warnings : list of str
        Slices that cannot be one homogeneous material
        (:func:`~napari_dmcr.descriptors.representativity.slice_disagreements`).
    notes : list of str
        What was done to the slices (moved to one fraction).
    cache : dict
        What a run derives from the images once (pooled indicators, descriptor values): a CT
        slice's take seconds, and every level and the final score use them.
    """

    images: list
    labels: list
    characterization: dict | None = None
    given: list | None = None
    warnings: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def isotropic(self):
        return all(image is self.images[0] for image in self.images)

    @property
    def pixels(self):
        """Pixels of the distinct target images (0 for a descriptor file)."""
        return sum(image.size for image in distinct_images(self.images))

    def fractions(self):
        """Mean fraction of every label over the target images (one value per label)."""
        if self.characterization is not None:
            return np.array([self.characterization["phases"][lab]["volume_fraction"] for lab in self.labels])
        return np.array([np.mean([(img == lab).mean() for img in self.images]) for lab in self.labels])

    def fraction_intervals(self):
        """Per label: the target's ``fraction``, its sampling ``sd`` and 95 % interval (``low``,
        ``high``; see :mod:`~napari_dmcr.descriptors.representativity`): three slices' mean and
        the SD of a mean of independent slices; None for a descriptor file without them."""
        if "fraction_intervals" not in self.cache:
            if self.characterization is not None:
                phases = self.characterization["phases"]
                pairs = [(phases[lab]["volume_fraction"], phases[lab].get("volume_fraction_sd")) for lab in self.labels]
            else:
                pairs = []
                for lab in self.labels:
                    intervals = self.slice_intervals(lab)
                    sd = np.sqrt(sum(i["sd"] ** 2 for i in intervals)) / len(intervals)
                    pairs.append((np.mean([i["fraction"] for i in intervals]), sd))
            self.cache["fraction_intervals"] = {
                lab: None if sd is None else interval(f, sd) for lab, (f, sd) in zip(self.labels, pairs)
            }
        return self.cache["fraction_intervals"]

    def slice_intervals(self, label):
        """:func:`~napari_dmcr.descriptors.representativity.fraction_interval` of ``label`` in
        each distinct image as given (an FFT each: computed once)."""
        key = ("slice_intervals", label)
        if key not in self.cache:
            images = distinct_images(self.given or self.images)
            self.cache[key] = [fraction_interval(image, label) for image in images]
        return self.cache[key]

    def chord_anisotropy(self):
        """The largest ratio of the mean chord lengths of a phase along two volume axes, read
        from the slices that see each axis (1 for one image; border chords counted, so that a
        layer as wide as the slice counts as long)."""
        if self.isotropic or self.characterization is not None:
            return 1.0
        if "chord_anisotropy" not in self.cache:
            ratios = []
            for label in self.labels:
                means = []
                for views in SEEN.values():
                    lengths = [chord_lengths(self.images[k] == label, a, include_border=True) for k, a in views]
                    lengths = np.concatenate(lengths)
                    means.append(lengths.mean() if lengths.size else 0.0)
                ratios.append(max(means) / max(min(means), 1e-9))
            self.cache["chord_anisotropy"] = float(max(ratios))
        return self.cache["chord_anisotropy"]

    def axis_scales(self):
        """The stretch of each volume axis that three slices show
        (:func:`~napari_dmcr.reconstruction.anisotropy.axis_scales`); None for one image, and
        where the axes' lengths differ by less than
        :data:`~napari_dmcr.reconstruction.anisotropy.SIGNIFICANT_Z` sampling SDs."""
        if self.isotropic or self.characterization is not None or len(self.images) != 3:
            return None
        if "axis_scales" not in self.cache:
            lengths = correlation_lengths(self.images, self.labels)
            significant = anisotropy_z(self.images, self.labels, lengths) >= SIGNIFICANT_Z
            self.cache["axis_scales"] = length_scales(lengths) if significant else None
        return self.cache["axis_scales"]

    def specs(self, specs):
        """``specs`` with the ranges and levels the descriptor file was computed with.

        Descriptors the file lacks (Gram matrices characterized without them, S2) are dropped.
        """
        settings = self.characterization["settings"]
        entry = next(iter(self.characterization["phases"].values()))
        fitted = []
        for spec in specs:
            if spec.name == "s3":
                fitted.append(replace(spec, limit_to=settings["s3_limit_to"], levels=settings["s3_levels"]))
            elif spec.name in ("tv", "vf") or (spec.name == "gram" and "gram" in entry):
                fitted.append(replace(spec, levels=1))
        if not fitted:
            raise InputError("none of the chosen descriptors is in the descriptor file")
        return tuple(fitted)

    def file_descriptors(self, phase, dtype, device):
        """The descriptor file's values of ``phase`` as the parts of :class:`DescriptorSpec`."""
        import torch

        entry = self.characterization["phases"][phase]

        def tensor(value):
            return torch.as_tensor(np.asarray(value), dtype=dtype, device=device).flatten()

        parts = {
            "s3": [tensor(level) for level in entry["s3"]],
            "tv": [tensor([entry["tv"]])],
            "vf": [tensor([entry["volume_fraction"]])],
        }
        if "gram" in entry:
            parts["gram"] = [tensor(matrix) for matrix in entry["gram"].values()]
        return parts


def make_target(target, ndim):
    """Build a :class:`Target` for a reconstruction of dimension ``ndim`` (2 or 3).

    Parameters
    ----------
    target : array_like, dict or path
        A labeled 2D image (isotropic), a dict ``{"x": img, "y": img, "z": img}`` of three
        orthogonal slices (3D only; ``img`` normal to x is a (z, y) image, and so on), or the path
        of a descriptor file (``.npz``) written by :func:`napari_dmcr.descriptors.save_descriptors`.
    ndim : int
        2 for a 2D reconstruction, 3 for 2D-to-3D.
    """
    if isinstance(target, (str, Path)):
        return _file_target(Path(target), ndim)
    if isinstance(target, dict):
        if ndim != 3:
            raise InputError("three orthogonal target slices only make sense for a 3D reconstruction")
        missing = [axis for axis in AXIS_NAMES if axis not in target]
        if missing:
            raise InputError(f"orthogonal targets need slices for x, y and z; missing {missing}")
        images = [_check_image(target[axis], f"target slice normal to {axis}") for axis in AXIS_NAMES]
        sets = [phase_labels(image) for image in images]
        if any(labels != sets[0] for labels in sets):
            raise InputError(
                "the three slices have different labels ("
                + ", ".join(f"{axis}: {labels}" for axis, labels in zip(AXIS_NAMES, sets))
                + "); give slices of one material with the same labels"
            )
    else:
        image = _check_image(target, "target image")
        images = [image] * (3 if ndim == 3 else 1)
    labels = sorted(set().union(*(phase_labels(image) for image in distinct_images(images))))
    if len(labels) < 2:
        raise InputError(f"the target has a single label {labels}; it needs two or more phases")
    if isinstance(target, dict):
        return _orthogonal_target(images, labels)
    return Target(images=images, labels=labels)


def _orthogonal_target(images, labels):
    """Three slices of one material: warned of where their fractions disagree, and (two phases)
    moved to their mean fraction, so that each direction is matched on its shapes."""
    if len(labels) != 2:
        target = Target(images=images, labels=labels)
    else:
        label = labels[1]
        fractions = [float(np.mean(image == label)) for image in images]
        mean = float(np.mean(fractions))
        moved = common_fraction(images, label, mean)
        changed = [f"{n} {f:.4f}" for n, f, image in zip(SLICE_NAMES, fractions, moved) if np.mean(image == label) != f]
        note = f"the slices' interfaces were moved to one fraction of label {label}, {mean:.4f} ({', '.join(changed)})"
        target = Target(images=moved, labels=labels, given=images, notes=[note] if changed else [])
    checked = labels[1:] if len(labels) == 2 else labels
    target.warnings = [
        line for label in checked for line in disagreements(target.slice_intervals(label), SLICE_NAMES, label)
    ]
    return target


def _file_target(path, ndim):
    if path.suffix.lower() != ".npz":
        raise InputError(
            f"{path}: a target given as a path must be a descriptor file (.npz) from "
            "'dmcr characterize'; read images with napari_dmcr.io.readers.read_image"
        )
    characterization = load_descriptors(path)
    labels = characterization["settings"]["labels"]
    missing = [label for label in labels if label not in characterization["phases"]]
    if missing:
        raise InputError(f"{path} lacks the descriptors of phases {missing}; characterize every phase")
    # No images: one placeholder per slicing direction.
    return Target(images=[None] * (3 if ndim == 3 else 1), labels=labels, characterization=characterization)


def _check_image(image, what):
    image = np.asarray(image)
    if image.ndim == 3 and 1 in image.shape:
        image = image.squeeze()
    image = check_labels(image, ndims=(2,), what=f"the {what}")
    count = np.unique(image).size
    if count > MAX_LABELS:
        raise InputError(
            f"the {what} has {count} distinct values: it looks like a grey image, not labels. "
            "Segment it first (e.g. threshold with Otsu)"
        )
    return image.astype(np.int64)
