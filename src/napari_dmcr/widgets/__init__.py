"""napari dock widgets, writer and reader: they pass layers to the library and show its results."""
