"""``dmcr sample``: write the bundled synthetic conglomerate (a 2D slice and its 3D truth) to files."""

from __future__ import annotations

from pathlib import Path


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "sample",
        help="write the bundled synthetic conglomerate slice and its 3D truth",
        description="Write the procedurally generated conglomerate (label 1 = matrix, 0 = gravel) as "
        "OUT/truth.npy (the whole volume), OUT/slice.npy (a z slice) and OUT/x.npy, y.npy, z.npy "
        "(slices normal to x, y and z, for --slices). Each slice is the one along its axis whose "
        "matrix fraction is closest to the truth's; its index is printed and kept in its .json.",
    )
    parser.add_argument("--out", default="sample", help="output folder (default: %(default)s)")
    parser.add_argument("--size", type=int, default=64, help="side of the cube in voxels (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(run=run)


def run(args):
    from napari_dmcr.io.writers import write_volume
    from napari_dmcr.samples import LABEL_NAMES, MATRIX, conglomerate_volume, representative_index

    volume = conglomerate_volume((args.size,) * 3, seed=args.seed)
    out = Path(args.out)
    parameters = {
        "command": "dmcr sample",
        "size": args.size,
        "seed": args.seed,
        "label_names": LABEL_NAMES,
    }
    truth = write_volume(out / "truth.npy", volume, parameters={**parameters, "content": "3D truth"})
    print(f"truth: {truth} ({(volume == MATRIX).mean():.3f} matrix)")
    for axis, name in enumerate("zyx"):
        index = representative_index(volume, axis)
        image = volume.take(index, axis=axis)
        record = {
            **parameters,
            "content": f"{name} slice {index} of the truth (its matrix fraction closest to the truth's)",
            "axis": name,
            "index": index,
        }
        names = ("slice.npy", "z.npy") if name == "z" else (f"{name}.npy",)
        paths = [write_volume(out / file, image, parameters=record) for file in names]
        print(f"{name} slice {index}: {', '.join(map(str, paths))} ({(image == MATRIX).mean():.3f} matrix)")
