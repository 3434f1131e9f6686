"""``dmcr characterize IMAGE``: descriptors to an .npz file and PNG plots."""

from __future__ import annotations

import functools
from pathlib import Path

from napari_dmcr.cli import add_vgg19_weights_option


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "characterize",
        help="compute the descriptors of a labeled 2D image",
        description="Compute S2, S3, Gram matrices and total variation of every phase of a "
        "labeled 2D image; write them to an .npz file and one PNG plot per phase. "
        "Without IMAGE, the bundled synthetic conglomerate slice is used.",
    )
    parser.add_argument("image", nargs="?", help="labeled 2D image (.npy, .tif, .png, ...)")
    parser.add_argument("--out", default="descriptors.npz", help="output .npz (default: %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    parser.add_argument("--phases", type=int, nargs="+", help="labels to characterize (default: all)")
    parser.add_argument("--s2-max-lag", type=int, help="largest S2 lag (default: a quarter of the side)")
    parser.add_argument("--s3-limit-to", type=int, default=6, help="S3 window (default: %(default)s)")
    parser.add_argument("--s3-levels", type=int, default=2, help="S3 multigrid levels (default: %(default)s)")
    parser.add_argument("--no-gram", action="store_true", help="skip the VGG-19 Gram matrices")
    parser.add_argument("--periodic", action="store_true", help="treat the image as periodic")
    add_vgg19_weights_option(parser, without_gram="pass --no-gram")
    parser.set_defaults(run=run)


def run(args):
    from napari_dmcr.io.atomic import output_lock
    from napari_dmcr.io.writers import check_output_path

    with output_lock(args.out, check=functools.partial(check_output_path, args.out, overwrite=args.overwrite)):
        _run(args)


def _run(args):
    import matplotlib

    matplotlib.use("Agg")
    from napari_dmcr.descriptors import characterize, save_descriptors
    from napari_dmcr.descriptors.representativity import interval
    from napari_dmcr.io.atomic import atomic_path
    from napari_dmcr.plotting.descriptors import characterization_figure

    image = _load_image(args.image)
    result = characterize(
        image,
        phases=args.phases,
        s2_max_lag=args.s2_max_lag,
        s3_limit_to=args.s3_limit_to,
        s3_levels=args.s3_levels,
        gram=not args.no_gram,
        periodic=args.periodic,
    )
    out = Path(args.out)
    save_descriptors(out, result)
    print(f"descriptors: {out}")
    for phase, entry in result["phases"].items():
        png = out.with_name(f"{out.stem}_phase{phase}.png")
        with atomic_path(png) as tmp:
            characterization_figure(result, phase).savefig(tmp, dpi=100, format="png")
        fraction = interval(entry["volume_fraction"], entry["volume_fraction_sd"])
        print(
            f"phase {phase}: volume fraction {fraction['fraction']:.4f} (95 % interval for the material "
            f"{fraction['low']:.4f}-{fraction['high']:.4f}), TV {entry['tv']:.4f}, plot {png}"
        )


def _load_image(path):
    if path is None:
        from napari_dmcr.samples import conglomerate_slice

        return conglomerate_slice((128, 128), seed=0)
    from napari_dmcr.cli import read_slices

    return read_slices([path])[0]
