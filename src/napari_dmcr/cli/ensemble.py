"""``dmcr ensemble SLICE [SLICE ...] --realizations N --shape Z Y X --out DIR``: many seeds on Dask."""

from __future__ import annotations

from pathlib import Path

from napari_dmcr.cli import add_moduli_options, moduli_settings


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "ensemble",
        help="reconstruct many seeds (and slices) as Dask tasks; the spread of their measures",
        description="Reconstruct N seeds of each labeled 2D slice on a Dask cluster (a local one "
        "by default), write every core and its record (unfitted 3D measures, transport and "
        "elastic properties) as its task ends, and summarize the mean and spread in DIR/"
        "ensemble.json and DIR/ensemble.png. A rerun skips finished realizations.",
    )
    add = parser.add_argument
    add("slices", nargs="+", metavar="SLICE", help="labeled 2D slices (.npy, .tif, .png, ...)")
    add("--realizations", type=int, default=4, help="seeds per slice (default: %(default)s)")
    add("--shape", type=int, nargs=3, required=True, metavar=("Z", "Y", "X"), help="output shape")
    add("--out", required=True, help="output folder (created if missing; finished realizations are kept)")
    add("--method", choices=("dmcr", "yt"), default="dmcr", help="engine (default: %(default)s)")
    add("--seed", type=int, default=0, help="first seed (default: %(default)s)")
    add("--phase", type=int, help="label to match (default: the minority phase)")
    add("--descriptors", help="dmcr preset (auto, cpu, paper, ...; default: the engine's)")
    add("--device", default="auto", help="torch device on each worker: auto, cpu or cuda (default: %(default)s)")
    add("--scheduler", help="address of an existing Dask scheduler (default: a local cluster)")
    add("--workers", type=int, help="workers of the local cluster (default: the cores)")
    add("--no-properties", action="store_true", help="skip the transport and elastic properties")
    add("--no-elastic", action="store_true", help="transport properties only")
    add_moduli_options(parser)
    parser.set_defaults(run=run)


def run(args):
    import matplotlib

    matplotlib.use("Agg")
    from napari_dmcr.ensembles import SUMMARY, run_ensemble
    from napari_dmcr.io.atomic import atomic_path
    from napari_dmcr.io.readers import read_image
    from napari_dmcr.plotting.ensemble import ensemble_figure

    targets = [read_image(path, ndim=2) for path in args.slices]
    options = {"phase": args.phase}
    if args.method == "dmcr":
        options.update(device=args.device)
        if args.descriptors:
            options["descriptors"] = args.descriptors
    properties = None
    if not args.no_properties:
        properties = {**moduli_settings(args), "device": args.device}
        properties["elastic"] = not args.no_elastic

    def report(name, record, written):
        done = f"written ({record.get('seconds', 0.0):.1f} s)" if written else "finished before, kept"
        print(f"{name}: {done}", flush=True)

    def start(total):
        print(
            f"ensemble: {total} realizations of {'x'.join(map(str, args.shape))} ({args.method}) -> {args.out}",
            flush=True,
        )

    summary = run_ensemble(
        targets,
        tuple(args.shape),
        args.out,
        realizations=args.realizations,
        seed=args.seed,
        method=args.method,
        options=options,
        properties=properties,
        scheduler=args.scheduler,
        workers=args.workers,
        on_result=report,
        on_start=start,
    )
    png = Path(args.out) / "ensemble.png"
    with atomic_path(png) as tmp:
        ensemble_figure(summary).savefig(tmp, dpi=100, format="png")
    if summary["skipped"]:
        print(f"skipped (already finished): {len(summary['skipped'])}")
    for key in (
        "measures.fraction",
        "measures.largest_cluster",
        "properties.diffusivity_z",
        "properties.young_modulus_z",
    ):
        if key in summary["statistics"]:
            entry = summary["statistics"][key]
            print(f"{key}: {entry['mean']:.4g} +- {entry['sd']:.2g}")
    print(f"summary: {Path(args.out) / SUMMARY}, plot: {png}")
