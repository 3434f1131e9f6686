"""Differentiable microstructure descriptors (torch), exact on binary images.

Every function takes a 2D field ``(h, w)`` or a stack of slices ``(n, h, w)`` with values in
[0, 1]; NumPy input gives NumPy output, torch input gives differentiable torch output.
"""

from napari_dmcr.descriptors.characterize import characterize, load_descriptors, save_descriptors
from napari_dmcr.descriptors.descriptor_set import (
    PRESETS,
    DescriptorSpec,
    descriptor_targets,
    mcrpy_equivalent_weights,
    normalized_errors,
    preset,
)
from napari_dmcr.descriptors.fields import indicator, volume_slices
from napari_dmcr.descriptors.gram import GRAM_LAYERS, VGG19Features, gram_matrices
from napari_dmcr.descriptors.multigrid import pooled
from napari_dmcr.descriptors.three_point import displacement_vectors, s3
from napari_dmcr.descriptors.total_variation import total_variation
from napari_dmcr.descriptors.two_point import s2_axis_profiles, s2_map, s2_radial, volume_fraction
from napari_dmcr.descriptors.vgg19_weights import load_vgg19_weights
from napari_dmcr.labels import phase_labels

__all__ = [
    "GRAM_LAYERS",
    "PRESETS",
    "DescriptorSpec",
    "VGG19Features",
    "characterize",
    "descriptor_targets",
    "displacement_vectors",
    "gram_matrices",
    "indicator",
    "load_descriptors",
    "load_vgg19_weights",
    "mcrpy_equivalent_weights",
    "normalized_errors",
    "phase_labels",
    "pooled",
    "preset",
    "s2_axis_profiles",
    "s2_map",
    "s2_radial",
    "s3",
    "save_descriptors",
    "total_variation",
    "volume_fraction",
    "volume_slices",
]
