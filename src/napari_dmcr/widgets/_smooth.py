"""The "Smooth" dock widget: Gaussian smoothing of labels that keeps the phase fractions."""

from __future__ import annotations

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, FloatSpinBox, PushButton
from napari.layers import Labels

from napari_dmcr.errors import InputError
from napari_dmcr.postprocessing.smoothing import gaussian_smooth
from napari_dmcr.widgets._base import FormWidget
from napari_dmcr.widgets._layers import layer_choices


class SmoothWidget(FormWidget):
    """Smooth a Labels layer with a Gaussian; each phase keeps exactly its voxel count.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
    """

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        self._labels = ComboBox(label="labels", choices=lambda _: layer_choices(self.viewer, Labels))
        self._sigma = FloatSpinBox(label="sigma (voxels)", min=0.0, max=100.0, step=0.25, value=1.0)
        self._periodic = CheckBox(text="periodic (reconstructions wrap around)", value=True)
        self._smooth_button = PushButton(text="Smooth")
        self.lay_out([self._labels, self._sigma, self._periodic, self._smooth_button], stretch=True)
        self._smooth_button.changed.connect(self.smooth)

    def smooth(self, value=None):
        """Smooth the chosen layer in a worker; the result arrives as a new Labels layer."""
        layer = self._labels.value
        if layer is None:
            self.status.error(InputError("choose a Labels layer to smooth"))
            return
        source = {"name": layer.name, "scale": tuple(layer.scale), "metadata": dict(layer.metadata)}
        sigma = self._sigma.value
        self.status.info(f"smoothing {layer.name} with sigma {sigma:g} ...")
        self.start_worker(
            gaussian_smooth,
            np.asarray(layer.data),
            sigma,
            periodic=self._periodic.value,
            button=self._smooth_button,
            connect={
                "returned": lambda smoothed: self._add_result(smoothed, source, sigma),
                "errored": self.status.error,
            },
        )

    def _add_result(self, smoothed, source, sigma):
        metadata = dict(source["metadata"])
        metadata["smoothing"] = {
            "sigma": sigma,
            "periodic": self._periodic.value,
            "source": source["name"],
        }
        name = f"{source['name']} smoothed (sigma {sigma:g})"
        self.viewer.add_labels(smoothed, name=name, scale=source["scale"], metadata=metadata)
        self.status.info(f"added {name}; every phase kept its voxel count")
