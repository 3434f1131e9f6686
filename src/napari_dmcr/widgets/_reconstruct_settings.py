"""The settings part of the "Reconstruct 3D" widget: output size, method, descriptors and the estimate.

The numbers come from the core: defaults from :mod:`napari_dmcr.reconstruction.settings` and the
Yeong-Torquato settings, the estimate and the default size from :mod:`napari_dmcr.reconstruction.cost`.
"""

from __future__ import annotations

from magicgui.widgets import ComboBox, Container, FloatSpinBox, SpinBox

from napari_dmcr.baselines.annealing_settings import SWAPS_PER_VOXEL
from napari_dmcr.descriptors import PRESETS, preset
from napari_dmcr.descriptors.descriptor_set import preset_name
from napari_dmcr.errors import InputError
from napari_dmcr.reconstruction import MAX_ITER, estimate_run, largest_fitting_side, resolve_device
from napari_dmcr.reconstruction.cost import DEFAULT_RUN_S
from napari_dmcr.reconstruction.schedule import STARTS, start_kind
from napari_dmcr.widgets._live import DESCRIPTOR_TITLES
from napari_dmcr.widgets._messages import StatusLine

DIFFERENTIABLE = "differentiable"
YEONG_TORQUATO = "yeong-torquato"
# Descriptors whose weight the user may set (the union of the presets).
WEIGHTED_DESCRIPTORS = tuple(dict.fromkeys(spec.name for specs in PRESETS.values() for spec in specs))


class SettingsMixin:
    """The settings form of :class:`~napari_dmcr.widgets._reconstruct.ReconstructWidget`.

    Uses the widget's ``_target_slices`` (the input part) to size the output to the slice.
    """

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
        default_preset = preset_name("auto", resolve_device("auto"))
        self._preset = ComboBox(label="descriptor preset", choices=list(PRESETS), value=default_preset)
        self._start_choice = ComboBox(
            label="start",
            choices=list(STARTS),
            value="auto",
            tooltip="auto: a model fitted to the slice (blobs, overlapping spheres or deposited grains); "
            "packed: for grains that touch (conglomerates); random: noise, many iterations",
        )
        self._weights = _weight_boxes()
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
                self._start_choice,
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
        for widget in (*self._shape, self._preset, self._levels, self._iterations, self._device, self._chunk):
            widget.changed.connect(self._update_estimate)
        self._method.changed.connect(self._on_method_changed)
        self._preset.changed.connect(self._on_method_changed)
        self._start_choice.changed.connect(self._on_method_changed)

    def _specs(self):
        return preset(
            self._preset.value,
            **{name: {"weight": box.value} for name, box in self._weights.items()},
        )

    def _run_device(self):
        """The resolved device of a run; Yeong-Torquato runs on the CPU whatever is chosen."""
        return resolve_device(self._device.value) if self._method.value == DIFFERENTIABLE else "cpu"

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
            target_pixels=self._target_pixels(),
        )
        for box in self._shape:
            box.value = side
        self._update_estimate()

    def _on_method_changed(self, value=None):
        differentiable = self._method.value == DIFFERENTIABLE
        used = {spec.name for spec in PRESETS[self._preset.value]}
        for name, box in self._weights.items():
            box.visible = differentiable and name in used
        for widget in (self._preset, self._start_choice, self._direction_row, self._levels, self._device, self._chunk):
            widget.visible = differentiable
        self._iterations.label = "iterations per level" if differentiable else "trial swaps per voxel"
        self._iterations.value = MAX_ITER[start_kind(self._start_choice.value)] if differentiable else SWAPS_PER_VOXEL
        self._update_estimate()

    def _estimated_seconds(self):
        try:
            return self._estimate_run()[1].seconds
        except InputError:
            return 0.0

    def _estimate_run(self):
        device = self._run_device()
        return device, estimate_run(
            tuple(box.value for box in self._shape),
            self._specs(),
            method=self._method.value,
            device=device,
            iterations=self._iterations.value,
            levels=self._levels.value or None,
            chunk_size=self._chunk.value or None,
            target_pixels=self._target_pixels(),
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


def _weight_boxes():
    """A weight box per descriptor, at the weight of the paper preset."""
    defaults = {spec.name: spec.weight for spec in PRESETS["paper"]}
    return {
        name: FloatSpinBox(label=f"weight {DESCRIPTOR_TITLES[name]}", min=0, max=1e6, step=0.1, value=defaults[name])
        for name in WEIGHTED_DESCRIPTORS
    }
