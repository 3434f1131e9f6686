"""``dmcr sample``: write the bundled synthetic conglomerate (a 2D slice and its 3D truth) to files."""

from __future__ import annotations

from pathlib import Path


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "sample",
        help="write the bundled synthetic conglomerate slice and its 3D truth",
        description="Write the procedurally generated conglomerate (label 1 = matrix, 0 = gravel) as "
        "OUT/slice.npy (the middle z slice), OUT/x.npy, y.npy, z.npy (the middle slices normal to x, y "
        "and z, for --slices) and OUT/truth.npy (the whole volume).",
    )
    parser.add_argument("--out", default="sample", help="output folder (default: %(default)s)")
    parser.add_argument("--size", type=int, default=64, help="side of the cube in voxels (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(run=run)


def run(args):
    from napari_dmcr.io.writers import write_volume
    from napari_dmcr.samples import conglomerate_volume

    volume = conglomerate_volume((args.size,) * 3, seed=args.seed)
    out = Path(args.out)
    parameters = {
        "command": "dmcr sample",
        "size": args.size,
        "seed": args.seed,
        "labels": {"0": "gravel", "1": "matrix"},
    }
    truth = write_volume(out / "truth.npy", volume, parameters={**parameters, "content": "3D truth"})
    middle = args.size // 2
    slice_path = write_volume(
        out / "slice.npy", volume[middle], parameters={**parameters, "content": f"z slice {middle} of the truth"}
    )
    for axis, image in (("x", volume[:, :, middle]), ("y", volume[:, middle]), ("z", volume[middle])):
        write_volume(
            out / f"{axis}.npy", image, parameters={**parameters, "content": f"{axis} slice {middle} of the truth"}
        )
    print(f"slice: {slice_path} ({(volume[middle] == 1).mean():.3f} matrix)  truth: {truth}")
