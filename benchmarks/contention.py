"""Runs on a quiet machine and beside one concurrent CPU-bound job, under the thread policy and
under torch's defaults.

Cases (the bundled conglomerate): a 2D default reconstruction (64^2 from its 64^2 slice), a 3D
default one (64^3), and the matrix's diffusion along z through a 64^3 block of its truth. Each
runs in a fresh process, quiet and then beside a busy process (a Python loop on one core), with

* ``policy``: what the command line does (:func:`napari_dmcr.threads.use_threads`: the free
  cores, counted when the run starts, for torch, numba and BLAS; waiting OpenMP threads sleep);
* ``torch_default``: torch's own thread count (the cores) and OpenMP's own wait policy (spin,
  then sleep), as before the policy.

``slowdown`` is busy over quiet seconds per case and policy; the target is 2x or less.

Usage::

    python benchmarks/contention.py [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from napari_dmcr.io.atomic import write_json

RESULTS = Path(__file__).resolve().parent / "results" / "contention.json"
CASES = ("reconstruct_2d", "reconstruct_3d", "diffusion_64")
POLICIES = ("policy", "torch_default")

CHILD = """
import json, sys, time
case, policy = sys.argv[1], sys.argv[2]
import torch
from napari_dmcr.threads import use_threads
threads = use_threads() if policy == "policy" else torch.get_num_threads()
from napari_dmcr.samples import conglomerate_slice, conglomerate_volume
began = time.perf_counter()
if case == "diffusion_64":
    from napari_dmcr.properties import diffusion
    volume = conglomerate_volume((64, 64, 64), seed=0)
    began = time.perf_counter()
    diffusion(volume, 1, 0)
else:
    from napari_dmcr.reconstruction import run_reconstruction
    shape = (64, 64) if case == "reconstruct_2d" else (64, 64, 64)
    run_reconstruction(conglomerate_slice((64, 64), seed=0), shape, seed=0, device="cpu")
print(json.dumps({"seconds": time.perf_counter() - began, "threads": threads}))
"""

BUSY = "while True:\n    pass\n"


def run_child(case, policy):
    environment = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS", "NAPARI_DMCR_THREADS"):
        environment.pop(name, None)
    # An empty value keeps napari_dmcr from setting the passive policy: OpenMP's own default.
    environment["OMP_WAIT_POLICY"] = "" if policy == "torch_default" else "PASSIVE"
    command = [sys.executable, "-c", CHILD, case, policy]
    output = subprocess.run(command, env=environment, capture_output=True, text=True, check=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def measure(case, policy, busy):
    job = subprocess.Popen([sys.executable, "-c", BUSY]) if busy else None
    try:
        if job:
            time.sleep(1.0)  # the job is running before the run counts its free cores
        return run_child(case, policy)
    finally:
        if job:
            job.kill()
            job.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    results = {
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count()},
        "target_slowdown": 2.0,
        "cases": {},
    }
    for case in CASES:
        entry = results["cases"].setdefault(case, {})
        for policy in POLICIES:
            runs = {"quiet": [], "busy": []}
            for _ in range(args.repeats):
                for state in runs:
                    runs[state].append(measure(case, policy, state == "busy"))
            quiet = min(r["seconds"] for r in runs["quiet"])
            busy = min(r["seconds"] for r in runs["busy"])
            entry[policy] = {
                "quiet_s": quiet,
                "busy_s": busy,
                "slowdown": busy / quiet,
                "threads": {state: [r["threads"] for r in records] for state, records in runs.items()},
            }
            print(f"{case} {policy}: quiet {quiet:.2f} s, busy {busy:.2f} s ({busy / quiet:.1f}x)", flush=True)
            write_json(Path(args.out), results)
    results["all_within_target"] = all(
        entry["policy"]["slowdown"] <= results["target_slowdown"] for entry in results["cases"].values()
    )
    write_json(Path(args.out), results)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
