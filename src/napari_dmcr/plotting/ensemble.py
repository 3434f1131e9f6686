"""The spread of an ensemble: one strip of points per measure and property, scaled by its mean
(measures whose mean can be near 0, as the Euler characteristic, are in ensemble.json only)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

SHOWN = (
    "measures.fraction",
    "measures.largest_cluster",
    "measures.clusters",
    "measures.chord_phase_z",
    "measures.thickness_phase",
    "measures.specific_surface",
    "properties.diffusivity_z",
    "properties.diffusivity_y",
    "properties.diffusivity_x",
    "properties.tortuosity_z",
    "properties.young_modulus_z",
    "properties.young_modulus_y",
    "properties.young_modulus_x",
)


def ensemble_figure(summary):
    """A new figure of :func:`draw_ensemble`, sized to the number of measures."""
    rows = sum(key in summary["statistics"] for key in SHOWN)
    return draw_ensemble(Figure(figsize=(7.0, 0.35 * rows + 1.2), layout="constrained"), summary)


def draw_ensemble(figure, summary):
    """Each realization's value over the ensemble mean, per measure, with mean +- SD as text."""
    keys = [key for key in SHOWN if key in summary["statistics"]]
    ax = figure.add_subplot()
    for row, key in enumerate(keys):
        stats = summary["statistics"][key]
        values = np.array([v[key] for v in summary["values"].values() if v.get(key) is not None], float)
        scale = stats["mean"] if stats["mean"] else 1.0
        ax.plot(values / scale, np.full(values.size, row), "o", ms=4, alpha=0.7, color="C0")
        ax.text(
            1.02,
            row,
            f"{stats['mean']:.3g} +- {stats['sd']:.2g}",
            transform=ax.get_yaxis_transform(),
            va="center",
            fontsize=7,
        )
    ax.axvline(1.0, color="0.6", lw=0.8)
    ax.set_yticks(range(len(keys)), [key.split(".", 1)[1] for key in keys], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("value / ensemble mean")
    ax.set_title(f"{len(summary['realizations'])} realizations", fontsize=9)
    return figure
