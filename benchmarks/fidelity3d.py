"""3D fidelity: are the cores the material? Unfitted 3D measures against true volumes.

For each truth (a 3D material we can cut slices from) one z slice, or three orthogonal slices,
is reconstructed to a ``--size``^3 core by each recipe, and the core's unfitted 3D structure
measures (:mod:`napari_dmcr.evaluation.structure`: percolation, clusters, Euler characteristic,
chords, local thickness, specific surface, thin voxels, slice-to-slice spread, interface
alignment, grains) are scored as z-scores against the spread of 8 true sub-volumes of the same
size (the sandstones: up to 16). A measure passes within 2 SD; percolation must match the truth's along every axis. The
slices given are those of the source volume whose phase fraction is closest to its own (a user
picks a representative slice; a single slice's fraction can be off by several SD of the truth's).

Truths (phase = the reconstructed phase, the minority; grains = the grain label, if any):

* ``sample``: the bundled conglomerate (``conglomerate_volume`` 64^3; slices: those of seed 0
  chosen as above, the z one is ``dmcr sample``'s; truths: seeds 1-8; phase 1 = matrix,
  grains 0 = gravel);
* ``berea``: Berea sandstone micro-CT (``berea_dpm_pore_110.npy``, DPM Tools, MIT; phase 1 =
  pore): the 110x110 z mid-slice; truths: the 8 corner sub-volumes (overlapping);
* ``blobs``: PoreSpy ``blobs`` (porosity 0.25, blobiness 1.5), a percolating pore network:
  slice from a 128^3 realization (seed 100), truths: the 8 octants of another (seed 1);
* ``aniso``: PoreSpy ``blobs`` (porosity 0.3, blobiness 2, 1 and 0.5 along z, y and x: pores
  correlated over 1:2:4), an anisotropic pore network, made as ``blobs``;
* ``spheres``: PoreSpy ``polydisperse_spheres`` (porosity 0.6 asked, 0.57 made; radii normal
  5 +- 1.5), overlapping spheres in a matrix, made as ``blobs``; phase 0 = grains = the spheres;
* ``deepore``, ``yan``, ``rabbani``: three real sandstones (``../shared/data/README.md``; phase
  1 = pore): the z slice of the top :data:`SLAB` layers' central 128x128 square chosen as above;
  truths: up to :data:`SANDSTONE_TRUTHS` disjoint sub-volumes at least :data:`SLAB` voxels below
  them (the slice is not part of any truth).

Recipes: the presets (``cpu``, ``paper`` with VGG weights), Yeong-Torquato (``yt``), the
default's fitted start alone without the optimizer (``start``) and any settings under trial
(``RECIPES``). Each result records the wall time and its ratio to
Yeong-Torquato's in the same run; with ``--properties`` also the phase's effective diffusivity along each axis
(what the core does in a transport simulation) and its z-score against the true sub-volumes,
not counted among the passing measures. Each truth also records ``slice_implied``: the measures its
input slice fixes by itself (the phase fraction, and the in-plane mean chords of both phases in
windows as wide as the cores), scored against the same spread: a core faithful to its input can
pass no measure its input fails. Mid-slices of each core beside the truth are written to
``docs/images/fidelity3d_<truth>.png``.

Run (tens of minutes on 2 cores for everything; pick with ``--truths`` and ``--recipes``;
results are merged into the existing JSON)::

    pip install -e ".[benchmarks]"   # PoreSpy, for the synthetic truths
    python benchmarks/fidelity3d.py --data ../shared/data --truths sample blobs --recipes default yt

``--seeds 0 1 2`` scores each recipe's cores from several seeds (``by_seed``, ``passing_mean``;
the first seed's core is the one detailed and drawn).
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
from napari_dmcr.descriptors import DescriptorSpec
from napari_dmcr.evaluation.morphology import chord_length_distribution
from napari_dmcr.evaluation.structure import (
    passing,
    percolation,
    structure_measures,
    truth_spread,
    z_scores,
)
from napari_dmcr.io.atomic import write_json
from napari_dmcr.properties.transport import diffusion
from napari_dmcr.reconstruction import run_reconstruction
from napari_dmcr.reconstruction.starts import AUTO_MODELS, fitted_start
from napari_dmcr.samples import conglomerate_volume, representative_index

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "fidelity3d.json"
IMAGES = HERE.parent / "docs" / "images"
SAMPLE_SIDE = 64  # the bundled sample (dmcr sample): a 64^3 volume
SYNTHETIC_SIDE = 128  # PoreSpy truths: a 128x128 slice, true sub-volumes from 128^3
# Real sandstones (../shared/data, axes z, y, x, 1 = pore): the slice is the 128x128 centre of a
# z slice of the top SLAB layers, the truths are sub-volumes beneath, SLAB voxels or more away.
SANDSTONES = {
    "deepore": "deepore_sample_300.npy",
    "yan": "yan2022_sandstone_256.npy",
    "rabbani": "rabbani_pm101_200.npy",
}
SANDSTONE_SLICE = 128
SLAB = 32
SANDSTONE_TRUTHS = 16

# Engine settings under trial, by name; "yt" is Yeong-Torquato.
S3_VF = [DescriptorSpec("s3", limit_to=6, levels=2), DescriptorSpec("vf")]
RECIPES = {
    "default": {"descriptors": "auto"},  # what a user gets: the cpu preset on a CPU
    "cpu": {"descriptors": "cpu"},
    "paper": {"descriptors": "paper"},
    # One start model only (the default picks one by its slices), with the isotropic 3D S2 term:
    "gaussian_iso": {"descriptors": "auto", "start": "gaussian", "isotropic_s2": 1.0},
    "gaussian": {"descriptors": "auto", "start": "gaussian"},
    "spheres": {"descriptors": "auto", "start": "spheres"},
    "packed": {"descriptors": "auto", "start": "packed"},  # asked for by name: auto never packs
    "deposited": {"descriptors": "auto", "start": "deposited"},
    # Shorter polishes of the fitted start:
    "polish_10": {"descriptors": "auto", "max_iter": 10},
    "polish_15": {"descriptors": "auto", "max_iter": 15},
    "polish_30": {"descriptors": "auto", "target_residual": 0.005},  # 30 iterations, no early stop
    # The default before the Gaussian start: a random start, multigrid, 200 iterations per level.
    "random_start": {"descriptors": "auto", "start": "random", "isotropic_s2": 1.0},
    "default_100": {"descriptors": "auto", "start": "random", "isotropic_s2": 1.0, "max_iter": 100},
    # The defaults before the 3D-fidelity work, and one change at a time from them:
    "before": {"descriptors": "cpu", "match": "slices", "isotropic_s2": 0.0, "start": "random"},
    "before_one_level": {
        "descriptors": "cpu",
        "match": "slices",
        "isotropic_s2": 0.0,
        "multigrid_levels": 1,
        "start": "random",
    },
    "before_no_sharpening": {
        "descriptors": "cpu",
        "match": "slices",
        "isotropic_s2": 0.0,
        "sharpen": 0.0,
        "start": "random",
    },
    "before_no_tv": {"descriptors": S3_VF, "match": "slices", "isotropic_s2": 0.0, "start": "random"},
    "volume": {"descriptors": "cpu", "isotropic_s2": 0.0, "start": "random"},
    "volume_no_tv": {"descriptors": S3_VF, "isotropic_s2": 0.0, "start": "random"},
    "filter1_no_tv": {"descriptors": S3_VF, "filter_sigma": 1.0, "isotropic_s2": 0.0, "start": "random"},
    "filter2_no_tv": {"descriptors": S3_VF, "filter_sigma": 2.0, "isotropic_s2": 0.0, "start": "random"},
    "before_iso": {"descriptors": "cpu", "match": "slices", "isotropic_s2": 1.0, "start": "random"},
    "volume_iso": {"descriptors": "cpu", "isotropic_s2": 1.0, "start": "random"},
    "filter1_iso": {"descriptors": "cpu", "isotropic_s2": 1.0, "filter_sigma": 1.0, "start": "random"},
    "filter1_iso_no_tv": {"descriptors": S3_VF, "isotropic_s2": 1.0, "filter_sigma": 1.0, "start": "random"},
}
# Special recipes: "yt" (Yeong-Torquato), "start" (the default's fitted start alone, no optimizer)
# and "start_packed" (the packed start alone).


def _octants(volume, size):
    starts = (0, volume.shape[0] - size)
    return [volume[z : z + size, y : y + size, x : x + size] for z in starts for y in starts for x in starts]


def _slab(volume):
    """The top :data:`SLAB` layers' central ``SANDSTONE_SLICE``-wide square: the z slices a
    sandstone's input slice is chosen from."""
    corner = (volume.shape[1] - SANDSTONE_SLICE) // 2
    return volume[:SLAB, corner : corner + SANDSTONE_SLICE, corner : corner + SANDSTONE_SLICE]


def _below_slab(volume, size):
    """At most :data:`SANDSTONE_TRUTHS` disjoint ``size``^3 sub-volumes at least ``SLAB`` voxels
    below the slab, spread evenly over the tiling."""
    starts = [range(2 * SLAB, volume.shape[0] - size + 1, size)] + [
        range(0, n - size + 1, size) for n in volume.shape[1:]
    ]
    corners = [(z, y, x) for z in starts[0] for y in starts[1] for x in starts[2]]
    chosen = np.unique(np.linspace(0, len(corners) - 1, min(len(corners), SANDSTONE_TRUTHS)).round().astype(int))
    return [volume[z : z + size, y : y + size, x : x + size] for z, y, x in (corners[k] for k in chosen)]


def _orthogonal(volume, phase=None):
    """Slices normal to z, y and x in the engine's orientations: the middle ones, or with
    ``phase`` those whose fraction of it is closest to the volume's."""
    index = [
        representative_index(volume, axis, phase) if phase is not None else volume.shape[axis] // 2 for axis in range(3)
    ]
    return {"z": volume[index[0]], "y": volume[:, index[1]], "x": volume[:, :, index[2]]}


def truths(name, data, size):
    """``(source volume for the slices, true sub-volumes, phase, grains label or None)``."""
    if name == "sample":
        radius = SAMPLE_SIDE / 14  # the sample's clast size, whatever the core's size
        source = conglomerate_volume((SAMPLE_SIDE,) * 3, seed=0)
        return source, [conglomerate_volume((size,) * 3, seed=s, mean_radius=radius) for s in range(1, 9)], 1, 0
    if name == "berea":
        volume = np.load(Path(data) / "berea_dpm_pore_110.npy")
        return volume, _octants(volume, size), 1, None
    if name in SANDSTONES:
        volume = np.load(Path(data) / SANDSTONES[name])
        return _slab(volume), _below_slab(volume, size), 1, None
    import porespy

    side = SYNTHETIC_SIDE
    if name == "blobs":

        def make(seed):
            return porespy.generators.blobs([side] * 3, porosity=0.25, blobiness=1.5, seed=seed)

        # blobs() marks the pore space True; label 1 = pore
        return make(100).astype(np.uint8), _octants(make(1).astype(np.uint8), size), 1, None
    if name == "spheres":
        from scipy import stats

        def make(seed):
            matrix = porespy.generators.polydisperse_spheres(
                [side] * 3, porosity=0.6, dist=stats.norm(loc=5, scale=1.5), r_min=2, seed=seed
            )
            return matrix.astype(np.uint8)  # 1 = matrix (True outside the spheres), 0 = spheres

        return make(100), _octants(make(1), size), 0, 0
    if name == "aniso":

        def make(seed):  # correlation lengths 1:2:4 along z, y, x (PoreSpy: sigma = side / (40 blobiness))
            return porespy.generators.blobs([side] * 3, porosity=0.3, blobiness=[2, 1, 0.5], seed=seed)

        return make(100).astype(np.uint8), _octants(make(1).astype(np.uint8), size), 1, None
    raise SystemExit(f"unknown truth {name!r}")


def reconstruct(recipe, target, size, seed, phase):
    """Labels, wall time and the start model chosen (None for Yeong-Torquato) of one recipe."""
    shape = (size,) * 3
    start = time.perf_counter()
    model = None
    if recipe == "yt":
        labels = run_yeong_torquato(target, shape, phase=phase, seed=seed).labels
    elif recipe in ("start", "start_packed"):
        images = list(target.values()) if isinstance(target, dict) else [target]
        other = next(label for label in np.unique(images[0]) if label != phase)
        models = ("packed",) if recipe == "start_packed" else AUTO_MODELS
        cut, model = fitted_start(images, phase, shape, seed, models=models)
        labels = np.where(cut, phase, other).astype(np.uint8)
    else:
        result = run_reconstruction(target, shape, phase=phase, seed=seed, device="cpu", **RECIPES[recipe])
        labels, model = result.labels, result.parameters.get("start_model")
    return labels, time.perf_counter() - start, model


def slice_implied(image, phase, size, spread):
    """What one input slice fixes by itself, as z-scores against the truth's ``spread``: its
    phase fraction, and its mean chords of either phase along y and x in the ``size``-wide
    windows at its four corners (a chord of a 3D core along y or x lies in one such plane;
    chords cut by a window's border left out, as in the 3D measures)."""
    rows, cols = sorted({0, image.shape[0] - size}), sorted({0, image.shape[1] - size})
    windows = [(image[r : r + size, c : c + size] == phase).astype(np.uint8) for r in rows for c in cols]
    values = {"fraction": float(np.mean(image == phase))}
    for name, part in (("phase", 1), ("other", 0)):
        for axis, axis_name in ((0, "y"), (1, "x")):
            chords = [chord_length_distribution(w, part, axis)["mean_length"] for w in windows]
            values[f"chord_{name}_{axis_name}"] = float(np.nanmean(chords))
    return {key: {"value": value, "z": z_scores({key: value}, spread)[key]} for key, value in values.items()}


def score(labels, spread, truth_percolation, phase, grains):
    measures = structure_measures(labels, phase, grains=grains)
    scores = z_scores(measures, spread)
    good = passing(scores)
    percolates = percolation(labels, phase)
    return {
        "measures": measures,
        "z": scores,
        "passing": len(good),
        "of": len(scores),
        "failing": sorted(set(scores) - set(good)),
        "percolates": percolates,
        "percolation_matches": percolates == truth_percolation,
    }


def _over_seeds(records):
    """Per-seed summaries of a recipe's records (the first seed's record holds the details)."""
    if len(records) == 1:
        return {}
    keys = ("passing", "percolation_matches", "seconds")
    by_seed = {
        str(r["seed"]): {k: r[k] for k in keys}
        | {"diffusivity_z": r.get("diffusivity", {}).get("z"), "start": _start_name(r.get("start_model"))}
        for r in records
    }
    return {"by_seed": by_seed, "passing_mean": float(np.mean([r["passing"] for r in records]))}


def _start_name(choice):
    """The judge's pick, e.g. ``"deposited of 0"`` (None for Yeong-Torquato)."""
    if not choice:
        return None
    return choice["model"] if choice["grains"] is None else f"{choice['model']} of {choice['grains']}"


def phase_diffusivity(labels, phase):
    """What a core does: the phase's effective diffusivity (D_eff / D) along z, y and x."""
    return {axis: float(diffusion(labels, phase, index)["diffusivity"]) for index, axis in enumerate("zyx")}


def mid_slices_figure(path, rows):
    """Rows of (title, volume): z, y and x mid-slices of each, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), 3, figsize=(6.6, 2.3 * len(rows)), squeeze=False)
    for row, (title, volume) in enumerate(rows):
        for col, (axis_name, image) in enumerate(_orthogonal(volume).items()):
            ax = axes[row, col]
            ax.imshow(image, cmap="gray", interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(title, fontsize=8)
            if row == 0:
                ax.set_title(f"normal to {axis_name}", fontsize=8)
    fig.tight_layout()
    tmp = Path(str(path) + ".tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, path)


def run_truth(name, args, results, save):
    source, subvolumes, phase, grains = truths(name, args.data, args.size)
    spread = truth_spread([structure_measures(v, phase, grains=grains) for v in subvolumes])
    counts = np.sum([percolation(v, phase) for v in subvolumes], axis=0)
    truth_percolation = [bool(2 * c >= len(subvolumes)) for c in counts]
    slices = _orthogonal(source, phase)
    entry = results["truths"].setdefault(name, {"recipes": {}})
    entry.update(
        phase=phase,
        grains=grains,
        size=args.size,
        slice_shape=list(source.shape[1:]),
        slice_fraction={axis: float(np.mean(image == phase)) for axis, image in _orthogonal(source, phase).items()},
        truth_spread=spread,
        truth_percolation=truth_percolation,
        truth_percolation_count=[int(c) for c in counts],
        slice_implied=slice_implied(slices["z"], phase, args.size, spread),
    )
    if args.properties:
        entry["truth_diffusivity"] = truth_spread([phase_diffusivity(v, phase) for v in subvolumes])
    rows = [("truth", subvolumes[0])]
    for recipe in args.recipes:
        for mode in args.modes:
            target = slices["z"] if mode == "one" else slices
            key = recipe if mode == "one" else f"{recipe}/three"
            records = []
            for seed in args.seeds:
                labels, seconds, model = reconstruct(recipe, target, args.size, seed, phase)
                record = score(labels, spread, truth_percolation, phase, grains)
                record.update(seconds=seconds, mode=mode, start_model=model, seed=seed)
                if args.properties:  # beside the scored measures, not counted in "passing"
                    value, truth = phase_diffusivity(labels, phase), entry["truth_diffusivity"]
                    z = {axis: (value[axis] - truth[axis]["mean"]) / truth[axis]["sd"] for axis in value}
                    record["diffusivity"] = {"value": value, "z": z}
                records.append(record)
                if len(records) == 1:
                    rows.append((f"{key} ({seconds:.0f} s)", labels))
                print(
                    f"{name} {key} seed {seed}: {record['passing']}/{record['of']} pass, percolates "
                    f"{record['percolates']} (truth {truth_percolation}), {seconds:.0f} s; failing {record['failing']}",
                    flush=True,
                )
            entry["recipes"][key] = dict(records[0], **_over_seeds(records))
            save()
    for key, record in entry["recipes"].items():
        yt = entry["recipes"].get("yt/three" if key.endswith("/three") else "yt", {}).get("seconds")
        record["time_over_yt"] = record["seconds"] / yt if yt else None
    mid_slices_figure(Path(args.images) / f"fidelity3d_{name}.png", rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(HERE.parents[1] / "shared" / "data"))
    parser.add_argument("--truths", nargs="+", default=["sample", "berea", "blobs", "spheres"])
    parser.add_argument("--recipes", nargs="+", default=["default", "yt"])
    parser.add_argument("--modes", nargs="+", default=["one"], choices=["one", "three"])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="the first seed's core is detailed and drawn")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--images", default=str(IMAGES), help="folder of the mid-slice figures")
    parser.add_argument(
        "--properties", action="store_true", help="also the phase's diffusivity against the truth's (not scored)"
    )
    args = parser.parse_args()
    out = Path(args.out)
    results = {"truths": {}}
    if out.exists():
        import json

        results = json.loads(out.read_text())
    results["machine"] = {
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }
    results["pass_z"] = 2.0
    for name in args.truths:
        run_truth(name, args, results, lambda: write_json(out, results))
        write_json(out, results)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
