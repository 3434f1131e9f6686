"""napari-dmcr: differentiable microstructure characterization and reconstruction."""

from napari_dmcr.threads import passive_waiting

__version__ = "0.1.0"

passive_waiting()  # before torch loads its OpenMP runtime (see napari_dmcr.threads)
