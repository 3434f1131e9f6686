"""Reading slices and volumes, writing volumes, descriptor files and FLAC3D grids.

Modules
-------
readers
    ``read_image`` (.npy, .tif/.tiff, .png/.jpg/.bmp, .raw, .vti -> validated label array) and
    ``validate_labels`` (the same checks for arrays, e.g. napari layers).
writers
    ``write_volume`` / ``read_volume`` (.npy, ImageJ .tif, VTK .vti) with the sidecar JSON of the
    run's parameters (``vol.npy`` -> ``vol.npy.json``, with the file's SHA-256),
    ``check_output_path`` / ``check_volume_output`` / ``make_output_folder`` (before any work),
    ``read_voxel_size``, ``read_sidecar``.
flac3d
    ``write_f3grid`` (ASCII FLAC3D grid: B8 zones, one zone group per phase, boundary face
    groups, coarsening, cylindrical specimen).
f3dat
    ``write_f3dat`` (FLAC3D triaxial-test template beside a grid).
atomic
    ``atomic_path`` / ``write_json`` / ``json_ready``: every file is written to a temporary name,
    then renamed (or linked, where an existing file must not be replaced); ``output_lock``: one
    run at a time per output.
"""
