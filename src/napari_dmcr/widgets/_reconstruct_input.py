"""The input part of the "Reconstruct 3D" widget: the slice layer(s), the threshold and the phase.

It turns the chosen layers (labels, or grey images through a threshold) into the target the
engines take, and offers the phases present in it.
"""

from __future__ import annotations

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, PushButton
from napari.layers import Image

from napari_dmcr.errors import InputError
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

ONE_SLICE = "one slice"
ORTHOGONAL = "three orthogonal slices"


class InputMixin:
    """The input form of :class:`~napari_dmcr.widgets._reconstruct.ReconstructWidget`.

    Uses the widget's ``viewer`` and ``status``, and ``_set_default_shape`` (the settings part)
    to size the output to a newly chosen slice.
    """

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

    def _sources(self):
        if self._mode.value == ONE_SLICE:
            return [self._source.value]
        return [self._source_x.value, self._source_y.value, self._source_z.value]

    def _grey_sources(self):
        """The chosen layers that need a threshold to become labels."""
        return [layer for layer in self._sources() if needs_threshold(layer, self.viewer)]

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

    def _target_pixels(self):
        """Pixels of the distinct target slice(s), for the estimate (0 while none is usable)."""
        try:
            distinct = {id(layer): layer for layer in self._sources()}
            return sum(current_slice(layer, self.viewer)[0].size for layer in distinct.values())
        except InputError:
            return 0

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
        grey = self._grey_sources()
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
        grey = self._grey_sources()
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
        grey = self._grey_sources()
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

    def _chosen_phase(self, labels):
        if self._phase.value not in labels:
            raise InputError("choose the phase of interest (the input's labels have changed)")
        return self._phase.value
