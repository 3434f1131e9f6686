"""Three orthogonal slices through one point, as a user cuts them, against each slice alone.

For each truth of ``fidelity3d.py`` a block gives three slices through its centre, normal to z,
y and x (the sandstones: a 128^3 block; the sample: its 64^3 volume; Berea: its 110^3 volume;
the PoreSpy truths: a 128^3 realization); each slice alone and the three together are
reconstructed to 64^3 cores (default settings, seeds 0 and 1), and Yeong-Torquato reconstructs
the three (seed 0). The cores are scored as in ``fidelity3d.py`` (unfitted 3D measures within
2 SD of true 64^3 sub-volumes: those of ``fidelity3d.py``, Berea's overlapping its slices; the
sandstones', up to 16 disjoint ones from z = 160 on (Rabbani's: 136), below the block). For the anisotropic truth
(``aniso``, correlated over 1:2:4 along z, y, x) the pores' diffusivity and tortuosity factor
(fraction over diffusivity) along each axis are compared with the true sub-volumes' means. The
targets: three slices never worse than the best single slice, the anisotropic truth's tortuosity
order per axis kept and each axis within 10 %, and no slower than Yeong-Torquato.

Run (about 40 minutes on 2 cores; ``--truths`` picks)::

    python benchmarks/three_slices.py --data ../shared/data
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from fidelity3d import SANDSTONES, mid_slices_figure, phase_diffusivity, score, truths

from napari_dmcr.baselines import run_yeong_torquato
from napari_dmcr.evaluation.structure import percolation, structure_measures, truth_spread
from napari_dmcr.io.atomic import write_json
from napari_dmcr.reconstruction import run_reconstruction

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "three_slices.json"
IMAGES = HERE.parent / "docs" / "images"
SIZE = 64
BLOCK = 128
BELOW = 160  # sandstone truths start this far down, clear of the block
SEEDS = (0, 1)
FLOW_TRUTHS = ("aniso",)  # truths whose cores' diffusivity per axis is compared with the truth's


def setup(name, data):
    """``(block the slices are cut from, true sub-volumes, phase, grains label or None)``."""
    if name not in SANDSTONES:  # as in fidelity3d.py (Berea: its 110^3 volume and its octants)
        return truths(name, data, SIZE)
    volume = np.load(Path(data) / SANDSTONES[name])
    corner = (volume.shape[1] - BLOCK) // 2
    block = volume[:BLOCK, corner : corner + BLOCK, corner : corner + BLOCK]
    below = min(BELOW, volume.shape[0] - SIZE)  # Rabbani's 200 layers: right below the block
    starts = [range(below, volume.shape[0] - SIZE + 1, SIZE)] + [range(0, n - SIZE + 1, SIZE) for n in volume.shape[1:]]
    corners = [(z, y, x) for z in starts[0] for y in starts[1] for x in starts[2]]
    chosen = np.unique(np.linspace(0, len(corners) - 1, min(16, len(corners))).round().astype(int))
    subvolumes = [volume[z : z + SIZE, y : y + SIZE, x : x + SIZE] for z, y, x in (corners[k] for k in chosen)]
    return block, subvolumes, 1, None


def run_truth(name, data):
    block, subvolumes, phase, grains = setup(name, data)
    spread = truth_spread([structure_measures(v, phase, grains=grains) for v in subvolumes])
    counts = np.sum([percolation(v, phase) for v in subvolumes], axis=0)
    truth_percolation = [bool(2 * c >= len(subvolumes)) for c in counts]
    middle = block.shape[0] // 2
    slices = {"z": block[middle], "y": block[:, middle], "x": block[:, :, middle]}
    entry = {"slice_fractions": {axis: float(np.mean(s == phase)) for axis, s in slices.items()}, "runs": {}}
    flow = name in FLOW_TRUTHS
    if flow:
        truth_flows = [_flow(v, phase) for v in subvolumes]
        entry["truth_flow"] = {
            key: truth_spread([f[key] for f in truth_flows]) for key in ("diffusivity", "tortuosity")
        }
    targets = {f"one_{axis}": image for axis, image in slices.items()} | {"three": slices}
    rows = [("a true sub-volume", subvolumes[0])]
    for key, target in targets.items():
        for seed in SEEDS:
            began = time.perf_counter()
            result = run_reconstruction(target, (SIZE,) * 3, phase=phase, seed=seed, device="cpu")
            if seed == SEEDS[0] and key in ("one_z", "three"):
                rows.append((f"{key} (seed {seed})", result.labels))
            record = _record(result.labels, spread, truth_percolation, phase, grains, time.perf_counter() - began)
            record["start"] = result.parameters.get("start_model", {}).get("model")
            record["scales"] = result.parameters.get("start_model", {}).get("scales")
            if flow:
                record.update(_flow(result.labels, phase))
            entry["runs"].setdefault(key, []).append(record)
            print(f"{name} {key} seed {seed}: {record['passing']}/{record['of']}, {record['seconds']:.0f} s")
    began = time.perf_counter()
    labels = run_yeong_torquato(slices, (SIZE,) * 3, phase=phase, seed=0).labels
    entry["runs"]["yt_three"] = [_record(labels, spread, truth_percolation, phase, grains, time.perf_counter() - began)]
    if flow:
        entry["runs"]["yt_three"][0].update(_flow(labels, phase))
    rows.append(("yt_three (seed 0)", labels))
    if flow:
        mid_slices_figure(IMAGES / f"three_slices_{name}.png", rows)
    runs = entry["runs"]
    means = {key: float(np.mean([r["passing"] for r in records])) for key, records in runs.items()}
    best = max(means[f"one_{axis}"] for axis in "zyx")
    entry["summary"] = {
        "passing_mean": means,
        "three_minus_best_single": means["three"] - best,
        "three_percolation_matches": [r["percolation_matches"] for r in runs["three"]],
        "three_time_over_yt": max(r["seconds"] for r in runs["three"]) / runs["yt_three"][0]["seconds"],
    }
    if flow:  # the mean over seeds against the true sub-volumes' mean, per axis
        for key in ("diffusivity", "tortuosity"):
            truth = {axis: value["mean"] for axis, value in entry["truth_flow"][key].items()}
            for run, records in runs.items():
                mean = {axis: float(np.mean([r[key][axis] for r in records])) for axis in truth}
                entry["summary"].setdefault(f"{key}_over_truth", {})[run] = {a: mean[a] / truth[a] for a in truth}
                order = sorted(truth, key=mean.get) == sorted(truth, key=truth.get)
                entry["summary"].setdefault(f"{key}_order_matches", {})[run] = order
    return entry


def _flow(labels, phase):
    """The phase's diffusivity per axis and its tortuosity factor (fraction over diffusivity)."""
    diffusivity = phase_diffusivity(labels, phase)
    fraction = float(np.mean(labels == phase))
    return {
        "diffusivity": diffusivity,
        "tortuosity": {axis: fraction / value if value > 0 else float("inf") for axis, value in diffusivity.items()},
    }


def _record(labels, spread, truth_percolation, phase, grains, seconds):
    scored = score(labels, spread, truth_percolation, phase, grains)
    keys = ("passing", "of", "failing", "percolates", "percolation_matches")
    return {key: scored[key] for key in keys} | {"seconds": seconds}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(HERE.parents[1] / "shared" / "data"))
    parser.add_argument(
        "--truths", nargs="+", default=["sample", "berea", "blobs", "spheres", "aniso", "deepore", "yan", "rabbani"]
    )
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    out = Path(args.out)
    results = {"truths": {}}
    if out.exists():
        import json

        results = json.loads(out.read_text())
    for name in args.truths:
        results["truths"][name] = run_truth(name, args.data)
        write_json(out, results)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
