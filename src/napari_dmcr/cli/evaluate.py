"""``dmcr evaluate --original SLICE --recon VOLUME [--truth VOLUME]``: fidelity figures, report."""

from __future__ import annotations

import functools
from pathlib import Path

from napari_dmcr.cli import (
    add_moduli_options,
    add_threshold_option,
    add_vgg19_weights_option,
    moduli_settings,
    read_labels,
)


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "evaluate",
        help="compare a reconstruction with its original slice (and a true volume)",
        description="Compare a labeled reconstruction with the labeled 2D slice it was made from: "
        "phase fractions, S2 per direction, the gaps of the fitted descriptors, and measures that "
        "were not fitted (lineal path, chord lengths, clusters, Euler characteristic, interface "
        "density, local thickness); with --truth, also against a true 3D volume. Writes every "
        "figure to a JSON file and one PNG report per phase.",
    )
    add = parser.add_argument
    add("--original", required=True, help="labeled 2D slice (.npy, .tif, .png, ...)")
    add("--recon", required=True, help="labeled reconstruction (3D volume or 2D image)")
    add("--truth", help="labeled true 3D volume to compare with in 3D")
    add("--out", default="evaluation.json", help="output JSON (default: %(default)s)")
    add("--overwrite", action="store_true", help="replace an existing output file")
    add("--phases", type=int, nargs="+", help="labels to evaluate (default: all)")
    add("--max-lag", type=int, help="largest lag (default: a quarter of the smallest side)")
    add("--s3-limit-to", type=int, default=6, help="S3 window (default: %(default)s)")
    add("--gram", action="store_true", help="also compare VGG-19 Gram matrices (needs weights)")
    add_vgg19_weights_option(parser, without_gram="leave out --gram")
    add("--periodic", action="store_true", help="measure the reconstruction with wrap-around")
    add(
        "--connectivity",
        type=int,
        default=1,
        help="cluster neighbourhood, 1 or the dimension (default: %(default)s)",
    )
    add("--properties", action="store_true", help="also diffusivity, tortuosity and stiffness per axis (3D)")
    add("--properties-phase", type=int, help="conducting label of --properties (default: the minority label)")
    add_moduli_options(parser, "--properties")
    add_threshold_option(parser)
    parser.set_defaults(run=run)


def run(args):
    from napari_dmcr.io.atomic import output_lock
    from napari_dmcr.io.writers import check_output_path

    with output_lock(args.out, check=functools.partial(check_output_path, args.out, overwrite=args.overwrite)):
        _run(args)


def _run(args):
    import matplotlib

    matplotlib.use("Agg")
    from napari_dmcr.evaluation import evaluate
    from napari_dmcr.io.atomic import atomic_path, write_json
    from napari_dmcr.plotting.evaluation import draw_report

    original = read_labels(args.original, args, ndim=2)
    reconstruction = read_labels(args.recon, args)
    truth = None if args.truth is None else read_labels(args.truth, args, ndim=3)
    results = evaluate(
        original,
        reconstruction,
        truth,
        phases=args.phases,
        max_lag=args.max_lag,
        s3_limit_to=args.s3_limit_to,
        gram=args.gram,
        periodic=args.periodic,
        connectivity=args.connectivity,
        properties=_properties(args),
    )
    out = Path(args.out)
    write_json(out, results)
    print(f"evaluation: {out}")
    for phase, errors in results["errors"].items():
        png = out.with_name(f"{out.stem}_phase{phase}.png")
        with atomic_path(png) as tmp:
            report = draw_report(results, phase=phase, original=original, reconstruction=reconstruction, truth=truth)
            report.savefig(tmp, dpi=100, format="png")
        s2 = max(errors["s2_rms_radial"].values())
        s3 = max(errors["E_s3"].values())
        fraction = results["fractions"]["absolute_error"][phase]
        print(f"phase {phase}: fraction error {fraction:.4f}, S2 RMS error <= {s2:.4f}, E_S3 <= {s3:.3f}, report {png}")
    if "properties" in results:
        _print_properties(results["properties"])


def _properties(args):
    if not args.properties:
        return None
    return {"phase": args.properties_phase, **moduli_settings(args, args.recon), "device": "cpu"}


def _print_properties(compared):
    for source, values in compared.items():
        if source == "differences":
            continue
        for key in ("diffusivity", "tortuosity", "young_modulus"):
            shown = ", ".join("none" if v is None else f"{v:.4g}" for v in values[key])
            print(f"{source} {key} (z, y, x): {shown}")
    for key, values in compared.get("differences", {}).items():
        shown = ", ".join("n/a" if v is None else f"{v:+.1%}" for v in values)
        print(f"relative difference to the truth, {key} (z, y, x): {shown}")
