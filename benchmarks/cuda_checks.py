"""Checks of the CUDA path that CI (CPU only) cannot make: agreement, reproducibility, out of memory.

- Agreement: each descriptor of the same random fields on the GPU and on the CPU (float64; Gram
  matrices in float32, as the engine runs them): the largest difference, relative for Gram.
- Reproducibility: the same seed twice gives bit-identical labels, field and loss history on
  the GPU (2D-to-3D, the default descriptor set, Gram matrices included); another seed differs.
- Out of memory: with the process's share of GPU memory capped (``--memory-cap-gb``), a
  128^3 reconstruction with the default set and chunks of all 128 slices of a direction stops with
  :class:`napari_dmcr.errors.DeviceMemoryError` (its message and how long it took are recorded),
  and the same run with a chunk size that fits the cap completes an iteration. The memory still
  allocated when the retry starts is recorded: the failed run's tensors must be gone by then.

Usage::

    NAPARI_DMCR_VGG19_WEIGHTS=/path/to/vgg19_normalized.npz python benchmarks/cuda_checks.py

Writes ``benchmarks/results/cuda_checks.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from napari_dmcr.descriptors import gram_matrices, s2_map, s3, total_variation
from napari_dmcr.errors import DeviceMemoryError
from napari_dmcr.io.atomic import write_json
from napari_dmcr.reconstruction import run_reconstruction
from napari_dmcr.samples import conglomerate_slice

RESULTS = Path(__file__).resolve().parent / "results"


def agreement(seed=0):
    generator = torch.Generator().manual_seed(seed)
    field = torch.rand(4, 32, 32, dtype=torch.float64, generator=generator)
    on_gpu = field.cuda()

    def largest_difference(descriptor, x, y):
        return float((descriptor(x) - descriptor(y).cpu()).abs().max())

    gram_cpu, gram_gpu = gram_matrices(field.float()), gram_matrices(on_gpu.float())
    return {
        "s2_max_abs": largest_difference(lambda f: s2_map(f, 8), field, on_gpu),
        "s3_max_abs": largest_difference(lambda f: s3(f, 6), field, on_gpu),
        "tv_max_abs": largest_difference(total_variation, field, on_gpu),
        "gram_max_relative": max(float((a - b.cpu()).norm() / a.norm()) for a, b in zip(gram_cpu, gram_gpu)),
    }


def reproducibility(target, shape=(32, 32, 32), max_iter=20):
    def run(seed):
        return run_reconstruction(
            target, shape, descriptors="paper", max_iter=max_iter, seed=seed, device="cuda", target_residual=0.0
        )

    first, second, other = run(7), run(7), run(8)
    losses = [[h["loss"] for h in r.history] for r in (first, second)]
    return {
        "shape": list(shape),
        "descriptors": "paper",
        "max_iter_per_level": max_iter,
        "iterations": len(first.history),
        "same_seed_labels_identical": bool(np.array_equal(first.labels, second.labels)),
        "same_seed_field_identical": bool(np.array_equal(first.field, second.field)),
        "same_seed_loss_history_identical": losses[0] == losses[1],
        "other_seed_labels_differ_fraction": float((first.labels != other.labels).mean()),
    }


def out_of_memory(target, cap_gb, shape=(128, 128, 128)):
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(cap_gb * 2**30 / total)
    arguments = {
        "descriptors": "paper",
        "max_iter": 1,
        "multigrid_levels": 1,
        "seed": 0,
        "device": "cuda",
        "target_residual": 0.0,
    }
    start = time.perf_counter()
    try:
        run_reconstruction(target, shape, chunk_size=shape[0], **arguments)
        raised = None
    except DeviceMemoryError as error:
        raised = str(error)
    seconds_to_error = time.perf_counter() - start
    allocated_before_retry = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    fitting = run_reconstruction(target, shape, memory_budget_gb=cap_gb / 4, **arguments)
    return {
        "shape": list(shape),
        "memory_cap_gb": cap_gb,
        "chunk_size_all_slices": shape[0],
        "error_message": raised,
        "seconds_to_error": seconds_to_error,
        "allocated_before_retry_mb": allocated_before_retry / 2**20,
        "fitting_run": {
            "chunk_size": fitting.parameters["chunk_size"],
            "seconds": time.perf_counter() - start,
            "peak_memory_mb": torch.cuda.max_memory_allocated() / 2**20,
            "iterations": len(fitting.history),
        },
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--memory-cap-gb", type=float, default=4.0)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: these checks need a GPU")
    target = conglomerate_slice((64, 64), seed=0)
    report = {
        "benchmark": "CUDA path: reproducibility and out-of-memory handling",
        "device_name": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
        "agreement_with_cpu": agreement(),
        "reproducibility": reproducibility(target),
    }
    print(json.dumps({k: report[k] for k in ("agreement_with_cpu", "reproducibility")}), flush=True)
    report["out_of_memory"] = out_of_memory(target, args.memory_cap_gb)
    print(json.dumps(report["out_of_memory"]), flush=True)
    out = RESULTS / "cuda_checks.json"
    write_json(out, report)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
