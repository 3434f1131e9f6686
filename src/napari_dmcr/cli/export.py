"""``dmcr export VOLUME``: write a labeled volume as .npy, .tif, .vti or a FLAC3D grid + .f3dat."""

from __future__ import annotations

from pathlib import Path

from napari_dmcr.cli import add_threshold_option, read_labels

FORMATS = {"npy": ".npy", "tif": ".tif", "vti": ".vti", "f3grid": ".f3grid"}


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "export",
        help="write a labeled volume as .npy, .tif, .vti or a FLAC3D grid",
        description="Convert a labeled 3D volume (.npy, .tif, .vti, .raw) to another format, "
        "or to a FLAC3D grid (.f3grid: one zone group per phase, face groups for the platens and "
        "the lateral boundary) with a triaxial-test command file (.f3dat) beside it. The "
        "parameters in the volume's sidecar JSON (vol.npy -> vol.npy.json) are carried over to the "
        "output's own sidecar (vol.f3grid -> vol.f3grid.json), with the export settings added.",
    )
    parser.add_argument("volume", help="labeled 3D volume (.npy, .tif, .vti, or .raw with --raw-shape/--raw-dtype)")
    parser.add_argument("--format", choices=sorted(FORMATS), help="output format (default: from --out)")
    parser.add_argument("--out", help="output file (default: VOLUME with the format's suffix)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files and sidecars")
    parser.add_argument(
        "--voxel-size",
        type=float,
        help="voxel edge in model units, e.g. metres (default: from the volume's metadata or sidecar, else 1)",
    )
    parser.add_argument("--raw-shape", type=int, nargs=3, metavar=("Z", "Y", "X"), help="shape of a .raw volume")
    parser.add_argument("--raw-dtype", help="data type of a .raw volume, e.g. uint8")
    add_threshold_option(parser)
    flac = parser.add_argument_group("FLAC3D (--format f3grid)")
    flac.add_argument(
        "--group-names",
        nargs="+",
        metavar="NAME",
        help="zone group name of label 0, 1, ... (default: gravel matrix)",
    )
    flac.add_argument("--origin", type=float, nargs=3, default=(0.0, 0.0, 0.0), metavar=("X", "Y", "Z"))
    flac.add_argument("--coarsen", type=int, default=1, help="merge k^3 voxels per zone by majority (default: 1)")
    flac.add_argument(
        "--cylinder",
        type=float,
        nargs="*",
        metavar="SIZE",
        help="carve a vertical cylinder: no value for the largest one, or DIAMETER HEIGHT in model units",
    )
    flac.add_argument("--no-face-groups", action="store_true", help="do not write the boundary face groups")
    flac.add_argument("--no-f3dat", action="store_true", help="do not write the triaxial .f3dat template")
    flac.add_argument(
        "--confining-pressures",
        type=float,
        nargs="+",
        default=[0.1, 0.2, 0.3, 0.4],
        metavar="MPA",
        help="confining pressures of the .f3dat runs in MPa (default: %(default)s)",
    )
    parser.set_defaults(run=run)


def run(args):
    from napari_dmcr.io.atomic import output_lock

    source = Path(args.volume)
    out, fmt = _output(args, source)
    cylinder = _check_flac_options(args) if fmt == "f3grid" else False
    with output_lock(out, check=lambda: _check_free(args, out, fmt)):
        labels = read_labels(source, args, ndim=3, raw_shape=args.raw_shape, raw_dtype=args.raw_dtype)
        voxel_size = _voxel_size(args, source)
        if fmt == "f3grid":
            _export_flac3d(args, source, out, labels, voxel_size, cylinder)
        else:
            _export_volume(args, source, out, fmt, labels, voxel_size)
    return 0


def _check_free(args, out, fmt):
    """The outputs may be written: new, or replaced with --overwrite."""
    from napari_dmcr.io.writers import check_output_path

    check_output_path(out, overwrite=args.overwrite)
    if fmt == "f3grid" and not args.no_f3dat:
        check_output_path(out.with_suffix(".f3dat"), overwrite=args.overwrite)


def _output(args, source):
    """The output file and format, checked before any work (with the voxel size, when given)."""
    from napari_dmcr.checks import positive_number
    from napari_dmcr.errors import InputError

    out = Path(args.out) if args.out else None
    fmt = args.format
    if fmt is None:
        if out is None:
            raise InputError("give --format (npy, tif, vti, f3grid) or an --out file with one of these suffixes")
        fmt = {suffix: name for name, suffix in FORMATS.items()}.get(out.suffix.lower())
        if out.suffix.lower() == ".tiff":
            fmt = "tif"
        if fmt is None:
            raise InputError(f"{out}: unknown output suffix; use one of {', '.join(FORMATS.values())}")
    if out is None:
        out = source.with_suffix(FORMATS[fmt])
    if out.resolve() == source.resolve():
        raise InputError(f"{out} is the input file; choose another --out")
    if args.voxel_size is not None:
        positive_number("--voxel-size", args.voxel_size)
    return out, fmt


def _check_flac_options(args):
    """Check the FLAC3D options that need no volume before any work; the ``cylinder`` setting."""
    from napari_dmcr.errors import InputError
    from napari_dmcr.io.f3dat import check_confining_pressures

    if args.no_face_groups and not args.no_f3dat:
        raise InputError("the .f3dat template needs the face groups; drop --no-face-groups or add --no-f3dat")
    if not args.no_f3dat:
        check_confining_pressures(args.confining_pressures)
    if args.cylinder is None:
        return False
    if len(args.cylinder) not in (0, 2):
        raise InputError("--cylinder takes no value (largest cylinder) or two: DIAMETER HEIGHT")
    return tuple(args.cylinder) if args.cylinder else True


def _voxel_size(args, source):
    """``--voxel-size``, else the source's (metadata or sidecar), else 1."""
    from napari_dmcr.io.writers import read_voxel_size

    voxel_size = args.voxel_size
    if voxel_size is None and source.suffix.lower() != ".raw":
        voxel_size = read_voxel_size(source)
    return 1.0 if voxel_size is None else voxel_size


def _export_volume(args, source, out, fmt, labels, voxel_size):
    from napari_dmcr.io.writers import write_volume

    record = _sidecar_data(source, fmt, voxel_size, {"source": str(source.resolve())})
    write_volume(out, labels, voxel_size=voxel_size, parameters=record, overwrite=args.overwrite)
    print(f"{fmt}: {out} ({' x '.join(map(str, labels.shape))} voxels of {voxel_size:g})")


def _export_flac3d(args, source, out, labels, voxel_size, cylinder):
    import numpy as np

    from napari_dmcr.io.atomic import write_json
    from napari_dmcr.io.f3dat import write_f3dat
    from napari_dmcr.io.flac3d import group_names_for, write_f3grid
    from napari_dmcr.io.writers import file_sha256, sidecar_path

    names = group_names_for(np.unique(labels), args.group_names)
    counts = write_f3grid(
        out,
        labels,
        voxel_size=voxel_size,
        origin=args.origin,
        group_names=names,
        coarsen=args.coarsen,
        cylinder=cylinder,
        face_groups=not args.no_face_groups,
    )
    settings = {
        "source": str(source.resolve()),
        "origin": list(args.origin),
        "coarsen": args.coarsen,
        "cylinder": cylinder,
        "group_names": {str(label): name for label, name in names.items()},
        "flac3d": counts,
    }
    print(
        f"f3grid: {out} ({counts['zones']} zones, {counts['gridpoints']} gridpoints; "
        + ", ".join(f"{name} {n}" for name, n in counts["groups"].items())
        + ")"
    )
    if not args.no_f3dat:
        f3dat = write_f3dat(
            out.with_suffix(".f3dat"),
            out,
            group_names=[name for name, n in counts["groups"].items() if n],
            confining_pressures_mpa=args.confining_pressures,
        )
        settings["f3dat"] = str(f3dat)
        print(f"f3dat: {f3dat} (template: edit the properties at the top, then run it in FLAC3D)")
    write_json(
        sidecar_path(out),
        {**_sidecar_data(source, fmt="f3grid", voxel_size=voxel_size, settings=settings), "sha256": file_sha256(out)},
    )


def _sidecar_data(source, fmt, voxel_size, settings):
    """The output's record: the source's parameters (from its sidecar) with the export settings
    added under ``export[fmt]``."""
    from napari_dmcr.io.writers import read_sidecar

    parameters = {key: value for key, value in read_sidecar(source).items() if key not in ("sha256", "format")}
    exports = parameters.get("export")
    exports = dict(exports) if isinstance(exports, dict) else {}
    exports[fmt] = settings
    return {**parameters, "voxel_size": voxel_size, "export": exports, "format": fmt}
