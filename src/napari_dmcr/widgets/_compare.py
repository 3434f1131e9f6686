"""The "Compare S2" dock widget: an original slice against a reconstruction (and a true volume)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, FileEdit, PushButton
from napari.layers import Image, Labels
from qtpy.QtWidgets import QTableWidget, QTableWidgetItem, QTabWidget

from napari_dmcr.errors import InputError
from napari_dmcr.evaluation import evaluate
from napari_dmcr.io.atomic import write_json
from napari_dmcr.plotting.evaluation import (
    draw_report,
    plot_descriptor_gaps,
    plot_s2_axes,
    plot_s2_radial,
)
from napari_dmcr.properties.materials import CHOICES, DEFAULT_MATERIAL
from napari_dmcr.properties.summary import AXES
from napari_dmcr.widgets._base import FormWidget
from napari_dmcr.widgets._canvas import ThemedCanvas
from napari_dmcr.widgets._layers import (
    current_slice,
    default_phase,
    label_names,
    layer_choices,
    otsu_threshold,
    phase_title,
    threshold,
)

PROPERTY_ROWS = ("diffusivity", "tortuosity", "young_modulus")
# Columns of the numbers table, in this order when present.
DIRECTIONS = ("z", "y", "x", "image", "all", "3d")


class CompareWidget(FormWidget):
    """S2 per axis and radial, phase fractions and descriptor gaps of a reconstruction.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
    """

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        self.results = None
        self._report_images = None  # the images behind self.results
        self._original = ComboBox(label="original slice", choices=lambda _: layer_choices(self.viewer))
        self._reconstruction = ComboBox(label="reconstruction", choices=lambda _: layer_choices(self.viewer, Labels))
        self._truth = ComboBox(
            label="true volume (optional)",
            choices=lambda _: layer_choices(self.viewer, Labels),
            nullable=True,
        )
        self._phase = ComboBox(label="phase", choices=self._phase_choices)
        self._periodic = CheckBox(text="reconstruction is periodic", value=True)
        self._properties = CheckBox(text="diffusivity, tortuosity and stiffness (3D)", value=False)
        self._material = ComboBox(label="phase moduli", choices=list(CHOICES), value=DEFAULT_MATERIAL)
        self._compare_button = PushButton(text="Compare")
        self._report_path = FileEdit(label="report (PNG + JSON)", mode="w", filter="*.png")
        self._save_button = PushButton(text="Save report", enabled=False)
        self.canvas = ThemedCanvas(self.viewer, height_px=340)
        self.table = QTableWidget()
        # Plots and numbers in tabs, not stacked: each keeps a readable height.
        self._tabs = QTabWidget()
        self._tabs.addTab(self.canvas, "plots")
        self._tabs.addTab(self.table, "numbers")
        self.properties_table = QTableWidget()
        self._tabs.addTab(self.properties_table, "properties")
        self.lay_out(
            [
                self._original,
                self._reconstruction,
                self._truth,
                self._phase,
                self._periodic,
                self._properties,
                self._material,
                self._compare_button,
                self._report_path,
                self._save_button,
            ],
            self._tabs,
        )
        self._truth.value = None
        self._original.changed.connect(self._refresh_phases)
        self._compare_button.changed.connect(self.compare)
        self._save_button.changed.connect(self.save_report)
        self.reset_choices()
        self._refresh_phases()

    def _original_slice(self):
        layer = self._original.value
        image, _ = current_slice(layer, self.viewer)
        if isinstance(layer, Image):
            value = otsu_threshold(image)
            if value is None:
                raise InputError(f"layer {layer.name!r} has a single grey value; there is nothing to compare")
            image = threshold(image, value)
        return image

    def _phase_choices(self, widget=None):
        try:
            labels = np.unique(self._original_slice()).tolist()
        except InputError:
            return []
        names = label_names(self._original.value)
        return [(phase_title(label, names), label) for label in labels]

    def _refresh_phases(self, value=None):
        self._phase.reset_choices()
        labels = [label for _, label in self._phase_choices()]
        if labels:
            self._phase.value = default_phase(labels, label_names(self._original.value), [self._original_slice()])

    def compare(self, value=None):
        """Evaluate the reconstruction against the original slice in a worker; show the figures."""
        try:
            original = self._original_slice()
            reconstruction = self._reconstruction.value
            if reconstruction is None:
                raise InputError("choose the reconstruction (a Labels layer)")
            phase = self._phase.value
            if phase is None or phase not in np.unique(original):
                raise InputError("choose a phase of the original slice")
            properties = None
            if self._properties.value:
                if reconstruction.ndim != 3:
                    raise InputError("properties are measured on a 3D reconstruction")
                names = label_names(self._reconstruction.value) or label_names(self._original.value)
                properties = {"phase": phase, "material": self._material.value, "device": "cpu", "label_names": names}
        except InputError as error:
            self.status.error(error)
            return
        truth = None if self._truth.value is None else np.asarray(self._truth.value.data)
        # What was compared, for the saved report's mid-slices (the layers may change meanwhile).
        volume = np.asarray(reconstruction.data)
        images = {"original": original, "reconstruction": volume, "truth": truth}
        self.status.info("comparing ...")
        self.start_worker(
            evaluate,
            original,
            volume,
            truth,
            phases=[phase],
            periodic=self._periodic.value,
            properties=properties,
            button=self._compare_button,
            connect={"returned": lambda results: self._show_results(results, images), "errored": self.status.error},
        )

    def _show_results(self, results, images):
        self.results = results
        self._report_images = images
        phase = next(iter(results["phases"]))
        entry = results["phases"][phase]

        def paint(figure):
            axes = figure.subplots(3, 1)
            plot_s2_radial(axes[0], entry)
            plot_s2_axes(axes[1], entry)
            plot_descriptor_gaps(axes[2], entry)

        self.canvas.paint(paint)
        self._fill_table(results, phase)
        self._fill_properties(results.get("properties"))
        self._save_button.enabled = True
        fractions = results["fractions"]
        self.status.info(
            f"phase {phase}: fraction {fractions['reference'][phase]:.4f} (original) vs "
            f"{fractions['candidate'][phase]:.4f} (reconstruction)"
        )

    def _fill_table(self, results, phase):
        errors = results["errors"][phase]
        columns = [c for c in DIRECTIONS if any(c in values for values in errors.values())]
        self.table.clear()
        self.table.setRowCount(len(errors))
        self.table.setColumnCount(len(columns))
        self.table.setHorizontalHeaderLabels(columns)
        self.table.setVerticalHeaderLabels(list(errors))
        for row, values in enumerate(errors.values()):
            for column, direction in enumerate(columns):
                value = values.get(direction)
                text = "" if value is None else ("n/a" if math.isnan(value) else f"{value:.3g}")
                self.table.setItem(row, column, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()

    def _fill_properties(self, compared):
        """Rows: each property of the reconstruction, the truth and their relative difference."""
        self.properties_table.clear()
        if compared is None:
            self.properties_table.setRowCount(0)
            return
        rows = [
            (f"{key} ({source})", values)
            for source, entry in compared.items()
            for key, values in (entry.items() if source == "differences" else ((k, entry[k]) for k in PROPERTY_ROWS))
        ]
        self.properties_table.setRowCount(len(rows))
        self.properties_table.setColumnCount(3)
        self.properties_table.setHorizontalHeaderLabels(list(AXES))
        self.properties_table.setVerticalHeaderLabels([name for name, _ in rows])
        for row, (name, values) in enumerate(rows):
            for column, value in enumerate(values):
                relative = name.endswith("(differences)")
                text = "n/a" if value is None else (f"{value:+.1%}" if relative else f"{value:.4g}")
                self.properties_table.setItem(row, column, QTableWidgetItem(text))
        self.properties_table.resizeColumnsToContents()

    def save_report(self, value=None):
        """Write the full report figure (PNG) and every number (JSON, same name)."""
        if self.results is None:
            self.status.error(InputError("run Compare first"))
            return
        path = Path(self._report_path.value)
        if path.name in ("", ".") or path.is_dir():
            self.status.error(InputError("choose a file name for the report"))
            return
        png, report = path.with_suffix(".png"), path.with_suffix(".json")
        phase = next(iter(self.results["phases"]))
        figure = draw_report(self.results, phase=phase, **self._report_images)
        try:
            figure.savefig(png, dpi=100)
            write_json(report, self.results)
        except OSError as error:
            self.status.error(InputError(f"cannot write the report: {error}"))
            return
        self.status.info(f"saved {png.name} and {report.name} in {png.parent}", notify=True)
