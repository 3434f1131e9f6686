"""Fidelity of 2D-to-3D reconstructions against the true volumes they were sliced from.

For two volumes with a known 3D truth, one slice is taken, a 3D volume is reconstructed from it,
and the reconstruction is compared with the slice and with the truth on every measure of
:func:`napari_dmcr.evaluation.evaluate` (fractions, S2 per direction, descriptor gaps, and the
unfitted lineal path, chord lengths, clusters and percolation, Euler characteristic, interface
area and local thickness), for the DMCR paper's four variants:

* ``SGV``: the differentiable method (``run_reconstruction``, descriptor preset ``cpu``: S3 with
  two multigrid levels, total variation and volume fraction; the paper's SGV adds VGG-19 Gram
  matrices, which the CPU preset leaves out for time);
* ``YT``: Yeong-Torquato simulated annealing on S2 along the axes (``run_yeong_torquato``, its
  default schedule);
* ``SGV_smoothed`` and ``YT_smoothed``: the same after
  :func:`napari_dmcr.postprocessing.gaussian_smooth` (sigma 1 voxel, periodic like the
  reconstructions; phase fractions kept exactly).

Samples (phase 1 is evaluated: the minority phase, which the methods optimize):

* ``conglomerate``: ``conglomerate_volume((64, 64, 64), seed=0)`` (bundled synthetic truth;
  phase 1 = matrix);
* ``berea``: ``berea_dpm_pore_110.npy`` (Berea sandstone micro-CT, DPM Tools example data, MIT;
  phase 1 = pore), block-averaged 2x2x2 to 55^3 (a voxel is pore where most of its block is) so
  that its pores, some 24 voxels thick at full resolution, fit a small reconstruction.

The original is the z slice of the truth whose phase-1 fraction is closest to the volume's.

Reconstructions are ``--size``^3 voxels (32 by default), seed 0, on the CPU. The descriptors of
the reconstructions are measured with wrap-around (they are periodic), the slice and the truth
without. Gram gaps are added when VGG-19 weights are found (``NAPARI_DMCR_VGG19_WEIGHTS``).

Run (a few minutes on 2 cores)::

    NAPARI_DMCR_VGG19_WEIGHTS=/path/to/vgg19_normalized.npz \\
        python benchmarks/fidelity.py --data /path/to/shared/data

and it writes ``benchmarks/results/fidelity.json``: per sample the settings, per variant its
run time and every error of ``evaluate`` (``errors``: ``{measure: {direction: value}}``), and the
3D scalars of the truth and of each variant.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from napari_dmcr.baselines.yeong_torquato import run_yeong_torquato
from napari_dmcr.errors import InputError
from napari_dmcr.evaluation import evaluate
from napari_dmcr.io.atomic import write_json
from napari_dmcr.postprocessing import gaussian_smooth
from napari_dmcr.reconstruction import run_reconstruction
from napari_dmcr.samples import conglomerate_volume

PHASE = 1
SMOOTHING_SIGMA = 1.0
RESULTS = Path(__file__).resolve().parent / "results" / "fidelity.json"


def representative_slice(truth):
    """The z slice whose phase fraction is closest to the volume's."""
    fractions = np.mean(truth == PHASE, axis=(1, 2))
    return truth[int(np.argmin(np.abs(fractions - np.mean(truth == PHASE))))]


def conglomerate_sample():
    truth = conglomerate_volume((64, 64, 64), seed=0)
    return representative_slice(truth), truth


def berea_sample(data):
    full = np.load(Path(data) / "berea_dpm_pore_110.npy")
    blocks = full.reshape(55, 2, 55, 2, 55, 2).mean(axis=(1, 3, 5))
    truth = (blocks > 0.5).astype(np.uint8)
    return representative_slice(truth), truth


def reconstructions(original, shape, max_iter, seed):
    """The four variants, each with its wall time in seconds."""
    start = time.perf_counter()
    sgv = run_reconstruction(
        original, shape, descriptors="cpu", phase=PHASE, max_iter=max_iter, seed=seed, device="cpu"
    ).labels
    sgv_time = time.perf_counter() - start
    start = time.perf_counter()
    yt = run_yeong_torquato(original, shape, phase=PHASE, seed=seed).labels
    yt_time = time.perf_counter() - start
    variants = {}
    for name, labels, seconds in (("SGV", sgv, sgv_time), ("YT", yt, yt_time)):
        variants[name] = (labels, seconds)
        start = time.perf_counter()
        smoothed = gaussian_smooth(labels, SMOOTHING_SIGMA, periodic=True)
        variants[f"{name}_smoothed"] = (smoothed, seconds + time.perf_counter() - start)
    return variants


def scalars_3d(summary):
    """The unfitted 3D scalars of a morphology summary."""
    return {
        "volume_fraction": summary["volume_fraction"],
        "euler_characteristic_density": summary["euler_characteristic_density"],
        "specific_surface_area": summary["specific_surface_area"],
        "mean_thickness": summary["size_distribution"]["mean_thickness"],
        "largest_cluster_fraction": summary["connectivity"]["largest_cluster_fraction"],
        "percolates": summary["connectivity"]["percolates"],
    }


def run_sample(name, original, truth, size, max_iter, gram, seed=0):
    shape = (size, size, size)
    entry = {
        "original_shape": original.shape,
        "truth_shape": truth.shape,
        "reconstruction_shape": shape,
        "original_fraction": float(np.mean(original == PHASE)),
        "truth_fraction": float(np.mean(truth == PHASE)),
        "variants": {},
    }
    for variant, (labels, seconds) in reconstructions(original, shape, max_iter, seed).items():
        result = evaluate(original, labels, truth, phases=[PHASE], gram=gram, periodic=True)
        morphology = result["phases"][PHASE]["truth"]["morphology"]
        entry["truth_3d"] = scalars_3d(morphology["reference"])
        entry["variants"][variant] = {
            "seconds": seconds,
            "scalars_3d": scalars_3d(morphology["candidate"]),
            "errors": result["errors"][PHASE],
        }
        entry["max_lag"] = result["settings"]["max_lag"]
        print(f"{name} {variant}: {seconds:.1f} s, {headline(result['errors'][PHASE])}", flush=True)
    return entry


def headline(errors):
    """A one-line summary of the errors that matter most."""
    mean = {key: float(np.nanmean(list(values.values()))) for key, values in errors.items()}
    keys = (
        "s2_rms_radial",
        "E_s3",
        "E_total_variation",
        "truth/s2_rms_axis",
        "truth/lineal_path_rms",
        "truth/specific_surface_area",
        "truth/mean_thickness",
        "truth/euler_characteristic_density_abs",
    )
    return ", ".join(f"{key} {mean[key]:.3g}" for key in keys if key in mean)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shared_data = Path(__file__).resolve().parents[2] / "shared" / "data"
    parser.add_argument("--data", default=str(shared_data), help="folder of the real volumes")
    parser.add_argument("--size", type=int, default=32, help="reconstruction side")
    parser.add_argument("--max-iter", type=int, default=100, help="L-BFGS-B iterations per level")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()

    gram = bool(os.environ.get("NAPARI_DMCR_VGG19_WEIGHTS"))
    samples = {"conglomerate": conglomerate_sample()}
    try:
        samples["berea"] = berea_sample(args.data)
    except FileNotFoundError:
        raise InputError(f"berea_dpm_pore_110.npy not found in {args.data}; pass --data") from None
    started = time.perf_counter()
    results = {
        "settings": {
            "reconstruction_size": args.size,
            "max_iter": args.max_iter,
            "descriptors": "cpu (S3 levels 2, TV, VF)",
            "smoothing_sigma": SMOOTHING_SIGMA,
            "phase": PHASE,
            "gram_gaps": gram,
            "seed": 0,
        },
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
        },
        "samples": {},
    }
    for name, (original, truth) in samples.items():
        results["samples"][name] = run_sample(name, original, truth, args.size, args.max_iter, gram)
    results["total_seconds"] = time.perf_counter() - started
    write_json(args.out, results)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
