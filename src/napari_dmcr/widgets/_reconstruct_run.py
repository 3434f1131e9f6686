"""The run part of the "Reconstruct 3D" widget: one engine run in a worker thread, shown live.

The work is done by :func:`napari_dmcr.reconstruction.reconstruct` (differentiable) or
:func:`napari_dmcr.baselines.yeong_torquato.yeong_torquato`; this part starts it with the
widget's settings, shows the steps it reports, and adds its result to the viewer.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass

import numpy as np
from napari.qt.threading import create_worker
from napari.utils import cancelable_progress
from qtpy.QtCore import QTimer

from napari_dmcr.errors import DeviceMemoryError, InputError
from napari_dmcr.evaluation.views import orthogonal_mid_slices
from napari_dmcr.progress import CancelToken
from napari_dmcr.reconstruction.cost import CONFIRM_S, run_chunk_size
from napari_dmcr.reconstruction.schedule import planned_total
from napari_dmcr.widgets._base import in_background
from napari_dmcr.widgets._layers import label_names
from napari_dmcr.widgets._reconstruct_settings import DIFFERENTIABLE, YEONG_TORQUATO

MID_SLICES_DELAY_MS = 100  # after the result layer: its redraw first, then the mid-slices
FITTED_PLOT_DELAY_MS = 300  # then the loss plot of every iteration, fitted to its curves
PLOT_AFTER_VOLUME_MS = 60  # a step's loss plot after its volume has been redrawn


@dataclass
class RunRequest:
    """Everything one run needs, gathered from the widget before the worker starts."""

    method: str
    target: object
    shape: tuple
    options: dict
    scale: tuple
    source_names: list
    label_names: dict
    device: str
    planned: int  # the progress total the engine will report
    chunk_size: int | None = None
    live_layer_name: str = ""
    beside: tuple = (0.0, 0.0, 0.0)  # translation (z, y, x) that puts the core beside the input slice


def _run_engine(engine, *args, **kwargs):
    """Drive an engine generator in the worker thread and return its result.

    ``yeong_torquato`` checks its settings when called and ``reconstruct`` when first advanced;
    wrapping both in one generator function moves every check into the worker, where napari's
    worker reports errors through its ``errored`` signal.
    """
    return (yield from engine(*args, **kwargs))


class _ActivityProgress(cancelable_progress):
    """napari's activity-dock bar whose Cancel button asks the running engine to stop."""

    def __init__(self, on_cancel, **kwargs):
        super().__init__(**kwargs)
        self._on_cancel = on_cancel

    def cancel(self):
        super().cancel()
        self._on_cancel()


class RunMixin:
    """Run, cancel and retry for :class:`~napari_dmcr.widgets._reconstruct.ReconstructWidget`.

    Uses the input and settings parts for the request, and the widget's buttons, progress bar,
    ``status``, ``_losses`` (loss plot), ``_live`` (live volume) and ``_tabs``.
    """

    def _gather_request(self):
        target, pixel_size, labels = self._target()
        phase = self._chosen_phase(labels)
        device = self._run_device()
        shape = tuple(int(box.value) for box in self._shape)
        sources = [layer.name for layer in self._sources()]
        options = {"phase": phase, "seed": self._seed.value, "preview_interval_s": self._preview_interval.value}
        if self._method.value == DIFFERENTIABLE:
            options.update(
                descriptors=self._specs(),
                direction_weights=tuple(box.value for box in self._direction_weights),
                max_iter=self._iterations.value,
                multigrid_levels=self._levels.value or None,
                start=self._start_choice.value,
                device=device,
                chunk_size=self._chunk.value or None,
            )
            planned = planned_total(target, shape, options["max_iter"], options["multigrid_levels"], options["start"])
        else:
            options["max_swaps"] = planned = self._iterations.value * int(np.prod(shape))
        return RunRequest(
            method=self._method.value,
            target=target,
            shape=shape,
            options=options,
            scale=(pixel_size[0], pixel_size[0], pixel_size[1]),
            beside=(0.0, 0.0, 1.1 * self._sources()[0].extent.world[1][-1]),
            source_names=sources,
            label_names=label_names(self._sources()[0]),
            device=device,
            planned=planned,
            chunk_size=options.get("chunk_size"),
            live_layer_name=f"{sources[0]} reconstruction (live)",
        )

    def run(self, value=None):
        """Start a reconstruction in a worker thread with the widget's settings."""
        if self._worker is not None:
            return
        self._hide_retry()
        try:
            request = self._gather_request()
        except InputError as error:
            self.status.error(error)
            return
        if self._asks_to_confirm():
            return
        self._start(request)

    def _asks_to_confirm(self):
        """A run estimated beyond CONFIRM_S starts on the second press of Run (until a setting changes)."""
        seconds = self._estimated_seconds()
        if seconds > CONFIRM_S and not self._long_run_confirmed:
            self._long_run_confirmed = True
            self.status.info(
                f"this run is estimated at {seconds / 60:.0f} min: press Run again to start it, "
                "or make the output smaller",
                notify=True,
            )
            return True
        self._long_run_confirmed = False
        return False

    def _start(self, request):
        # Looked up at each run, so that an engine replaced in the package (as tests do) is the one that runs.
        from napari_dmcr.baselines.yeong_torquato import yeong_torquato
        from napari_dmcr.reconstruction import reconstruct

        engine = reconstruct if request.method == DIFFERENTIABLE else yeong_torquato
        self.status.dismiss()
        if request.method == DIFFERENTIABLE and request.device == "cpu":
            _leave_a_core_for_the_viewer()
        self._request = request
        self._cancel_token = CancelToken()
        self._losses.reset(swaps=request.method == YEONG_TORQUATO)
        self._live.reset()
        self._live.prepare(request)
        self._last_refresh = -float("inf")
        self._worker = create_worker(
            in_background(_run_engine),  # the viewer's thread draws first on a shared core
            engine,
            request.target,
            request.shape,
            cancel=self._cancel_token,
            **request.options,
            _start_thread=False,
            _connect={"errored": self._on_run_error},
        )
        self._worker.yielded.connect(self._on_step)
        self._worker.returned.connect(self._on_result)
        self._worker.finished.connect(self._on_run_finished)
        self._run_button.enabled = False
        self._cancel_button.enabled = True
        self._progress_bar.setValue(0)
        self.status.info(f"running {request.method} reconstruction of {'x'.join(map(str, request.shape))} ...")
        # Busy (no total) in napari's activity dock, with its Cancel button: updating that bar
        # processes the event queue and redraws the viewer on the spot, 0.1-0.4 s a step on a
        # CPU; the numbers are in the widget's own bar.
        self._activity = _ActivityProgress(self.cancel, total=0, desc="DMCR reconstruction")
        self._progress_bar.setFormat(f"starting ... ({request.planned} iterations planned)")
        # The viewer's objects leave the collector's sight for the run: a full collection over
        # them holds the GIL for 0.1-0.8 s, a frozen viewer on either thread (viewer.json).
        gc.freeze()
        self._tabs.setCurrentWidget(self.loss_canvas)
        self._worker.start()

    def cancel(self, value=None):
        """Ask the running engine to stop; it keeps its last state and returns it."""
        if self._cancel_token is not None and self._worker is not None:
            self._cancel_token.cancel()
            self._cancel_button.enabled = False
            self.status.info("cancelling: the run stops after the current iteration ...")

    def _on_step(self, step):
        # Whatever processes events while a step is shown (a notification) can re-enter this
        # handler with the next queued step: the outermost call shows only the newest one.
        self._pending_step = step
        if self._showing_step:
            return
        self._showing_step = True
        try:
            while self._pending_step is not None:
                step, self._pending_step = self._pending_step, None
                self._show_step(step)
        finally:
            self._showing_step = False

    def _show_step(self, step):
        request = self._request
        if step.stage != "done":
            self._losses.add(step.iteration, step.losses)
        if self._worker is not None:
            self._progress_bar.setValue(int(1000 * step.fraction_done))
            self._progress_bar.setFormat(f"{step.stage}: {step.iteration}/{step.total}  ({step.elapsed:.0f} s)")
        # The heavy part (layer data and the loss plot, which the viewer then redraws) at most
        # once per preview interval of wall time, so the viewer keeps drawing.
        now = time.perf_counter()
        if step.stage != "done" and now - self._last_refresh < self._preview_interval.value:
            return
        self._last_refresh = now
        if step.stage != "done":  # the finished run's plot follows, fitted (_on_result)
            if step.volume is None:
                self._losses.refresh()
            else:  # the volume's redraw and the plot's in turns of their own: two shorter blocks
                self._later(PLOT_AFTER_VOLUME_MS, self._losses.refresh)
        if step.volume is not None:
            self._live.show(step.volume, request)

    def _on_result(self, result):
        request = self._request
        self.last_result = result
        summary = {**result.record(), "sources": request.source_names}
        summary.pop("history", None)  # every iteration: in the loss plot, too long for layer metadata
        quality = result.quality()
        if request.method == DIFFERENTIABLE:
            history = [(i, {**entry["errors"], "total": entry["loss"]}) for i, entry in enumerate(result.history, 1)]
            self._later(FITTED_PLOT_DELAY_MS, lambda: self._losses.replace(history))  # a full redraw, on its own
        name = f"{request.source_names[0]} reconstruction" + (" (cancelled)" if result.cancelled else "")
        metadata = {"dmcr": summary}
        if request.label_names:
            metadata["label_names"] = {str(k): v for k, v in request.label_names.items()}
        if request.live_layer_name in self.viewer.layers:
            self.viewer.layers[request.live_layer_name].visible = False
        # Added hidden and shown a turn later: making the layer and drawing it are two shorter
        # blocks of the viewer's thread instead of one.
        layer = self.viewer.add_labels(
            result.labels, name=name, scale=request.scale, metadata=metadata, translate=request.beside, visible=False
        )
        layer.new_colormap()  # not the input's colours: the core reads as a result, not as the slice
        self._later(0, lambda: setattr(layer, "visible", True))
        state = "cancelled; kept the last state" if result.cancelled else "done"
        self.status.info(f"{state}: {name}, {quality}", notify=True)
        # The mid-slices a little later: one long block of main-thread work (layers added and
        # drawn) becomes two shorter ones with a redraw between them.
        self._later(MID_SLICES_DELAY_MS, lambda: self._show_mid_slices(result.labels, name, request.scale, layer))

    def _later(self, ms, action):
        """Run ``action`` after ``ms`` on a timer of the widget's own: closed with the widget, it
        never fires into a closed viewer."""
        timer = QTimer(self)
        timer.setSingleShot(True)
        timer.timeout.connect(action)
        timer.timeout.connect(timer.deleteLater)
        timer.start(ms)

    def _show_mid_slices(self, labels, name, scale, layer):
        if labels.ndim == 3 and self._sources():
            # Its mid-slices under the input slice, in the same colours as the core: the QA view.
            below = (1.1 * self._sources()[0].extent.world[1][-2], 0.0)
            self.viewer.add_labels(
                orthogonal_mid_slices(labels), name=f"{name} mid-slices (z | y | x)",
                scale=scale[1:], translate=below, colormap=layer.colormap,
            )  # fmt: skip

    def _on_run_error(self, error):
        self.status.error(error)
        self._progress_bar.setFormat("failed")
        if isinstance(error, DeviceMemoryError):
            self._retry_chunk_button.visible = True
            self._retry_cpu_button.visible = True

    def _on_run_finished(self):
        gc.unfreeze()
        activity, self._activity = self._activity, None
        self._worker = None
        self._cancel_token = None
        self._run_button.enabled = True
        self._cancel_button.enabled = False
        if self.last_result is None:
            self._progress_bar.setFormat("idle")
        elif self._progress_bar.format() != "failed":
            self._progress_bar.setValue(self._progress_bar.maximum())
            self._progress_bar.setFormat("cancelled" if self.last_result.cancelled else "done")
        _release_device_memory()
        if activity is not None:
            activity.close()

    def _hide_retry(self):
        self._retry_chunk_button.visible = False
        self._retry_cpu_button.visible = False

    def _retry_smaller_chunks(self, value=None):
        request = self._request
        self._chunk.value = max(1, run_chunk_size(self._specs(), request.shape, request.chunk_size) // 2)
        self.run()

    def _retry_on_cpu(self, value=None):
        self._device.value = "cpu"
        self.run()

    def _on_layer_removed(self, event):
        if self._worker is not None and self._request is not None and event.value.name in self._request.source_names:
            self.status.info(
                f"input layer {event.value.name!r} was removed; the run goes on with the slice it started from"
            )


def _leave_a_core_for_the_viewer():
    """A run takes the free cores but one, so that the viewer keeps redrawing (:mod:`napari_dmcr.threads`)."""
    from napari_dmcr.threads import use_threads

    use_threads(reserve=1)


def _release_device_memory():
    """Give cached GPU memory back after a run (PyTorch keeps it in a long-lived process)."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
