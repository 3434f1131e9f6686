"""Properties: solve time and memory, a peer for the diffusion solve, and which method gives the
right stiffness and diffusivity.

Part 1 (``diffusion``): per size (64^3, 128^3), the pores' diffusion along z, y and x through a
block of a real sandstone (DeePore's sample in ``../shared/data``, porosity 0.21), by our solver
(multigrid-preconditioned conjugate gradients, relative residual 1e-6), by TauFactor
(``pip install --no-deps taufactor``; its convergence criterion 1e-3 and 1e-4) and by PoreSpy's
``tortuosity_fd`` (pyamg), each in a fresh process: seconds over the three axes, D_eff / D per
axis, and each peer's time and largest relative difference against ours.

Part 1b (``elasticity``): the elastic solve (six load cases; sandstone moduli, void pores) of the
same sandstone block and of a PoreSpy ``blobs`` volume (porosity 0.3) per size, each in a fresh
process for its peak memory: seconds against the 120 s target at 128^3, and at 64^3 the largest
relative difference of the Young's moduli to a solve at a 1e-5 residual.

Part 2 (``sample``): the properties (diffusivity and tortuosity of the matrix, Young's moduli
with the conglomerate moduli) of 8 true 64^3 sample volumes (seeds 1-8: mean and SD) against
the cores each recipe makes from a representative z slice of seed 0 (its matrix fraction the
closest to the volume's), as z-scores and relative differences to the truth mean.

The ``paper`` recipe needs the VGG-19 weights (``NAPARI_DMCR_VGG19_WEIGHTS``). Run (about 15 min
on 2 cores; ``--parts diffusion``, ``elasticity`` or ``sample`` reruns one part and keeps
the others' results in the JSON)::

    python benchmarks/properties.py --out benchmarks/results/properties.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import multiprocessing.queues
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

from napari_dmcr.io.atomic import write_json
from napari_dmcr.properties import volume_properties
from napari_dmcr.properties.elasticity import TOLERANCE, elastic_properties
from napari_dmcr.properties.materials import MATERIALS
from napari_dmcr.properties.transport import diffusion
from napari_dmcr.samples import conglomerate_slice, conglomerate_volume

HERE = Path(__file__).resolve().parent
SAMPLE_SIDE = 64
RECIPES = {
    "default": {"method": "dmcr", "options": {"descriptors": "auto"}},
    "paper": {"method": "dmcr", "options": {"descriptors": "paper"}},
    "yt": {"method": "yt", "options": {}},
}
KEYS = ("diffusivity", "tortuosity", "young_modulus")
PARTS = ("diffusion", "elasticity", "sample")


def _blobs(side):
    import porespy

    return porespy.generators.blobs([side] * 3, porosity=0.3, blobiness=1.5, seed=1).astype(np.uint8)


SANDSTONE = HERE.parents[1] / "shared" / "data" / "deepore_sample_300.npy"  # label 1 = pore
PEERS = {"ours": {}, "taufactor_1e-3": {"conv_crit": 1e-3}, "taufactor_1e-4": {"conv_crit": 1e-4}, "porespy": {}}


def _sandstone(side):
    volume = np.load(SANDSTONE)
    start = (volume.shape[0] - side) // 2
    return np.ascontiguousarray(volume[start : start + side, start : start + side, start : start + side])


# The elastic solve's volumes (sandstone moduli: quartz grains, void pores): the real sandstone's
# block and PoreSpy blobs; its target, and the size up to which its moduli are checked.
ELASTIC_VOLUMES = {"sandstone": _sandstone, "blobs": _blobs}
TARGET_SIDE, TARGET_S = 128, 120.0
CHECKED_SIDE, REFERENCE_TOLERANCE = 64, 1e-5


def _diffusivity(kind, volume, axis):
    """D_eff / D of the pores (label 1) along ``axis`` by one solver."""
    if kind == "ours":
        return diffusion(volume, 1, axis)["diffusivity"]
    along_first = np.ascontiguousarray(np.moveaxis(volume, axis, 0))
    if kind == "porespy":
        import porespy

        return 1.0 / porespy.simulations.tortuosity_fd(along_first == 1, axis=0).formation_factor
    import taufactor

    solver = taufactor.Solver(along_first, device="cpu")  # along its first axis
    solver.solve(verbose="no", **PEERS[kind])
    return float(np.ravel(solver.D_eff.cpu() if torch.is_tensor(solver.D_eff) else solver.D_eff)[0])


def _measured(kind, side, threads, queue, tolerance=TOLERANCE):
    """One solve in this (forked) process; its result, seconds and peak memory growth to ``queue``."""
    torch.set_num_threads(threads)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if kind in ELASTIC_VOLUMES:
        volume = ELASTIC_VOLUMES[kind](side)
        start = time.perf_counter()
        moduli = MATERIALS["sandstone"]
        result = elastic_properties(volume, moduli["young"], moduli["poisson"], tolerance=tolerance)
        summary = {k: result[k] for k in ("young_modulus", "iterations", "residuals", "converged")}
    else:
        volume = _sandstone(side)
        start = time.perf_counter()
        summary = {"diffusivity": [_diffusivity(kind, volume, axis) for axis in range(3)]}
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    queue.put({**summary, "seconds": seconds, "peak_rss_growth_mb": (peak - before) / 1024})


def solve_in_process(kind, side, threads, tolerance=TOLERANCE):
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    process = context.Process(target=_measured, args=(kind, side, threads, queue, tolerance))
    process.start()
    while True:
        try:
            result = queue.get(timeout=1.0)
            break
        except multiprocessing.queues.Empty:
            if not process.is_alive():  # it failed: its traceback is above
                raise SystemExit(f"the {kind} solve at {side}^3 failed") from None
    process.join()
    return result


def diffusion_solves(sizes, threads):
    """Part 1: our diffusion solver and its peers, same volumes and axes, same run."""
    out = {}
    for side in sizes:
        entry = {kind: solve_in_process(kind, side, threads) for kind in PEERS}
        ours = np.array(entry["ours"]["diffusivity"])
        for kind in PEERS:
            if kind != "ours":
                theirs = np.array(entry[kind]["diffusivity"])
                entry[kind]["time_over_ours"] = entry[kind]["seconds"] / entry["ours"]["seconds"]
                entry[kind]["largest_relative_difference"] = float(np.max(np.abs(theirs / ours - 1)))
        out[f"{side}^3"] = entry
        print(side, {k: (round(v["seconds"], 2), v.get("largest_relative_difference")) for k, v in entry.items()})
    return out


def elasticity_solves(sizes, threads):
    """Part 1b: the elastic solve's time, iterations and memory per volume; where the side is at
    most :data:`CHECKED_SIDE`, its moduli against a solve to :data:`REFERENCE_TOLERANCE`."""
    out = {}
    for side in sizes:
        entry = {name: solve_in_process(name, side, threads) for name in ELASTIC_VOLUMES}
        for name, record in entry.items():
            record["meets_target"] = side != TARGET_SIDE or record["seconds"] <= TARGET_S
            if side <= CHECKED_SIDE:
                reference = np.array(solve_in_process(name, side, threads, REFERENCE_TOLERANCE)["young_modulus"])
                record[f"largest_relative_difference_to_{REFERENCE_TOLERANCE:g}"] = float(
                    np.max(np.abs(np.array(record["young_modulus"]) / reference - 1))
                )
        out[f"{side}^3"] = entry
        print(side, {name: round(record["seconds"], 1) for name, record in entry.items()})
    return out


def _properties(volume):
    return volume_properties(volume, 1, material="conglomerate")


def sample(recipes):
    from napari_dmcr.baselines.yeong_torquato import run_yeong_torquato
    from napari_dmcr.descriptors.vgg19_weights import load_vgg19_weights
    from napari_dmcr.reconstruction import run_reconstruction

    if any(RECIPES[name]["options"].get("descriptors") == "paper" for name in recipes):
        load_vgg19_weights()  # no weights: fail before any work
    # The slice of the bundled sample (dmcr sample): the z slice of seed 0 whose matrix fraction
    # is closest to the volume's (the stiffness follows the fraction).
    target = conglomerate_slice((SAMPLE_SIDE, SAMPLE_SIDE), seed=0)
    shape = (SAMPLE_SIDE,) * 3
    truths = [_properties(conglomerate_volume((SAMPLE_SIDE,) * 3, seed=s)) for s in range(1, 9)]
    spread = {
        key: {
            "mean": np.mean([t[key] for t in truths], axis=0).tolist(),
            "sd": np.std([t[key] for t in truths], axis=0, ddof=1).tolist(),
        }
        for key in KEYS
    }
    truth_fraction = [np.mean(conglomerate_volume(shape, seed=s) == 1) for s in range(1, 9)]
    out = {
        "truth": spread,
        "truth_fraction": {"mean": float(np.mean(truth_fraction)), "sd": float(np.std(truth_fraction, ddof=1))},
        "slice_fraction": float(np.mean(target == 1)),
        "recipes": {},
    }
    for name in recipes:
        recipe = RECIPES[name]
        start = time.perf_counter()
        if recipe["method"] == "yt":
            labels = run_yeong_torquato(target, shape, phase=1, seed=0).labels
        else:
            labels = run_reconstruction(target, shape, phase=1, seed=0, device="cpu", **recipe["options"]).labels
        seconds = time.perf_counter() - start
        props = _properties(labels)
        entry = {"reconstruction_s": seconds, "fraction": float(np.mean(labels == 1))}
        for key in KEYS:
            mean, sd = np.array(spread[key]["mean"]), np.array(spread[key]["sd"])
            values = np.array(props[key], float)
            entry[key] = values.tolist()
            entry[f"{key}_z"] = ((values - mean) / np.where(sd > 0, sd, np.nan)).tolist()
            entry[f"{key}_relative"] = (values / mean - 1).tolist()
        out["recipes"][name] = entry
        print(name, entry, flush=True)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--recipes", nargs="*", default=list(RECIPES))
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(HERE / "results" / "properties.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.is_file() else {}  # parts not rerun are kept
    results.update(
        benchmark="properties",
        date=time.strftime("%Y-%m-%d"),
        machine={"processor": platform.processor() or platform.machine(), "threads": args.threads},
        torch=torch.__version__,
        python=sys.version.split()[0],
    )
    if "diffusion" in args.parts:
        results["diffusion"] = diffusion_solves(args.sizes, args.threads)
    if "elasticity" in args.parts:
        results["elasticity"] = elasticity_solves(args.sizes, args.threads)
    if "sample" in args.parts:
        results["sample"] = sample(args.recipes)
    write_json(out, results)
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
