"""The "Reconstruct 3D" dock widget: characterize a segmented slice and reconstruct a volume live.

The widget only gathers settings and layers and shows what the engines report; the work is done
by :func:`napari_dmcr.reconstruction.reconstruct` (differentiable) or
:func:`napari_dmcr.baselines.yeong_torquato.yeong_torquato` in a napari worker thread.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, PushButton, SpinBox
from napari.layers import Image
from napari.qt.threading import create_worker
from napari.utils import cancelable_progress
from qtpy.QtWidgets import QProgressBar, QTabWidget, QWidget

from napari_dmcr.baselines.annealing_settings import SWAPS_PER_VOXEL
from napari_dmcr.descriptors import PRESETS, characterize, preset
from napari_dmcr.errors import DeviceMemoryError, InputError
from napari_dmcr.evaluation.views import orthogonal_mid_slices
from napari_dmcr.plotting.descriptors import plot_gram_summary, plot_s2, plot_s3, plot_scalars
from napari_dmcr.progress import CancelToken
from napari_dmcr.reconstruction import (
    MAX_ITER,
    default_chunk_size,
    estimate_run,
    largest_fitting_side,
    make_target,
    planned_iterations,
    resolve_device,
    resolved_start,
    schedule,
)
from napari_dmcr.reconstruction.cost import CONFIRM_S, DEFAULT_RUN_S
from napari_dmcr.widgets._body import scrolling_body
from napari_dmcr.widgets._canvas import ThemedCanvas
from napari_dmcr.widgets._layers import (
    current_slice,
    default_phase,
    label_names,
    layer_choices,
    needs_threshold,
    otsu_threshold,
    phase_title,
    threshold,
    two_valued_labels,
)
from napari_dmcr.widgets._live import DESCRIPTOR_TITLES, LiveVolume, LossPlot
from napari_dmcr.widgets._messages import StatusLine

ONE_SLICE = "one slice"
ORTHOGONAL = "three orthogonal slices"
DIFFERENTIABLE = "differentiable"
YEONG_TORQUATO = "yeong-torquato"
# Descriptors whose weight the user may set (the union of the presets).
WEIGHTED_DESCRIPTORS = tuple(dict.fromkeys(spec.name for specs in PRESETS.values() for spec in specs))


def _run_engine(start, *args, **kwargs):
    """Drive an engine generator in the worker thread and return its result.

    ``yeong_torquato`` checks its settings when called and ``reconstruct`` when first advanced;
    wrapping both in one generator function moves every check into the worker, where napari's
    worker reports errors through its ``errored`` signal.
    """
    return (yield from start(*args, **kwargs))


class _ActivityProgress(cancelable_progress):
    """napari's activity-dock bar whose Cancel button asks the running engine to stop."""

    def __init__(self, on_cancel, **kwargs):
        super().__init__(**kwargs)
        self._on_cancel = on_cancel

    def cancel(self):
        super().cancel()
        self._on_cancel()


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
    chunk_size: int | None = None
    live_layer_name: str = ""
    beside: tuple = (0.0, 0.0, 0.0)  # translation (z, y, x) that puts the core beside the input slice


class ReconstructWidget(QWidget):
    """Characterize a segmented 2D slice and reconstruct a statistically equivalent 3D volume.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        The viewer (napari passes it when the widget is opened from the Plugins menu).
    """

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.characterization = None
        self.last_result = None
        self._worker = None
        self._characterize_worker = None
        self._cancel_token = None
        self._request = None
        self._activity = None
        self._pending_step = None
        self._showing_step = False
        self._last_refresh = -float("inf")
        self._long_run_confirmed = False
        self._threshold_source = None

        self._build_input()
        self._build_settings()
        self._build_actions()
        parts = (self._input.native, self._actions.native, self._progress_bar, self.status.native, self._tabs)
        scrolling_body(self, *parts)

        self.viewer.layers.events.removed.connect(self._on_layer_removed)
        self.viewer.dims.events.current_step.connect(self._on_slice_changed)
        self.reset_choices()
        self._on_method_changed()
        self._on_source_changed()

    # --- building -------------------------------------------------------------------------

    def _build_input(self):
        def slice_layers(_):
            return layer_choices(self.viewer)

        self._mode = ComboBox(label="input", choices=[ONE_SLICE, ORTHOGONAL], value=ONE_SLICE)
        self._source = ComboBox(label="slice", choices=slice_layers)
        self._source_x = ComboBox(label="slice normal to x (z, y)", choices=slice_layers)
        self._source_y = ComboBox(label="slice normal to y (z, x)", choices=slice_layers)
        self._source_z = ComboBox(label="slice normal to z (y, x)", choices=slice_layers)
        self._threshold = FloatSpinBox(label="threshold", min=-1e12, max=1e12, step=0.01)
        self._threshold.native.setDecimals(4)
        self._otsu = PushButton(text="Otsu")
        self._threshold_preview = CheckBox(text="preview threshold")
        self._threshold_row = Container(
            layout="horizontal",
            labels=False,
            label="threshold (grey images)",
            widgets=[self._threshold, self._otsu, self._threshold_preview],
        )
        self._phase = ComboBox(label="phase of interest", choices=self._phase_choices)
        self._input = Container(
            widgets=[
                self._mode,
                self._source,
                self._source_x,
                self._source_y,
                self._source_z,
                self._threshold_row,
                self._phase,
            ]
        )
        self._mode.changed.connect(self._on_source_changed)
        for combo in (self._source, self._source_x, self._source_y, self._source_z):
            combo.changed.connect(self._on_source_changed)
        self._otsu.changed.connect(self._set_otsu_threshold)
        self._threshold.changed.connect(self._on_threshold_changed)
        self._threshold_preview.changed.connect(self._on_threshold_changed)

    def _build_settings(self):
        self._shape = [SpinBox(min=4, max=2048, value=64) for _ in range(3)]
        self._shape_row = Container(layout="horizontal", labels=False, label="output (z, y, x)", widgets=self._shape)
        self._estimate = StatusLine()
        self._method = ComboBox(
            label="method",
            choices=[
                ("differentiable (DMCR)", DIFFERENTIABLE),
                ("Yeong-Torquato annealing", YEONG_TORQUATO),
            ],
            value=DIFFERENTIABLE,
        )
        # The Gram matrices need a VGG-19 pass per slice: only the default on a GPU.
        default_preset = "paper" if resolve_device("auto").startswith("cuda") else "cpu"
        self._preset = ComboBox(label="descriptor preset", choices=list(PRESETS), value=default_preset)
        defaults = {spec.name: spec.weight for spec in PRESETS["paper"]}
        self._weights = {
            name: FloatSpinBox(
                label=f"weight {DESCRIPTOR_TITLES[name]}",
                min=0,
                max=1e6,
                step=0.1,
                value=defaults[name],
            )
            for name in WEIGHTED_DESCRIPTORS
        }
        self._direction_weights = [FloatSpinBox(min=0, max=1e6, step=0.1, value=1.0) for _ in range(3)]
        self._direction_row = Container(
            layout="horizontal",
            labels=False,
            label="direction weights (z, y, x)",
            widgets=self._direction_weights,
        )
        self._levels = SpinBox(label="multigrid levels (0 = auto)", min=0, max=8, value=0)
        self._iterations = SpinBox(label="iterations per level", min=1, max=1_000_000, value=MAX_ITER["fitted"])
        self._device = ComboBox(label="device", choices=["auto", "cpu", "cuda"], value="auto")
        self._chunk = SpinBox(label="chunk size (0 = auto)", min=0, max=4096, value=0)
        self._seed = SpinBox(label="seed", min=0, max=2**31 - 1, value=0)
        self._preview_interval = FloatSpinBox(label="live preview every (s)", min=0.05, max=600, step=0.1, value=0.5)
        self._settings = Container(
            widgets=[
                self._shape_row,
                self._estimate,
                self._method,
                self._preset,
                *self._weights.values(),
                self._direction_row,
                self._levels,
                self._iterations,
                self._device,
                self._chunk,
                self._seed,
                self._preview_interval,
            ]
        )
        for widget in (
            *self._shape,
            self._preset,
            self._levels,
            self._iterations,
            self._device,
            self._chunk,
        ):
            widget.changed.connect(self._update_estimate)
        self._method.changed.connect(self._on_method_changed)
        self._preset.changed.connect(self._on_method_changed)

    def _build_actions(self):
        self._characterize_button = PushButton(text="Characterize")
        self._run_button = PushButton(text="Run")
        self._cancel_button = PushButton(text="Cancel", enabled=False)
        self._retry_chunk_button = PushButton(text="Retry with smaller chunks", visible=False)
        self._retry_cpu_button = PushButton(text="Retry on the CPU", visible=False)
        self._actions = Container(
            layout="horizontal",
            labels=False,
            widgets=[
                self._characterize_button,
                self._run_button,
                self._cancel_button,
                self._retry_chunk_button,
                self._retry_cpu_button,
            ],
        )
        self._characterize_button.changed.connect(self.characterize)
        self._run_button.changed.connect(self.run)
        self._cancel_button.changed.connect(self.cancel)
        self._retry_chunk_button.changed.connect(self._retry_smaller_chunks)
        self._retry_cpu_button.changed.connect(self._retry_on_cpu)
        self._progress_bar = QProgressBar()
        self._progress_bar.setRange(0, 1000)
        self._progress_bar.setTextVisible(True)
        self._progress_bar.setFormat("idle")
        self.status = StatusLine()
        self.descriptor_canvas = ThemedCanvas(self.viewer, height_px=240)
        self.loss_canvas = ThemedCanvas(self.viewer, height_px=240, layout=None)  # redrawn during runs: a fixed layout
        self._losses = LossPlot(self.loss_canvas)
        self._live = LiveVolume(self.viewer, self.status)
        # Settings and plots share one tab area so that the dock stays short.
        self._tabs = QTabWidget()
        self._tabs.addTab(self._settings.native, "settings")
        self._tabs.addTab(self.descriptor_canvas, "descriptors")
        self._tabs.addTab(self.loss_canvas, "loss")

    # --- choices and input -------------------------------------------------------------------

    def reset_choices(self, event=None):
        """Refresh the layer lists (napari calls this when layers are added or removed)."""
        self._input.reset_choices()

    def _sources(self):
        if self._mode.value == ONE_SLICE:
            return [self._source.value]
        return [self._source_x.value, self._source_y.value, self._source_z.value]

    def _target_slices(self):
        """The labeled 2D target slice(s) and pixel size; raises InputError for unusable input."""
        slices = []
        for layer in self._sources():
            image, pixel_size = current_slice(layer, self.viewer)
            if isinstance(layer, Image):
                two_valued = two_valued_labels(image)  # a mask saved as an image: labels already
                image = threshold(image, self._threshold.value) if two_valued is None else two_valued
            slices.append((image, pixel_size))
        return slices

    def _target(self):
        """The target in the engine's form, the pixel size and the phase labels present."""
        slices = self._target_slices()
        images = [image for image, _ in slices]
        labels = sorted(set().union(*(np.unique(image).tolist() for image in images)))
        if len(labels) < 2:
            raise InputError(f"the input holds a single label ({labels[0]}); a microstructure needs two or more phases")
        if self._mode.value == ONE_SLICE:
            return images[0], slices[0][1], labels
        return dict(zip(("x", "y", "z"), images)), slices[2][1], labels

    def _on_source_changed(self, value=None):
        orthogonal = self._mode.value == ORTHOGONAL
        self._source.visible = not orthogonal
        for combo in (self._source_x, self._source_y, self._source_z):
            combo.visible = orthogonal
        grey = [layer for layer in self._sources() if needs_threshold(layer, self.viewer)]
        self._threshold_row.visible = bool(grey)
        if grey and grey[0] is not self._threshold_source:
            self._set_otsu_threshold()
        self._refresh_phases(keep=False)
        self._set_default_shape()

    def _on_slice_changed(self, event=None):
        # A stack's labels can differ from slice to slice.
        if self._threshold_preview.value:
            self._on_threshold_changed()
        else:
            self._refresh_phases()

    def _set_otsu_threshold(self, value=None):
        grey = [layer for layer in self._sources() if needs_threshold(layer, self.viewer)]
        if not grey:
            return
        try:
            image, _ = current_slice(grey[0], self.viewer)
            otsu = otsu_threshold(image)
        except InputError as error:
            self.status.error(error)
            return
        self._threshold_source = grey[0]
        if otsu is None:
            self.status.error(
                InputError(f"layer {grey[0].name!r} has a single grey value; there is nothing to threshold")
            )
        else:
            self._threshold.value = otsu

    def _on_threshold_changed(self, value=None):
        self._refresh_phases()
        grey = [layer for layer in self._sources() if needs_threshold(layer, self.viewer)]
        if not (self._threshold_preview.value and grey):
            return
        try:
            image, pixel_size = current_slice(grey[0], self.viewer)
        except InputError as error:
            self.status.error(error)
            return
        preview = threshold(image, self._threshold.value)
        name = f"{grey[0].name} threshold"
        if name in self.viewer.layers:
            self.viewer.layers[name].data = preview
        else:
            self.viewer.add_labels(preview, name=name, scale=pixel_size, opacity=0.5)

    def _phase_choices(self, widget=None):
        try:
            _, _, labels = self._target()
        except InputError:
            return []
        names = label_names(self._sources()[0])
        return [(phase_title(label, names), label) for label in labels]

    def _refresh_phases(self, keep=True):
        previous = self._phase.value
        self._phase.reset_choices()
        labels = [label for _, label in self._phase_choices()]
        if labels and not (keep and previous in labels):
            target = self._target()[0]
            images = list(target.values()) if isinstance(target, dict) else [target]
            self._phase.value = default_phase(labels, label_names(self._sources()[0]), images)

    def _set_default_shape(self):
        try:
            slices = self._target_slices()
        except InputError:
            return
        side = min(min(image.shape) for image, _ in slices)
        try:
            device = resolve_device(self._device.value)
        except InputError:
            device = "cpu"
        side = largest_fitting_side(
            side,
            self._specs(),
            method=self._method.value,
            device=device,
            iterations=self._iterations.value,
            max_seconds=DEFAULT_RUN_S,
        )
        for box in self._shape:
            box.value = side
        self._update_estimate()

    def _chosen_phase(self, labels):
        if self._phase.value not in labels:
            raise InputError("choose the phase of interest (the input's labels have changed)")
        return self._phase.value

    # --- settings ----------------------------------------------------------------------------

    def _specs(self):
        return preset(
            self._preset.value,
            **{name: {"weight": box.value} for name, box in self._weights.items()},
        )

    def _on_method_changed(self, value=None):
        differentiable = self._method.value == DIFFERENTIABLE
        used = {spec.name for spec in PRESETS[self._preset.value]}
        for name, box in self._weights.items():
            box.visible = differentiable and name in used
        for widget in (self._preset, self._direction_row, self._levels, self._device, self._chunk):
            widget.visible = differentiable
        self._iterations.label = "iterations per level" if differentiable else "trial swaps per voxel"
        self._iterations.value = MAX_ITER["fitted"] if differentiable else SWAPS_PER_VOXEL
        self._update_estimate()

    def _estimated_seconds(self):
        try:
            return self._estimate_run()[1].seconds
        except InputError:
            return 0.0

    def _estimate_run(self):
        device = resolve_device(self._device.value) if self._method.value == DIFFERENTIABLE else "cpu"
        return device, estimate_run(
            tuple(box.value for box in self._shape),
            self._specs(),
            method=self._method.value,
            device=device,
            iterations=self._iterations.value,
            levels=self._levels.value or None,
            chunk_size=self._chunk.value or None,
        )

    def _update_estimate(self, value=None):
        self._long_run_confirmed = False
        try:
            device, estimate = self._estimate_run()
        except InputError as error:
            self._estimate.error(error)
            return
        text = f"estimate on {device}: {estimate.summary()}"
        if not estimate.fits:
            self._estimate.native.setStyleSheet("color: #e05d5d;")
            self._estimate.value = text + " (more than the device has free: reduce the output size)"
        else:
            self._estimate.info(text)

    # --- characterize ------------------------------------------------------------------------

    def characterize(self, value=None):
        """Compute the target descriptors in a worker and plot them."""
        try:
            target, _, labels = self._target()
            phase = self._chosen_phase(labels)
        except InputError as error:
            self.status.error(error)
            return
        images = [target] if isinstance(target, np.ndarray) else [target[axis] for axis in ("z", "y", "x")]
        with_gram = "gram" in {spec.name for spec in PRESETS[self._preset.value]}

        def work():
            return [characterize(image, phases=[phase], gram=with_gram) for image in images]

        self._characterize_button.enabled = False
        self.status.info("characterizing ...")
        self._characterize_worker = create_worker(
            work,
            _start_thread=False,
            _connect={"returned": self._show_characterization, "errored": self.status.error},
        )
        self._characterize_worker.finished.connect(self._on_characterize_finished)
        self._characterize_worker.start()

    def _on_characterize_finished(self):
        self._characterize_worker = None
        self._characterize_button.enabled = True

    def _show_characterization(self, characterizations):
        self.characterization = characterizations[0]
        phase = self._phase.value
        entries = [c["phases"][phase] for c in characterizations]
        directions = ("slice",) if len(entries) == 1 else ("normal to z", "normal to y", "normal to x")

        def paint(figure):
            gram = "gram" in entries[0]
            mosaic = [["s2", "s2"], ["s3", "scalars"]] + ([["gram", "gram"]] if gram else [])
            axes = figure.subplot_mosaic(mosaic)
            if len(entries) == 1:
                plot_s2(axes["s2"], entries[0])
            else:
                for direction, entry in zip(directions, entries):
                    axes["s2"].plot(entry["s2_radial"], label=f"radial {direction}")
                axes["s2"].set_xlabel("lag r (pixels)")
                axes["s2"].set_ylabel("S2(r)")
                axes["s2"].legend(fontsize="small")
            plot_s3(axes["s3"], entries[0])
            plot_scalars(axes["scalars"], entries[0])
            axes["scalars"].set_title(
                f"φ = {entries[0]['volume_fraction']:.3f}, TV = {entries[0]['tv']:.3f}",
                fontsize="small",
            )
            if gram:
                plot_gram_summary(axes["gram"], entries[0])

        self.descriptor_canvas.paint(paint)
        self._tabs.setCurrentWidget(self.descriptor_canvas)
        self.status.info(
            f"phase {phase}: volume fraction {entries[0]['volume_fraction']:.3f}, TV {entries[0]['tv']:.3f}"
        )

    # --- run ---------------------------------------------------------------------------------

    def _gather_request(self):
        target, pixel_size, labels = self._target()
        phase = self._chosen_phase(labels)
        shape = tuple(int(box.value) for box in self._shape)
        sources = [layer.name for layer in self._sources()]
        common = {
            "phase": phase,
            "seed": self._seed.value,
            "preview_interval_s": self._preview_interval.value,
        }
        if self._method.value == DIFFERENTIABLE:
            device = resolve_device(self._device.value)
            options = {
                **common,
                "descriptors": self._specs(),
                "direction_weights": tuple(box.value for box in self._direction_weights),
                "max_iter": self._iterations.value,
                "multigrid_levels": self._levels.value or None,
                "device": device,
                "chunk_size": self._chunk.value or None,
            }
        else:
            if len(labels) != 2:
                raise InputError(
                    f"Yeong-Torquato reconstructs two phases but the input has labels {labels}; "
                    "use the differentiable method or merge the labels first"
                )
            device = "cpu"
            options = {**common, "max_swaps": self._iterations.value * int(np.prod(shape))}
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
        seconds = self._estimated_seconds()
        if seconds > CONFIRM_S and not self._long_run_confirmed:
            self._long_run_confirmed = True  # until a setting changes
            self.status.info(
                f"this run is estimated at {seconds / 60:.0f} min: press Run again to start it, "
                "or make the output smaller",
                notify=True,
            )
            return
        self._long_run_confirmed = False
        from napari_dmcr.baselines.yeong_torquato import yeong_torquato
        from napari_dmcr.reconstruction import reconstruct

        engine = reconstruct if request.method == DIFFERENTIABLE else yeong_torquato
        if request.method == DIFFERENTIABLE and request.device == "cpu":
            _leave_a_core_for_the_viewer()
        self._request = request
        self._cancel_token = CancelToken()
        self._losses.reset(swaps=request.method == YEONG_TORQUATO)
        self._live.reset()
        self._last_refresh = -float("inf")
        self._worker = create_worker(
            _run_engine,
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
        self._progress_bar.setFormat(f"starting ... ({_expected_iterations(request)} iterations planned)")
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
        if step.volume is not None:
            self._live.show(step.volume, request)
        self._losses.refresh()

    def _on_result(self, result):
        request = self._request
        self.last_result = result
        summary = {**result.record(), "sources": request.source_names}
        summary.pop("history", None)  # every iteration: in the loss plot, too long for layer metadata
        quality = result.quality()
        if request.method == DIFFERENTIABLE:
            self._losses.replace(
                (index, {**entry["errors"], "total": entry["loss"]}) for index, entry in enumerate(result.history, 1)
            )
        name = f"{request.source_names[0]} reconstruction" + (" (cancelled)" if result.cancelled else "")
        metadata = {"dmcr": summary}
        if request.label_names:
            metadata["label_names"] = {str(k): v for k, v in request.label_names.items()}
        if request.live_layer_name in self.viewer.layers:
            self.viewer.layers[request.live_layer_name].visible = False
        layer = self.viewer.add_labels(
            result.labels, name=name, scale=request.scale, metadata=metadata, translate=request.beside
        )
        layer.new_colormap()  # not the input's colours: the core reads as a result, not as the slice
        if result.labels.ndim == 3:
            # Its mid-slices under the input slice, in the same colours as the core: the QA view.
            below = (1.1 * self._sources()[0].extent.world[1][-2], 0.0)
            self.viewer.add_labels(
                orthogonal_mid_slices(result.labels), name=f"{name} mid-slices (z | y | x)",
                scale=request.scale[1:], translate=below, colormap=layer.colormap,
            )  # fmt: skip
        state = "cancelled; kept the last state" if result.cancelled else "done"
        self.status.info(f"{state}: {name}, {quality}", notify=True)

    def _on_run_error(self, error):
        self.status.error(error)
        self._progress_bar.setFormat("failed")
        if isinstance(error, DeviceMemoryError):
            self._retry_chunk_button.visible = True
            self._retry_cpu_button.visible = True

    def _on_run_finished(self):
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
        current = request.chunk_size or default_chunk_size(self._specs(), tuple(sorted(request.shape)[1:]))
        self._chunk.value = max(1, current // 2)
        self.run()

    def _retry_on_cpu(self, value=None):
        self._device.value = "cpu"
        self.run()

    def _on_layer_removed(self, event):
        if self._worker is not None and self._request is not None and event.value.name in self._request.source_names:
            self.status.info(
                f"input layer {event.value.name!r} was removed; the run goes on with the slice it started from"
            )

    def closeEvent(self, event):
        """Stop a running reconstruction when the widget closes."""
        self.cancel()
        super().closeEvent(event)


def _expected_iterations(request):
    """The ``total`` the engine will report: iterations over all its runs, or trial swaps."""
    if request.method == YEONG_TORQUATO:
        return request.options["max_swaps"]
    target = make_target(request.target, len(request.shape))
    levels, max_iter, _ = schedule(
        resolved_start("auto", target, request.shape),
        request.shape,
        request.options["max_iter"],
        request.options["multigrid_levels"],
    )
    return planned_iterations(levels, len(target.labels), max_iter)


def _leave_a_core_for_the_viewer():
    """PyTorch takes every core on the CPU; one stays free so that the viewer keeps redrawing."""
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))


def _release_device_memory():
    """Give cached GPU memory back after a run (PyTorch keeps it in a long-lived process)."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
