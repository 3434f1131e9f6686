"""The fidelity report of :func:`napari_dmcr.evaluation.evaluate` on a matplotlib Figure."""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure

# One colour per slicing direction / axis of the reconstruction; the reference is black.
DIRECTION_STYLES = {"z": "tab:blue", "y": "tab:orange", "x": "tab:green", "image": "tab:blue"}
ERROR_COLUMNS = ("z", "y", "x", "image", "all", "3d")


def plot_s2_radial(ax, entry):
    """Radial S2 of the original slice and of the reconstruction's slices per direction."""
    s2 = entry["s2"]
    lags = np.arange(s2["max_lag"] + 1)
    ax.plot(lags, s2["original"]["radial"], "k-", lw=2, label="original")
    for name, curve in s2["reconstruction"]["radial"].items():
        label = f"reconstruction, slices {name}"
        ax.plot(lags, curve, "--", color=DIRECTION_STYLES[name], label=label)
    if "truth" in entry:
        truth = np.mean(list(entry["truth"]["s2"]["truth"]["radial"].values()), axis=0)
        ax.plot(lags, truth, ":", color="grey", lw=2, label="truth (mean of directions)")
    ax.set_xlabel("lag r (voxels)")
    ax.set_ylabel("S2(r)")
    ax.set_title("S2, radial average")
    ax.legend(fontsize="x-small")


def plot_s2_axes(ax, entry):
    """S2 along each axis of the reconstruction against the original's (mean of its two axes)."""
    s2 = entry["s2"]
    lags = np.arange(s2["max_lag"] + 1)
    ax.plot(lags, s2["original"]["axes"], "k-", lw=2, label="original")
    for name, curve in s2["reconstruction"]["axes"].items():
        ax.plot(lags, curve, "--", color=DIRECTION_STYLES[name], label=f"along {name}")
    if "truth" in entry:
        for name, curve in entry["truth"]["s2"]["truth"]["axes"].items():
            ax.plot(lags, curve, ":", color=DIRECTION_STYLES[name], label=f"truth along {name}")
    ax.set_xlabel("lag r (voxels)")
    ax.set_ylabel("S2(r)")
    ax.set_title("S2 along the axes")
    ax.legend(fontsize="x-small", ncol=2)


def plot_lineal_path(ax, entry):
    """Lineal path in the original slice and in the reconstruction's slices per direction."""
    morphology = entry["morphology"]
    reference = morphology["reference"]["lineal_path"]
    lengths = np.arange(reference.size)
    ax.plot(lengths, reference, "k-", lw=2, label="original")
    for name, stats in morphology["candidate"].items():
        color = DIRECTION_STYLES[name]
        ax.plot(lengths, stats["lineal_path"], "--", color=color, label=f"slices {name}")
    ax.set_xlabel("segment length r (voxels)")
    ax.set_ylabel("L(r)")
    ax.set_title("lineal path (not fitted)")
    ax.legend(fontsize="x-small")


def plot_chord_lengths(ax, entry):
    """Chord-length distributions (chords not cut by the border)."""
    morphology = entry["morphology"]
    reference = morphology["reference"]["chord_length"]
    ax.plot(reference["length"], reference["probability"], "k-", lw=2, label="original")
    for name, stats in morphology["candidate"].items():
        chords = stats["chord_length"]
        color = DIRECTION_STYLES[name]
        ax.plot(chords["length"], chords["probability"], "--", color=color, label=f"slices {name}")
    ax.set_xlabel("chord length (voxels)")
    ax.set_ylabel("fraction of chords")
    ax.set_title("chord lengths (not fitted)")
    ax.legend(fontsize="x-small")


def plot_thickness(ax, entry):
    """Cumulative local-thickness (size) distributions: 2D in slices, 3D against a truth."""
    morphology = entry["morphology"]
    reference = morphology["reference"]["thickness"]["fraction"]
    cumulative = np.cumsum(reference)
    ax.step(np.arange(cumulative.size), cumulative, "k-", where="post", lw=2, label="original (2D)")
    for name, stats in morphology["candidate"].items():
        cumulative = np.cumsum(stats["thickness"]["fraction"])
        color = DIRECTION_STYLES[name]
        steps = np.arange(cumulative.size)
        ax.step(steps, cumulative, "--", where="post", color=color, label=f"slices {name}")
    if "truth" in entry:
        truth = entry["truth"]["morphology"]
        curves = (("truth (3D)", "reference", "k:"), ("reconstruction (3D)", "candidate", "r:"))
        for label, key, style in curves:
            sizes = truth[key]["size_distribution"]
            centres = (sizes["bin_edges"][1:] + sizes["bin_edges"][:-1]) / 2
            cumulative = np.cumsum(sizes["fraction"])
            ax.step(centres, cumulative, style, where="post", lw=2, label=label)
    ax.set_xlabel("local thickness t (voxels)")
    ax.set_ylabel("fraction of the phase with thickness <= t")
    ax.set_title("size distribution (not fitted)")
    ax.legend(fontsize="x-small")


def plot_descriptor_gaps(ax, entry):
    """The relative gaps of the fitted descriptors, grouped by descriptor, one bar per direction."""
    gaps = entry["descriptor_gaps"]
    names = list(gaps)
    keys = list(gaps[names[0]])
    width = 0.8 / len(names)
    for index, name in enumerate(names):
        positions = np.arange(len(keys)) + (index - (len(names) - 1) / 2) * width
        values = [gaps[name][key] for key in keys]
        ax.bar(positions, values, width, color=DIRECTION_STYLES[name], label=f"slices {name}")
    ax.set_xticks(range(len(keys)), [f"E_{key}" for key in keys], fontsize="small")
    ax.set_ylabel("relative gap")
    ax.set_title("fitted descriptors: gap to the original")
    ax.legend(fontsize="x-small")


def plot_error_table(ax, errors):
    """The errors of one phase as a table: one row per measure, one column per direction."""
    columns = [c for c in ERROR_COLUMNS if any(c in values for values in errors.values())]
    rows = list(errors)
    cells = [[_format(errors[row].get(column)) for column in columns] for row in rows]
    ax.set_axis_off()
    table = ax.table(cellText=cells, rowLabels=rows, colLabels=columns, loc="center", cellLoc="right")
    table.auto_set_font_size(False)
    table.set_fontsize(7)
    table.scale(1.0, 1.1)
    ax.set_title("errors (see docs/evaluation.md)", fontsize="small")


def draw_report(results, figure=None, phase=None):
    """Draw the fidelity report of one phase onto a matplotlib Figure.

    Parameters
    ----------
    results : dict
        As returned by :func:`napari_dmcr.evaluation.evaluate`.
    figure : matplotlib.figure.Figure, optional
        Figure to draw on (cleared first), e.g. the canvas of a napari widget; a new 18 x 10 inch
        figure by default.
    phase : int, optional
        Label to draw; the first evaluated phase by default.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if figure is None:
        figure = Figure(figsize=(18, 10), layout="constrained")
    figure.clear()
    phase = next(iter(results["phases"])) if phase is None else phase
    entry = results["phases"][phase]
    grid = figure.add_gridspec(2, 4)
    plot_s2_radial(figure.add_subplot(grid[0, 0]), entry)
    plot_s2_axes(figure.add_subplot(grid[0, 1]), entry)
    plot_lineal_path(figure.add_subplot(grid[1, 0]), entry)
    plot_chord_lengths(figure.add_subplot(grid[1, 1]), entry)
    plot_thickness(figure.add_subplot(grid[0, 2]), entry)
    plot_descriptor_gaps(figure.add_subplot(grid[1, 2]), entry)
    plot_error_table(figure.add_subplot(grid[:, 3]), results["errors"][phase])
    fractions = results["fractions"]
    figure.suptitle(
        f"phase {phase}: fraction {fractions['reference'][phase]:.4f} (original) vs "
        f"{fractions['candidate'][phase]:.4f} (reconstruction)"
    )
    return figure


def _format(value):
    if value is None:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    return f"{value:.3g}"
