"""What a core does: transport and elastic properties per axis, on the run's torch device.

* :func:`volume_properties`: tortuosity factor, effective diffusivity and percolation of a phase
  along z, y and x, and the effective stiffness with Young's moduli and Poisson ratios;
* :func:`~napari_dmcr.properties.transport.diffusion`: one axis's steady diffusion solve;
* :func:`~napari_dmcr.properties.elasticity.elastic_properties`: FFT-based homogenization;
* :data:`~napari_dmcr.properties.materials.MATERIALS`: phase moduli to start from, with sources.
"""

from napari_dmcr.properties.elasticity import elastic_properties
from napari_dmcr.properties.materials import MATERIALS
from napari_dmcr.properties.summary import AXES, compare_properties, relative_differences, volume_properties
from napari_dmcr.properties.transport import diffusion

__all__ = [
    "AXES",
    "MATERIALS",
    "compare_properties",
    "diffusion",
    "elastic_properties",
    "relative_differences",
    "volume_properties",
]
