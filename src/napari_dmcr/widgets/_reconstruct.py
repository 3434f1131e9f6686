"""The "Reconstruct 3D" dock widget: characterize a segmented slice and reconstruct a volume live.

The widget only gathers settings and layers and shows what the engines report; the work is done
by :func:`napari_dmcr.reconstruction.reconstruct` (differentiable) or
:func:`napari_dmcr.baselines.yeong_torquato.yeong_torquato` in a napari worker thread.

Its parts live beside it, one module each: the input form (``_reconstruct_input``), the settings
form (``_reconstruct_settings``), characterize (``_reconstruct_characterize``) and the run
(``_reconstruct_run``). They are mixins of one widget because they share its controls.
"""

from __future__ import annotations

from magicgui.widgets import Container, PushButton
from qtpy.QtWidgets import QProgressBar, QTabWidget, QWidget

from napari_dmcr.widgets._body import scrolling_body
from napari_dmcr.widgets._canvas import ThemedCanvas
from napari_dmcr.widgets._live import LiveVolume, LossPlot
from napari_dmcr.widgets._messages import StatusLine
from napari_dmcr.widgets._reconstruct_characterize import CharacterizeMixin
from napari_dmcr.widgets._reconstruct_input import InputMixin
from napari_dmcr.widgets._reconstruct_run import RunMixin
from napari_dmcr.widgets._reconstruct_settings import SettingsMixin


class ReconstructWidget(InputMixin, SettingsMixin, CharacterizeMixin, RunMixin, QWidget):
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

    def reset_choices(self, event=None):
        """Refresh the layer lists (napari calls this when layers are added or removed)."""
        self._input.reset_choices()

    def closeEvent(self, event):
        """Stop a running reconstruction when the widget closes."""
        self.cancel()
        super().closeEvent(event)
