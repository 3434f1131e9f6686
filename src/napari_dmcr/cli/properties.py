"""``dmcr properties VOLUME``: tortuosity, diffusivity and elastic moduli per axis to a JSON file."""

from __future__ import annotations

import functools
from pathlib import Path

from napari_dmcr.cli import add_moduli_options, add_threshold_option, moduli_settings, read_labels


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "properties",
        help="effective diffusivity, tortuosity and stiffness of a labeled 3D volume",
        description="Solve steady diffusion through one phase along z, y and x (fixed "
        "concentrations on two opposite faces) and the effective elastic stiffness of the "
        "volume as a periodic cell (FFT-based homogenization); write them to a JSON file. "
        "Moduli are given per label, in label order (GPa by default).",
    )
    add = parser.add_argument
    add("volume", help="labeled 3D volume (.npy, .tif, .vti, .raw with --raw-shape)")
    add("--phase", type=int, help="conducting label, e.g. the pores (default: the minority label)")
    add_moduli_options(parser)
    add("--no-elastic", action="store_true", help="transport only (skip the stiffness solve)")
    add("--device", default="cpu", help="cpu, cuda or auto (default: %(default)s)")
    add("--out", default="properties.json", help="output JSON (default: %(default)s)")
    add("--overwrite", action="store_true", help="replace an existing output file")
    add_threshold_option(parser)
    parser.set_defaults(run=run)


def run(args):
    from napari_dmcr.io.atomic import output_lock
    from napari_dmcr.io.writers import check_output_path

    with output_lock(args.out, check=functools.partial(check_output_path, args.out, overwrite=args.overwrite)):
        _run(args)


def _run(args):
    from napari_dmcr.io.atomic import write_json
    from napari_dmcr.properties import volume_properties

    volume = read_labels(args.volume, args, ndim=3)
    result = volume_properties(
        volume,
        args.phase,
        **moduli_settings(args, args.volume),
        device=args.device,
        elastic=not args.no_elastic,
    )
    result["parameters"]["volume"] = str(args.volume)
    write_json(Path(args.out), result)
    print(f"properties: {args.out}")
    for axis, name in enumerate(result["axes"]):
        tau = result["tortuosity"][axis]
        line = f"{name}: diffusivity {result['diffusivity'][axis]:.4f}, tortuosity "
        line += "none (does not percolate)" if tau is None else f"{tau:.3f}"
        if "young_modulus" in result:
            line += f", Young's modulus {result['young_modulus'][axis]:.3g} {result['parameters']['unit']}"
        print(line)
    for note in result["notes"]:
        print(f"note: {note}")
