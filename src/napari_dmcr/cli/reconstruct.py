"""``dmcr reconstruct``: a 2D or 3D labeled reconstruction from one slice or three orthogonal slices.

Writes the labels (``.npy``, ``.tif`` or ``.vti``) and, beside them, a sidecar JSON
(``core.npy.json``) with every parameter, the seed, the source's path and checksum, what was done
to its values, software versions, device, timings and final descriptor errors. An existing output
is replaced only with ``--overwrite``, and a second run with the same ``--out`` fails at once.
Ctrl-C or SIGTERM cancels the run and still writes the best state reached, marked
``"cancelled": true``, to ``<name>.cancelled<suffix>``: never under the asked name, so that a
pipeline that waits for that file never takes a cancelled state for a core; the exit code is
128 + the signal (130, 143). When the
output cannot be written after the run (or a file of its name appeared meanwhile), the result goes
to a fallback folder.
"""

from __future__ import annotations

import signal
import tempfile
import time
from pathlib import Path

from napari_dmcr.cli import add_vgg19_weights_option, cancel_on_signals, preprocessing_text

METHODS = ("dmcr", "yt")


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "reconstruct",
        help="reconstruct a 2D image or 3D volume from a labeled slice",
        description="Reconstruct a labeled 2D image or 3D volume whose slices match the "
        "descriptors of a labeled 2D slice (isotropic), or of three orthogonal slices "
        "(--slices X Y Z). Without a slice, the bundled synthetic conglomerate slice (64x64) "
        "is used.",
    )
    parser.add_argument(
        "slice",
        nargs="?",
        help="labeled 2D slice (.npy, .tif, .png, ...) or a descriptor file (.npz) from 'dmcr characterize'",
    )
    parser.add_argument(
        "--slices",
        nargs=3,
        metavar=("X", "Y", "Z"),
        help="three orthogonal slices, normal to x, y and z (shapes (z, y), (z, x), (y, x))",
    )
    parser.add_argument("--out", default="reconstruction.npy", help="output volume (default: %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output and its sidecar")
    parser.add_argument(
        "--shape", type=int, nargs="+", help="output shape, 2 or 3 sizes (default: the slice side, cubed)"
    )
    parser.add_argument(
        "--method",
        choices=METHODS,
        default="dmcr",
        help="differentiable (dmcr) or Yeong-Torquato annealing (yt); default: %(default)s",
    )
    parser.add_argument(
        "--preset",
        default="auto",
        choices=("auto", "paper", "cpu"),
        help="descriptor set: paper (S3+Gram+TV), cpu (S3+TV), auto = paper on a GPU, "
        "cpu otherwise (default: %(default)s)",
    )
    parser.add_argument(
        "--weights", nargs="+", default=[], metavar="NAME=W", help="descriptor weights, e.g. s3=1 gram=0.1 tv=1"
    )
    parser.add_argument("--s3-limit", type=int, help="S3 window size (default of the preset: 6)")
    parser.add_argument("--phase", type=int, help="label to match (default: the minority phase)")
    parser.add_argument(
        "--optimizer",
        help="lbfgsb-torch (L-BFGS-B on the run's device, the default), lbfgsb (SciPy's, on the host) or adam",
    )
    parser.add_argument(
        "--start",
        choices=(
            "auto",
            "gaussian",
            "spheres",
            "deposited",
            "packed",
            "random",
        ),  # schedule.STARTS, without its imports
        default="auto",
        help="start field: a model fitted to the slice (level cut of a Gaussian field, overlapping "
        "spheres, deposited and cemented grains, or a packing of spheres for grains that touch), "
        "or noise (random); auto = of the first three, the one whose slices look most like the "
        "target, for two phases (default: %(default)s)",
    )
    parser.add_argument(
        "--max-iter",
        type=int,
        help="iterations per multigrid level (default: 30 from a fitted start, 200 from a random one)",
    )
    parser.add_argument(
        "--levels", type=int, help="multigrid levels (default: 1 from a fitted start, else down to 16 voxels)"
    )
    parser.add_argument(
        "--target-residual",
        type=float,
        help="stop a level at this weighted RMS relative error (default: 0.1 from a "
        "fitted start, 0.005 from a random one)",
    )
    parser.add_argument(
        "--time-limit",
        type=float,
        help="seconds after which the optimizer stops with its best state, 0: none (default: 60 from a "
        "fitted start, none from a random one)",
    )
    parser.add_argument("--restarts", type=int, default=0)
    parser.add_argument(
        "--sharpen",
        type=float,
        default=8.0,
        help="steepness of the final sharpening stage, two phases (0: off; default: %(default)s)",
    )
    parser.add_argument(
        "--filter-sigma", type=float, help="Gaussian filter of the field in voxels, 0: off (default: the engine's)"
    )
    parser.add_argument(
        "--match",
        choices=("volume", "slices"),
        help="match the mean slice descriptor of each direction (volume) or every slice's (default: volume)",
    )
    parser.add_argument("--direction-weights", type=float, nargs=3, default=(1.0, 1.0, 1.0), metavar=("Z", "Y", "X"))
    parser.add_argument("--max-swaps", type=int, help="Yeong-Torquato swap budget (default: 500 per voxel)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default: %(default)s)")
    parser.add_argument("--chunk-size", type=int, help="slices per forward/backward chunk")
    parser.add_argument("--voxel-size", type=float, default=1.0, help="voxel edge in model units")
    add_vgg19_weights_option(parser, without_gram="pass --preset cpu")
    parser.set_defaults(run=run)


def run(args):
    from napari_dmcr.io.atomic import output_lock
    from napari_dmcr.io.writers import check_volume_output

    # A run whose result cannot be written, or that another run is writing, does not start.
    with output_lock(args.out, check=lambda: check_volume_output(args.out, args.voxel_size, overwrite=args.overwrite)):
        return _run(args)


def _run(args):
    from tqdm import tqdm

    from napari_dmcr.progress import CancelToken, drain

    target, source = _load_target(args)
    shape = tuple(args.shape) if args.shape else (_target_side(target),) * 3
    cancel = CancelToken()
    steps = _engine(args, target, shape, cancel)
    print(
        f"reconstructing {'x'.join(map(str, shape))} from {source['description']} ({args.method}): "
        f"{steps.estimate.summary()}"
    )
    for step in source["preprocessing"]:
        print(f"  {preprocessing_text(step)}")
    started = time.perf_counter()
    with (
        cancel_on_signals(cancel) as received,
        tqdm(
            total=100,
            unit="%",
            bar_format="{l_bar}{bar}| {elapsed}<{remaining} {postfix}",
            disable=None,  # no bar when the output is not a terminal (logs, CI)
        ) as bar,
    ):

        def show(step):
            bar.n = round(100 * step.fraction_done)
            status = "cancelling" if cancel.cancelled else step.stage
            bar.set_postfix_str(f"{status} loss {step.losses.get('total', float('nan')):.3g}")
            bar.refresh()

        result = drain(steps, show)
    sidecar = _sidecar(args, result, source, shape, time.perf_counter() - started)
    out, saved = _save(Path(args.out), result, args.voxel_size, sidecar, args.overwrite)
    print(f"volume: {out}  parameters: {out.name}.json")
    for line in result.summary():
        print(line)
    if not saved:
        return 2
    return 128 + int(received[0] if received else signal.SIGINT) if result.cancelled else 0


def _save(out, result, voxel_size, sidecar, overwrite):
    """Write the result; ``(path written, whether it is where it was asked)``.

    A cancelled run goes to ``<name>.cancelled<suffix>``, never under the asked name; a write that
    fails (disk full, permissions changed during the run, or, without ``overwrite``, a file of that
    name made meanwhile) goes to a fallback folder.
    """
    from napari_dmcr.io.writers import write_volume

    if result.cancelled:
        asked, out = out, out.with_name(f"{out.stem}.cancelled{out.suffix}")
        overwrite = True  # a cancelled state replaces only an earlier cancelled state
        kept = f"{asked} is kept; " if asked.exists() else ""
        print(f"cancelled: {kept}the best state reached goes to {out}, not to {asked.name}")
    try:
        return write_volume(out, result.labels, voxel_size=voxel_size, parameters=sidecar, overwrite=overwrite), True
    except OSError as error:
        fallback = Path(tempfile.gettempdir()) / "napari-dmcr-unsaved" / out.name
        written = write_volume(fallback, result.labels, voxel_size=voxel_size, parameters=sidecar)
        reason = "made by another program during this run; it is kept" if isinstance(error, FileExistsError) else None
        print(
            f"dmcr reconstruct: error: could not write {out} ({reason or error.strerror or error}); "
            f"the result was saved to {written}"
        )
        return written, False


def _load_target(args):
    """The target and the record of its source: description, absolute paths, SHA-256 and what
    was done to its values."""
    from napari_dmcr.errors import InputError
    from napari_dmcr.io.readers import read_image
    from napari_dmcr.io.writers import read_sidecar

    if args.slices and args.slice:
        raise InputError("give either one SLICE or --slices X Y Z, not both")
    if not args.slices and not args.slice:
        from napari_dmcr.samples import LABEL_NAMES, conglomerate_slice

        return conglomerate_slice((64, 64), seed=0), {
            "description": "the bundled conglomerate slice (64x64, seed 0)",
            "files": [],
            "preprocessing": [],
            "label_names": LABEL_NAMES,
        }
    paths = args.slices or [args.slice]
    named = [read_sidecar(path).get("label_names") for path in paths]
    record = {
        "label_names": next((names for names in named if names), None),
        "description": ("slices " + ", ".join(paths))
        if args.slices
        else (f"the descriptor file {args.slice}" if args.slice.lower().endswith(".npz") else args.slice),
        "files": [_file_record(path) for path in paths],
        "preprocessing": [],
    }
    if args.slice and args.slice.lower().endswith(".npz"):
        return args.slice, record
    images = {}
    for axis, path in zip("xyz" if args.slices else "-", paths):
        steps = []
        images[axis] = read_image(path, ndim=2, steps=steps)
        record["preprocessing"] += [{**step, "source": path} for step in steps]
    return (images if args.slices else images["-"]), record


def _file_record(path):
    from napari_dmcr.errors import InputError
    from napari_dmcr.io.writers import file_sha256

    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give an image file (.npy, .tif, .png, ...)")
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    return {"path": str(path.resolve()), "sha256": file_sha256(path)}


def _target_side(target):
    """The smaller side of the (first) target slice: the default cube side."""
    if isinstance(target, str):
        from napari_dmcr.descriptors import load_descriptors

        return min(load_descriptors(target)["settings"]["shape"])
    return min((target["z"] if isinstance(target, dict) else target).shape)


def _engine(args, target, shape, cancel):
    if args.method == "yt":
        from napari_dmcr.baselines.yeong_torquato import yeong_torquato
        from napari_dmcr.errors import InputError

        if isinstance(target, str):
            raise InputError("Yeong-Torquato matches S2 profiles of images: give the slice, not a descriptor file")
        return yeong_torquato(
            target, shape, phase=args.phase, seed=args.seed, max_swaps=args.max_swaps, cancel=cancel, preview=False
        )
    from napari_dmcr.reconstruction import reconstruct

    given = {
        name: value
        for name, value in (("filter_sigma", args.filter_sigma), ("match", args.match), ("optimizer", args.optimizer))
        if value is not None
    }
    return reconstruct(
        target,
        shape,
        **given,
        descriptors=_descriptors(args),
        phase=args.phase,
        direction_weights=tuple(args.direction_weights),
        max_iter=args.max_iter,
        multigrid_levels=args.levels,
        start=args.start,
        target_residual=args.target_residual,
        time_limit_s=args.time_limit,
        restarts=args.restarts,
        sharpen=args.sharpen,
        seed=args.seed,
        device=args.device,
        chunk_size=args.chunk_size,
        preview_interval_s=0.5,
        cancel=cancel,
    )


def _descriptors(args):
    """The preset with the weight and S3-window overrides of the command line."""
    from dataclasses import replace

    from napari_dmcr.descriptors import DescriptorSpec, preset
    from napari_dmcr.errors import InputError
    from napari_dmcr.reconstruction import resolve_device

    specs = {spec.name: spec for spec in preset(args.preset, resolve_device(args.device))}
    for item in args.weights:
        name, _, value = item.partition("=")
        try:
            weight = float(value)
        except ValueError:
            raise InputError(f"--weights takes NAME=WEIGHT pairs such as s3=1 tv=1, got {item!r}") from None
        specs[name] = replace(specs[name], weight=weight) if name in specs else DescriptorSpec(name, weight)
    if args.s3_limit is not None and "s3" in specs:
        specs["s3"] = replace(specs["s3"], limit_to=args.s3_limit)
    return tuple(specs.values())


def _sidecar(args, result, source, shape, wall_s):
    import platform

    import torch

    from napari_dmcr import __version__

    return {
        "command": "dmcr reconstruct",
        "source": source,
        "shape": list(shape),
        "seed": args.seed,
        "wall_s": wall_s,
        "versions": {"napari_dmcr": __version__, "torch": torch.__version__, "python": platform.python_version()},
        **({"label_names": source["label_names"]} if source.get("label_names") else {}),
        **result.record(),
    }
