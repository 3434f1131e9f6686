"""napari-dmcr: differentiable microstructure characterization and reconstruction."""

__version__ = "0.1.0"
