"""SciPy's L-BFGS-B against L-BFGS-B in torch (on the device), measured in the same run.

Per case (the bundled conglomerate slice; 2D 64^2, 3D 32^3 and 64^3 with the ``cpu`` and the
``paper`` preset; random start, one level, no sharpening, no early stop, so that both optimizers
solve the same problem for the same number of iterations) and seed, for each optimizer:

- seconds per evaluation, split into the loss (forward and backward) and the optimizer's own
  work (everything else of the optimizer runs: host copies, the L-BFGS update, the line search);
  ``optimizer_share`` is the latter over the optimizer runs' wall time;
- the residual of the field after each optimizer's last iteration, the residual each reached
  within the evaluations both used (``residual_at_equal_evaluations``), the rounded result's
  residual and its descriptor gaps.

``torch_over_scipy`` holds the ratios per case (residual at equal evaluations, seconds per
evaluation, optimizer share). On a CPU the 64^3 ``paper`` case (VGG-19: about 10 s an
evaluation) runs :data:`CPU_PAPER_64` iterations for the first seed only. The notes of an earlier
results file are kept.

Usage::

    python benchmarks/optimizer.py [--device cpu|cuda] [--seeds 0 1] [--iterations 60]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import numpy as np
import torch

from napari_dmcr.io.atomic import write_json
from napari_dmcr.reconstruction import run_reconstruction
from napari_dmcr.samples import conglomerate_slice

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "optimizer.json"
OPTIMIZERS = ("lbfgsb", "lbfgsb-torch")
CASES = [
    ((64, 64), "cpu"), ((32, 32, 32), "cpu"), ((64, 64, 64), "cpu"),
    ((64, 64), "paper"), ((32, 32, 32), "paper"), ((64, 64, 64), "paper"),
]  # fmt: skip
CPU_PAPER_64 = 10  # iterations of the 64^3 paper case on a CPU


def _residual_within(history, evaluations):
    """The residual of the last iteration that used at most ``evaluations`` evaluations."""
    reached = [entry["residual"] for entry in history if entry["evaluations"] <= evaluations]
    return reached[-1] if reached else None


def run_case(shape, descriptors, seed, iterations, device):
    target = conglomerate_slice((64, 64), seed=0)
    options = {
        "descriptors": descriptors, "seed": seed, "device": device, "start": "random", "multigrid_levels": 1,
        "max_iter": iterations, "target_residual": 0.0, "sharpen": 0, "preview_interval_s": 1e9,
    }  # fmt: skip
    runs = {name: run_reconstruction(target, shape, optimizer=name, **options) for name in OPTIMIZERS}
    common = min(run.history[-1]["evaluations"] for run in runs.values())
    record = {}
    for name, run in runs.items():
        evaluations = run.history[-1]["evaluations"]
        optimize_s, loss_s = run.timings["optimize_s"], run.timings["loss_s"]
        record[name] = {
            "iterations": len(run.history),
            "evaluations": evaluations,
            "loss_s_per_evaluation": loss_s / evaluations,
            "optimizer_s_per_evaluation": (optimize_s - loss_s) / evaluations,
            "optimizer_share": (optimize_s - loss_s) / optimize_s,
            "optimize_s": optimize_s,
            "field_residual": run.history[-1]["residual"],
            "residual_at_equal_evaluations": _residual_within(run.history, common),
            "rounded_residual": run.residual,
            "gaps": dict(zip("zyx" if len(shape) == 3 else ["image"], run.final_errors)),
        }
    scipy_run, ours = record["lbfgsb"], record["lbfgsb-torch"]
    record["equal_evaluations"] = common
    record["torch_over_scipy"] = {
        key: ours[key] / scipy_run[key] if scipy_run[key] else None
        for key in ("residual_at_equal_evaluations", "rounded_residual", "optimizer_share")
    }
    record["torch_over_scipy"]["seconds_per_evaluation"] = (ours["optimize_s"] / ours["evaluations"]) / (
        scipy_run["optimize_s"] / scipy_run["evaluations"]
    )
    return record


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--iterations", type=int, default=60)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    results = {
        "what": __doc__.splitlines()[0],
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
                    "torch_threads": torch.get_num_threads(), "device": args.device},
        "iterations": args.iterations,
        "cases": {},
    }  # fmt: skip
    if Path(args.out).exists():
        results["notes"] = json.loads(Path(args.out).read_text()).get("notes", [])
    for shape, descriptors in CASES:
        iterations, seeds = args.iterations, args.seeds
        if args.device == "cpu" and (shape, descriptors) == ((64, 64, 64), "paper"):
            iterations, seeds = CPU_PAPER_64, args.seeds[:1]
        name = f"{'x'.join(map(str, shape))} {descriptors}"
        results["cases"][name] = {str(seed): run_case(shape, descriptors, seed, iterations, args.device)
                                  for seed in seeds}  # fmt: skip
        ratios = [r["torch_over_scipy"] for r in results["cases"][name].values()]
        results["cases"][name]["mean_torch_over_scipy"] = {
            key: float(np.mean([r[key] for r in ratios if r[key] is not None])) for key in ratios[0]
        }
        print(name, results["cases"][name]["mean_torch_over_scipy"], flush=True)
        write_json(args.out, results)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
