"""The "Export" dock widget: a labeled volume to .npy / .tif / .vti or a FLAC3D grid + .f3dat."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    LineEdit,
    PushButton,
    SpinBox,
)
from napari.layers import Labels

from napari_dmcr.errors import InputError
from napari_dmcr.widgets._base import FormWidget
from napari_dmcr.widgets._layers import label_names, layer_choices
from napari_dmcr.widgets._writers import FLAC3D_DEFAULTS, export_layer_data, layer_parameters

FORMATS = {
    ".npy": "NumPy (.npy)",
    ".tif": "ImageJ TIFF (.tif)",
    ".vti": "VTK image (.vti)",
    ".f3grid": "FLAC3D grid (.f3grid + .f3dat)",
}


class ExportWidget(FormWidget):
    """Export a Labels layer as .npy, .tif, .vti or a FLAC3D grid with its triaxial template.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
    """

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        self.written = []
        self._labels = ComboBox(label="labels", choices=lambda _: layer_choices(self.viewer, Labels))
        self._format = ComboBox(label="format", choices=[(title, suffix) for suffix, title in FORMATS.items()])
        self._path = FileEdit(label="file", mode="w")
        self._voxel_size = FloatSpinBox(label="voxel size (model units)", min=1e-12, max=1e12, step=0.001, value=1.0)
        self._voxel_size.native.setDecimals(6)
        self._group_names = LineEdit(label="zone groups (label 0, 1, ...)", value="gravel, matrix")
        self._coarsen = SpinBox(label="coarsen (voxels per zone edge)", min=1, max=64, value=1)
        self._cylinder = CheckBox(text="carve the largest vertical cylinder", value=False)
        self._f3dat = CheckBox(text="write the triaxial .f3dat template", value=True)
        self._pressures = LineEdit(
            label="confining pressures (MPa)",
            value=", ".join(map(str, FLAC3D_DEFAULTS["confining_pressures_mpa"])),
        )
        self._flac3d_options = Container(
            widgets=[self._group_names, self._coarsen, self._cylinder, self._f3dat, self._pressures]
        )
        self._export_button = PushButton(text="Export")
        self.lay_out(
            [self._labels, self._format, self._path, self._voxel_size, self._flac3d_options, self._export_button],
            stretch=True,
        )
        self._labels.changed.connect(self._on_layer_changed)
        self._format.changed.connect(self._on_format_changed)
        self._export_button.changed.connect(self.export)
        self.reset_choices()
        self._on_layer_changed()
        self._on_format_changed()

    def _on_layer_changed(self, value=None):
        layer = self._labels.value
        if layer is None:
            return
        self._voxel_size.value = float(layer.scale[-1])
        names = label_names(layer)
        if names:
            self._group_names.value = ", ".join(names.get(label, f"phase{label}") for label in range(max(names) + 1))

    def _on_format_changed(self, value=None):
        self._flac3d_options.visible = self._format.value == ".f3grid"

    def _flac3d_settings(self):
        try:
            pressures = [float(text) for text in self._pressures.value.replace(";", ",").split(",") if text.strip()]
        except ValueError:
            raise InputError(f"confining pressures must be numbers in MPa, got {self._pressures.value!r}") from None
        names = [name.strip() for name in self._group_names.value.split(",")]
        return {
            "group_names": names,
            "coarsen": self._coarsen.value,
            "cylinder": self._cylinder.value,
            "f3dat": self._f3dat.value,
            "confining_pressures_mpa": pressures,
        }

    def export(self, value=None):
        """Write the chosen layer in a worker; the status line lists the files written."""
        layer = self._labels.value
        try:
            if layer is None:
                raise InputError("choose a Labels layer to export")
            if layer.ndim != 3 and self._format.value == ".f3grid":
                raise InputError(f"layer {layer.name!r} is {layer.ndim}D; a FLAC3D grid needs a 3D volume")
            path = Path(self._path.value)
            if path.name in ("", ".") or path.is_dir():
                raise InputError("choose a file name to export to")
            path = path.with_suffix(self._format.value)
            flac3d = self._flac3d_settings() if self._format.value == ".f3grid" else None
        except InputError as error:
            self.status.error(error)
            return
        parameters = layer_parameters(layer.name, layer.metadata)
        self.status.info(f"writing {path.name} ...")
        self.start_worker(
            export_layer_data,
            path,
            np.asarray(layer.data),
            voxel_size=self._voxel_size.value,
            parameters=parameters,
            flac3d=flac3d,
            button=self._export_button,
            connect={"returned": self._on_written, "errored": self._on_error},
        )

    def _on_written(self, paths):
        self.written = [Path(p) for p in paths]
        self.status.info(
            "wrote " + ", ".join(p.name for p in self.written) + f" in {self.written[0].parent}",
            notify=True,
        )

    def _on_error(self, error):
        self.status.error(InputError(f"cannot write the file: {error}") if isinstance(error, OSError) else error)
