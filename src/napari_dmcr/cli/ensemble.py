"""``dmcr ensemble SLICE [SLICE ...] --realizations N --shape Z Y X --out DIR``: many seeds on Dask."""

from __future__ import annotations

import sys
from pathlib import Path

from napari_dmcr.cli import add_moduli_options, cancel_on_signals, moduli_settings


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
    from napari_dmcr.cli import read_slices
    from napari_dmcr.ensembles import run_ensemble
    from napari_dmcr.ensembles.run import SUMMARY
    from napari_dmcr.io.atomic import output_lock
    from napari_dmcr.io.writers import make_output_folder
    from napari_dmcr.progress import Cancelled, CancelToken

    targets = read_slices(args.slices)
    counts = {"finished": 0, "total": 0}

    def report(name, record, written):
        counts["finished"] += 1
        done = f"written ({record.get('seconds', 0.0):.1f} s)" if written else "finished before, kept"
        print(f"{name}: {done}", flush=True)

    def start(total, estimate):
        counts["total"] = total
        print(
            f"ensemble: {total} realizations of {'x'.join(map(str, args.shape))} ({args.method}) -> {args.out}; "
            + estimate.summary(),
            flush=True,
        )

    cancel = CancelToken()
    make_output_folder(args.out)  # a file or an unwritable place is refused before the lock is made there
    try:
        with output_lock(Path(args.out) / SUMMARY), cancel_on_signals(cancel) as received:
            summary = run_ensemble(
                targets,
                tuple(args.shape),
                args.out,
                **_settings(args),
                on_result=report,
                on_start=start,
                cancel=cancel,
            )
    except Cancelled:
        print(
            f"dmcr ensemble: stopped; {counts['finished']} of {counts['total']} realizations are finished and "
            f"kept in {args.out} (a rerun makes only the missing ones)",
            file=sys.stderr,
        )
        return 128 + received[0]
    _print_summary(args, summary)


def _settings(args):
    """The keyword arguments of :func:`~napari_dmcr.ensembles.run_ensemble` from the options."""
    options = {"phase": args.phase}
    if args.method == "dmcr":
        options.update(device=args.device)
        if args.descriptors:
            options["descriptors"] = args.descriptors
    properties = None
    if not args.no_properties:
        properties = {**moduli_settings(args, args.slices[0]), "device": args.device}
        properties["elastic"] = not args.no_elastic
    return {
        "realizations": args.realizations,
        "seed": args.seed,
        "method": args.method,
        "options": options,
        "properties": properties,
        "scheduler": args.scheduler,
        "workers": args.workers,
    }


def _print_summary(args, summary):
    """Write the plot of the spread; print the main statistics."""
    import matplotlib

    matplotlib.use("Agg")
    from napari_dmcr.ensembles import SUMMARY
    from napari_dmcr.io.atomic import atomic_path
    from napari_dmcr.plotting.ensemble import ensemble_figure

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
