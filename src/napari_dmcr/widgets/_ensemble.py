"""The "Ensemble" dock widget: many seeds of one slice on a local Dask cluster, and their spread."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, FileEdit, ProgressBar, PushButton, SpinBox
from napari.layers import Labels

from napari_dmcr.ensembles import SUMMARY, run_ensemble
from napari_dmcr.errors import InputError
from napari_dmcr.plotting.ensemble import draw_ensemble
from napari_dmcr.progress import Cancelled, CancelToken
from napari_dmcr.properties.materials import CHOICES, DEFAULT_MATERIAL
from napari_dmcr.reconstruction.relay import relay
from napari_dmcr.widgets._base import FormWidget
from napari_dmcr.widgets._canvas import ThemedCanvas
from napari_dmcr.widgets._layers import current_slice, label_names, layer_choices


def ensemble_steps(target, shape, out, realizations, workers, properties, cancel):
    """Run :func:`run_ensemble` in a helper thread; yield ``(finished, name)``; return the summary."""

    def work(emit):
        finished = []

        def on_result(name, record, written):
            finished.append(name)
            emit((len(finished), name))

        return run_ensemble(
            [target],
            shape,
            out,
            realizations=realizations,
            options={"device": "cpu"},
            properties=properties,
            workers=workers,
            on_result=on_result,
            cancel=cancel,
        )

    return (yield from relay(work, cancel))


class EnsembleWidget(FormWidget):
    """Reconstruct N seeds of the shown slice as Dask tasks; plot the spread of their measures.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
    """

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        self.summary = None
        self._cancel = None
        self._slice = ComboBox(label="slice (Labels)", choices=lambda _: layer_choices(self.viewer, Labels))
        self._side = SpinBox(label="core side (voxels)", min=8, max=256, step=8, value=32)
        self._realizations = SpinBox(label="realizations (seeds)", min=1, max=1000, value=4)
        self._workers = SpinBox(label="local workers", min=1, max=64, value=2)
        self._properties = CheckBox(text="diffusivity and stiffness of each core", value=True)
        self._material = ComboBox(label="phase moduli", choices=list(CHOICES), value=DEFAULT_MATERIAL)
        self._out = FileEdit(label="output folder", mode="d", value=str(Path.cwd() / "ensemble"))
        self._run_button = PushButton(text="Run ensemble")
        self._cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress = ProgressBar(label="done", min=0, max=1, value=0)
        self.canvas = ThemedCanvas(self.viewer, height_px=360)
        self.lay_out(
            [
                self._slice,
                self._side,
                self._realizations,
                self._workers,
                self._properties,
                self._material,
                self._out,
                self._run_button,
                self._cancel_button,
                self.progress,
            ],
            self.canvas,
        )
        self._run_button.changed.connect(self.run)
        self._cancel_button.changed.connect(self.cancel)

    def run(self, value=None):
        """Start the ensemble in a worker thread; finished cores are on disk as they end."""
        try:
            if self._slice.value is None:
                raise InputError("choose the slice to reconstruct from (a Labels layer)")
            target, _ = current_slice(self._slice.value, self.viewer)
            out = Path(self._out.value)
            if out.name in ("", "."):
                raise InputError("choose an output folder")
        except InputError as error:
            self.status.error(error)
            return
        side = self._side.value
        names = label_names(self._slice.value) or None
        properties = {"material": self._material.value, "label_names": names} if self._properties.value else None
        self._cancel = CancelToken()
        self.progress.max = self._realizations.value
        self.progress.value = 0
        self._cancel_button.enabled = True
        self.status.info(f"starting {self._workers.value} workers for {self._realizations.value} cores ...")
        self.start_worker(
            ensemble_steps,
            np.asarray(target),
            (side, side, side),
            out,
            self._realizations.value,
            self._workers.value,
            properties,
            self._cancel,
            button=self._run_button,
            connect={"yielded": self._on_step, "returned": self._show, "errored": self._on_error},
        )

    def cancel(self, value=None):
        """Stop the pending tasks; the cores already written stay."""
        if self._cancel is not None:
            self._cancel.cancel()
            self.status.info("cancelling: the cores already written are kept ...")

    def _on_step(self, step):
        finished, name = step
        self.progress.value = finished
        self.status.info(f"{finished}/{self.progress.max} cores: {name} written")

    def _show(self, summary):
        self.summary = summary
        self.progress.value = self.progress.max
        self.canvas.paint(lambda figure: draw_ensemble(figure, summary))
        kept = f" ({len(summary['skipped'])} found finished)" if summary["skipped"] else ""
        self.status.info(f"{len(summary['realizations'])} cores{kept}; summary in {SUMMARY}", notify=True)

    def _on_error(self, error):
        if isinstance(error, Cancelled):
            self.status.info("cancelled: the cores already written are kept")
        else:
            self.status.error(error)

    def _on_finished(self, button):
        super()._on_finished(button)
        self._cancel = None
        self._cancel_button.enabled = False
