"""Three orthogonal slices through one point, as a user cuts them, against each slice alone.

For each truth a 128^3 block (the sample: its 64^3 volume) gives three slices through its centre,
normal to z, y and x; each slice alone and the three together are reconstructed to 64^3 cores
(default settings, seeds 0 and 1), and Yeong-Torquato reconstructs the three (seed 0). The cores
are scored as in ``fidelity3d.py`` (unfitted 3D measures within 2 SD of true 64^3 sub-volumes:
the sample's seeds 1-8; below the block in the sandstones, 16 disjoint ones from z = 160 on).
The target: three slices never worse than the best single slice, and no slower than
Yeong-Torquato.

Run (about 15 minutes on 2 cores)::

    python benchmarks/three_slices.py --data ../shared/data
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from fidelity3d import SANDSTONES, score

from napari_dmcr.baselines import run_yeong_torquato
from napari_dmcr.evaluation.structure import percolation, structure_measures, truth_spread
from napari_dmcr.io.atomic import write_json
from napari_dmcr.reconstruction import run_reconstruction
from napari_dmcr.samples import conglomerate_volume

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "three_slices.json"
SIZE = 64
BLOCK = 128
BELOW = 160  # sandstone truths start this far down, clear of the block
SEEDS = (0, 1)


def setup(name, data):
    """``(block the slices are cut from, true sub-volumes, phase, grains label or None)``."""
    if name == "sample":
        radius = SIZE / 14
        truths = [conglomerate_volume((SIZE,) * 3, seed=s, mean_radius=radius) for s in range(1, 9)]
        return conglomerate_volume((SIZE,) * 3, seed=0), truths, 1, 0
    volume = np.load(Path(data) / SANDSTONES[name])
    corner = (volume.shape[1] - BLOCK) // 2
    block = volume[:BLOCK, corner : corner + BLOCK, corner : corner + BLOCK]
    starts = [range(BELOW, volume.shape[0] - SIZE + 1, SIZE)] + [range(0, n - SIZE + 1, SIZE) for n in volume.shape[1:]]
    corners = [(z, y, x) for z in starts[0] for y in starts[1] for x in starts[2]]
    chosen = np.unique(np.linspace(0, len(corners) - 1, min(16, len(corners))).round().astype(int))
    truths = [volume[z : z + SIZE, y : y + SIZE, x : x + SIZE] for z, y, x in (corners[k] for k in chosen)]
    return block, truths, 1, None


def run_truth(name, data):
    block, truths, phase, grains = setup(name, data)
    spread = truth_spread([structure_measures(v, phase, grains=grains) for v in truths])
    counts = np.sum([percolation(v, phase) for v in truths], axis=0)
    truth_percolation = [bool(2 * c >= len(truths)) for c in counts]
    middle = block.shape[0] // 2
    slices = {"z": block[middle], "y": block[:, middle], "x": block[:, :, middle]}
    entry = {"slice_fractions": {axis: float(np.mean(s == phase)) for axis, s in slices.items()}, "runs": {}}
    targets = {f"one_{axis}": image for axis, image in slices.items()} | {"three": slices}
    for key, target in targets.items():
        for seed in SEEDS:
            began = time.perf_counter()
            result = run_reconstruction(target, (SIZE,) * 3, phase=phase, seed=seed, device="cpu")
            record = _record(result.labels, spread, truth_percolation, phase, grains, time.perf_counter() - began)
            record["start"] = result.parameters.get("start_model", {}).get("model")
            entry["runs"].setdefault(key, []).append(record)
            print(f"{name} {key} seed {seed}: {record['passing']}/{record['of']}, {record['seconds']:.0f} s")
    began = time.perf_counter()
    labels = run_yeong_torquato(slices, (SIZE,) * 3, phase=phase, seed=0).labels
    entry["runs"]["yt_three"] = [_record(labels, spread, truth_percolation, phase, grains, time.perf_counter() - began)]
    runs = entry["runs"]
    means = {key: float(np.mean([r["passing"] for r in records])) for key, records in runs.items()}
    best = max(means[f"one_{axis}"] for axis in "zyx")
    entry["summary"] = {
        "passing_mean": means,
        "three_minus_best_single": means["three"] - best,
        "three_percolation_matches": [r["percolation_matches"] for r in runs["three"]],
        "three_time_over_yt": max(r["seconds"] for r in runs["three"]) / runs["yt_three"][0]["seconds"],
    }
    return entry


def _record(labels, spread, truth_percolation, phase, grains, seconds):
    scored = score(labels, spread, truth_percolation, phase, grains)
    keys = ("passing", "of", "failing", "percolates", "percolation_matches")
    return {key: scored[key] for key in keys} | {"seconds": seconds}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(HERE.parents[1] / "shared" / "data"))
    parser.add_argument("--truths", nargs="+", default=["sample", "deepore", "yan"])
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
