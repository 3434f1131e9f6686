"""Plots of a characterization on matplotlib axes (used by the command line and the widgets)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from napari_dmcr.descriptors.gram import GRAM_LAYERS


def plot_s2(ax, entry):
    """S2 radial average and per-axis profiles against the lag."""
    lags = np.arange(entry["s2_radial"].size)
    ax.plot(lags, entry["s2_radial"], "k-", label="radial")
    ax.plot(lags, entry["s2_axes"][0], "--", label="axis 0 (rows)")
    ax.plot(lags, entry["s2_axes"][1], ":", label="axis 1 (columns)")
    ax.axhline(entry["volume_fraction"] ** 2, color="grey", lw=0.8, label=r"$\phi^2$")
    ax.set_xlabel("lag r (pixels)")
    ax.set_ylabel("S2(r)")
    ax.set_title("two-point correlation")
    ax.legend(fontsize="small")


def plot_s3(ax, entry, level=0):
    """The S3 matrix over the displacement set (row/column = vector index)."""
    image = ax.imshow(entry["s3"][level], cmap="viridis")
    ax.set_title(f"S3 (level {level})")
    ax.set_xlabel("vector index b")
    ax.set_ylabel("vector index a")
    ax.figure.colorbar(image, ax=ax, fraction=0.046)


def plot_gram_summary(ax, entry):
    """Per VGG layer: the Frobenius norm of the Gram matrix normalized by its size."""
    norms = [np.linalg.norm(entry["gram"][layer]) / entry["gram"][layer].shape[0] for layer in GRAM_LAYERS]
    ax.bar(range(len(GRAM_LAYERS)), norms)
    ax.set_xticks(range(len(GRAM_LAYERS)), GRAM_LAYERS, rotation=30, fontsize="small")
    ax.set_yscale("log")
    ax.set_title("Gram matrices: ||G||_F / C")


def plot_scalars(ax, entry):
    """Volume fraction and normalized total variation."""
    ax.bar(["volume fraction", "total variation"], [entry["volume_fraction"], entry["tv"]])
    ax.set_ylim(0, 1)
    ax.set_title("scalars")


def characterization_figure(characterization, phase, figure=None):
    """A 2x2 figure of one phase: S2, S3, Gram summary (if computed) and scalars."""
    figure = Figure(figsize=(10, 8), layout="constrained") if figure is None else figure
    entry = characterization["phases"][phase]
    axes = figure.subplots(2, 2)
    plot_s2(axes[0, 0], entry)
    plot_s3(axes[0, 1], entry)
    if "gram" in entry:
        plot_gram_summary(axes[1, 0], entry)
    else:
        axes[1, 0].set_axis_off()
        axes[1, 0].text(0.5, 0.5, "Gram matrices not computed", ha="center", va="center")
    plot_scalars(axes[1, 1], entry)
    figure.suptitle(f"phase {phase}")
    return figure
