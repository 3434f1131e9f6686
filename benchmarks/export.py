"""Time and peak memory of the volume exports for 64^3, 128^3 and 256^3 volumes.

Each size is a seeded random two-phase volume (37 % matrix, label 1, as in the project's CT
target; the content hardly matters for the cost of writing). Exports measured:

* ``f3grid``: the whole block as B8 zones, with the gravel/matrix zone groups and the
  bottom/top/lateral face groups (``write_f3grid`` defaults);
* ``f3grid_cylinder``: the largest vertical cylinder carved from the block (``cylinder=True``);
* ``f3grid_coarsen2``: 2^3 voxels per zone by majority vote;
* ``npy``, ``tif`` (ImageJ stack) and ``vti`` (VTK image data) via ``write_volume``.

Peak memory is measured with ``tracemalloc`` (Python and NumPy allocations made during the
export, the input volume excluded since it exists before); it shows that the FLAC3D writer
streams, its memory staying far below the size of the file it writes. Seconds are wall time on
this machine. Files go to a temporary folder and are deleted after each measure.

Usage: ``python benchmarks/export.py [--sizes 64 128 256] [--out benchmarks/results/export.json]``
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from napari_dmcr.io.atomic import write_json
from napari_dmcr.io.flac3d import write_f3grid
from napari_dmcr.io.writers import write_volume

EXPORTS = {
    "f3grid": (".f3grid", lambda path, labels: write_f3grid(path, labels, voxel_size=1e-4)),
    "f3grid_cylinder": (
        ".f3grid",
        lambda path, labels: write_f3grid(path, labels, voxel_size=1e-4, cylinder=True),
    ),
    "f3grid_coarsen2": (
        ".f3grid",
        lambda path, labels: write_f3grid(path, labels, voxel_size=1e-4, coarsen=2),
    ),
    "npy": (".npy", lambda path, labels: write_volume(path, labels, voxel_size=1e-4)),
    "tif": (".tif", lambda path, labels: write_volume(path, labels, voxel_size=1e-4)),
    "vti": (".vti", lambda path, labels: write_volume(path, labels, voxel_size=1e-4)),
}


def measure(export, labels, folder):
    suffix, write = EXPORTS[export]
    path = Path(folder) / f"volume{suffix}"
    tracemalloc.start()
    start = time.perf_counter()
    result = write(path, labels)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    entry = {
        "seconds": round(seconds, 3),
        "peak_memory_mb": round(peak / 2**20, 2),
        "file_mb": round(path.stat().st_size / 2**20, 2),
    }
    if isinstance(result, dict):
        entry.update(zones=result["zones"], gridpoints=result["gridpoints"], faces=result["faces"])
    path.unlink()
    return entry


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "export.json"))
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes:
            labels = (np.random.default_rng(size).random((size,) * 3) < 0.37).astype(np.uint8)
            for export in EXPORTS:
                entry = {"size": size, "export": export, **measure(export, labels, folder)}
                print(entry, flush=True)
                results.append(entry)
    write_json(
        args.out,
        {
            "description": __doc__.split("\n\n")[0],
            "memory": "tracemalloc peak during the export (Python and NumPy allocations)",
            "machine": {
                "platform": platform.platform(),
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
            },
            "results": results,
        },
    )
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
