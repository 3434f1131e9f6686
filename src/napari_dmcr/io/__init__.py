"""Reading slices and volumes, writing volumes, descriptor files and FLAC3D grids."""
