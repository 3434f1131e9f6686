"""Loss evaluations with glibc's malloc thresholds raised (the engine's default) and as glibc has them.

Each case (the bundled conglomerate slice; 2D 64^2, 3D 32^3 and 64^3 with the ``cpu`` preset;
random start, one level, no sharpening, no early stop) runs ``--iterations`` L-BFGS-B iterations
in a fresh process twice per repeat, alternating: once as the engine runs (``reuse_freed_memory``
raises the mmap and trim thresholds), once with that call replaced by a no-op, so that glibc
keeps its own (dynamic) thresholds. (Setting ``MALLOC_TRIM_THRESHOLD_`` to glibc's default
instead would turn the dynamic mmap threshold off: a slower baseline than glibc's own.) Reported per run:
seconds per evaluation in the loss and in the optimizer's own work, and the process's peak RSS;
``raised_over_default`` holds the ratios of the medians.

Usage::

    python benchmarks/allocator.py [--repeats 2] [--iterations 20]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np

from napari_dmcr.io.atomic import write_json
from napari_dmcr.reconstruction.allocator import USER_SETTINGS

RESULTS = Path(__file__).resolve().parent / "results" / "allocator.json"
CASES = [(64, 64), (32, 32, 32), (64, 64, 64)]

CHILD = """
import json, resource, sys
from napari_dmcr.reconstruction import engine, run_reconstruction
from napari_dmcr.samples import conglomerate_slice
shape, iterations, raised = tuple(json.loads(sys.argv[1])), int(sys.argv[2]), sys.argv[3] == "raised"
if not raised:
    engine.reuse_freed_memory = lambda: False
run = run_reconstruction(conglomerate_slice((64, 64), seed=0), shape, descriptors="cpu", seed=0, device="cpu",
                         start="random", multigrid_levels=1, sharpen=0, target_residual=0.0,
                         max_iter=iterations, preview_interval_s=1e9)
evaluations = run.history[-1]["evaluations"]
print(json.dumps({
    "thresholds_raised": engine.reuse_freed_memory(),
    "evaluations": evaluations,
    "loss_s_per_evaluation": run.timings["loss_s"] / evaluations,
    "optimizer_s_per_evaluation": (run.timings["optimize_s"] - run.timings["loss_s"]) / evaluations,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


def run_child(shape, iterations, raised):
    environment = {key: value for key, value in os.environ.items() if key not in USER_SETTINGS}
    command = [sys.executable, "-c", CHILD, json.dumps(shape), str(iterations), "raised" if raised else "default"]
    output = subprocess.run(command, env=environment, capture_output=True, text=True, check=True).stdout
    record = json.loads(output.strip().splitlines()[-1])
    if record["thresholds_raised"] != raised:
        raise SystemExit(f"the child did not run as asked (raised={raised}): {record}")
    return record


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    results = {
        "what": __doc__.splitlines()[0],
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "libc": platform.libc_ver()},
        "iterations": args.iterations,
        "cases": {},
    }
    for shape in CASES:
        runs = {"raised": [], "default": []}
        for _ in range(args.repeats):
            for raised in (True, False):
                runs["raised" if raised else "default"].append(run_child(list(shape), args.iterations, raised))
        medians = {
            name: {key: float(np.median([r[key] for r in records])) for key in records[0] if key != "thresholds_raised"}
            for name, records in runs.items()
        }
        name = "x".join(map(str, shape))
        results["cases"][name] = {
            "runs": runs,
            "raised_over_default": {
                key: medians["raised"][key] / medians["default"][key]
                for key in ("loss_s_per_evaluation", "optimizer_s_per_evaluation", "peak_rss_mb")
            },
        }
        print(name, results["cases"][name]["raised_over_default"], flush=True)
        write_json(args.out, results)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
