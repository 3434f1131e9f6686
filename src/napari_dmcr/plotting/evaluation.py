"""The fidelity report of :func:`napari_dmcr.evaluation.evaluate` on a matplotlib Figure."""

from __future__ import annotations

import math

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

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


def mid_slice_views(original=None, reconstruction=None, truth=None):
    """What the report shows of the volumes: ``[(title, image), ...]``.

    With a truth, the z, y and x middle slices of the truth and of the reconstruction in pairs;
    otherwise the original slice, then the reconstruction's middle slices (or the reconstructed
    image, for a 2D reconstruction). Empty without a reconstruction.
    """
    if reconstruction is None:
        return []
    reconstruction = np.asarray(reconstruction)
    if reconstruction.ndim == 2:
        recon_views = [("reconstruction", reconstruction)]
    else:
        recon_views = [(f"reconstruction, {name}", image) for name, image in _mid_slices(reconstruction)]
    if truth is None:
        return ([] if original is None else [("original slice", np.asarray(original))]) + recon_views
    truth_views = [(f"truth, {name}", image) for name, image in _mid_slices(np.asarray(truth))]
    return [view for pair in zip(truth_views, recon_views, strict=True) for view in pair]


def plot_label_images(axes, views, phase=None):
    """Labeled images side by side: one colour per label in every image, at one voxel scale
    (a smaller volume shows smaller), with a legend of the labels on the last."""
    labels = np.unique(np.concatenate([np.unique(image) for _, image in views]))
    colours = colormaps["tab10"].colors
    cmap = ListedColormap([colours[i % len(colours)] for i in range(labels.size)])
    height = max(image.shape[0] for _, image in views)
    width = max(image.shape[1] for _, image in views)
    for ax, (title, image) in zip(axes, views, strict=True):
        ax.imshow(
            np.searchsorted(labels, image), cmap=cmap, vmin=0, vmax=max(labels.size - 1, 1), interpolation="nearest"
        )
        ax.set_xlim(-0.5, width - 0.5)
        ax.set_ylim(height - 0.5, -0.5)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{title}\n{image.shape[0]} x {image.shape[1]}", fontsize="small")
    handles = [
        Patch(color=cmap(i), label=f"label {label}" + (" (this phase)" if label == phase else ""))
        for i, label in enumerate(labels)
    ]
    axes[-1].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="x-small", frameon=False)


def draw_report(results, figure=None, phase=None, *, original=None, reconstruction=None, truth=None):
    """Draw the fidelity report of one phase onto a matplotlib Figure.

    Parameters
    ----------
    results : dict
        As returned by :func:`napari_dmcr.evaluation.evaluate`.
    figure : matplotlib.figure.Figure, optional
        Figure to draw on (cleared first), e.g. the canvas of a napari widget; a new 18 x 10 inch
        figure by default (18 x 14 with the images).
    phase : int, optional
        Label to draw; the first evaluated phase by default.
    original, reconstruction, truth : array_like of int, optional
        The images that were evaluated: given the reconstruction, a row of its middle slices beside
        the truth's (or beside the original slice without a truth), see :func:`mid_slice_views`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    views = mid_slice_views(original, reconstruction, truth)
    if figure is None:
        figure = Figure(figsize=(18, 14 if views else 10), layout="constrained")
    figure.clear()
    phase = next(iter(results["phases"])) if phase is None else phase
    entry = results["phases"][phase]
    grid = figure.add_gridspec(3, 4, height_ratios=(1, 1, 0.75)) if views else figure.add_gridspec(2, 4)
    plot_s2_radial(figure.add_subplot(grid[0, 0]), entry)
    plot_s2_axes(figure.add_subplot(grid[0, 1]), entry)
    plot_lineal_path(figure.add_subplot(grid[1, 0]), entry)
    plot_chord_lengths(figure.add_subplot(grid[1, 1]), entry)
    plot_thickness(figure.add_subplot(grid[0, 2]), entry)
    plot_descriptor_gaps(figure.add_subplot(grid[1, 2]), entry)
    plot_error_table(figure.add_subplot(grid[:2, 3]), results["errors"][phase])
    if views:
        row = grid[2, :].subgridspec(1, len(views))
        plot_label_images([figure.add_subplot(row[0, i]) for i in range(len(views))], views, phase)
    fractions = results["fractions"]
    figure.suptitle(
        f"phase {phase}: fraction {fractions['reference'][phase]:.4f} (original) vs "
        f"{fractions['candidate'][phase]:.4f} (reconstruction)"
    )
    return figure


def _mid_slices(volume):
    """``(name, image)`` of the middle slices normal to z, y and x (as
    :func:`napari_dmcr.evaluation.views.orthogonal_mid_slices` cuts them)."""
    z, y, x = volume.shape
    return [
        (f"z = {z // 2}", volume[z // 2]),
        (f"y = {y // 2}", volume[:, y // 2]),
        (f"x = {x // 2}", volume[:, :, x // 2]),
    ]


def _format(value):
    if value is None:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    return f"{value:.3g}"
