"""What a run shows while it goes: the field in 3D beside the input slice, and the loss curves.

Both are drawn on the viewer's thread, so they are kept cheap: the volume layer is updated in
place, and the curves move on a fixed layout (a constrained layout and a "best" legend search
were most of a redraw's time). The widget calls them at most once per preview interval.
"""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import QTimer

OBLIQUE_VIEW = (15.0, -35.0, 125.0)  # camera Euler angles of the live 3D view
DESCRIPTOR_TITLES = {
    "s2": "S2",
    "s3": "S3",
    "gram": "Gram (VGG-19)",
    "tv": "total variation",
    "vf": "volume fraction",
}


def camera(viewer):
    """The viewer's camera (``viewer.scene.camera`` since napari 0.9, ``viewer.camera`` before)."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None and hasattr(scene, "camera") else viewer.camera


class LiveVolume:
    """The live layer of a run: an Image layer beside the input slice, seen obliquely in 3D."""

    def __init__(self, viewer, status):
        self.viewer = viewer
        self.status = status
        self.reset()

    def reset(self):
        """A new run: a removal of its live layer is noticed once."""
        self._removal_noted = False

    def prepare(self, request):
        """At the start of a run: the live layer (empty until the first step) and the oblique 3D
        view, each in its own turn of the event loop. Creating the layer and switching to 3D
        take 0.15-0.25 s each under software rendering: one after the other in a step handler
        they froze the viewer for twice that (viewer.json)."""
        name, empty = request.live_layer_name, np.zeros(request.shape, np.float32)
        if name in self.viewer.layers:
            layer = self.viewer.layers[name]
            layer.visible = True  # the previous run's end hid it
            layer.data = empty  # not the previous run's field
            return
        self.viewer.add_image(
            empty,
            name=name,
            scale=request.scale,
            contrast_limits=(0.0, 1.0),
            colormap="magma",
            rendering="attenuated_mip",
            attenuation=0.3,
            translate=request.beside,
        )
        QTimer.singleShot(0, self._oblique_3d)

    def _oblique_3d(self):
        self.viewer.dims.ndisplay = 3
        self.viewer.reset_view()
        camera(self.viewer).angles = OBLIQUE_VIEW  # looking straight down, a volume looks flat

    def show(self, volume, request):
        """The field of a progress step, in the live layer (unless the user removed it)."""
        name = request.live_layer_name
        if name in self.viewer.layers:
            layer = self.viewer.layers[name]
            layer.data = volume
            layer.visible = True
            return
        if not self._removal_noted:
            self._removal_noted = True
            self.status.info("the live preview layer was removed; the run goes on and its result will appear")


class LossPlot:
    """The loss tab: the error of every descriptor and the total, per iteration (or trial swaps)."""

    def __init__(self, canvas):
        self.canvas = canvas
        self.history = []
        self.swaps = False
        self.finished = False
        self._limits = None  # the (x, y) limits the plot set itself during this run
        # Empty axes, drawn now: the first drawing of a figure (fonts, text layout) is the
        # slowest, and during a run it would hold the viewer's thread for 0.2 s.
        canvas.paint(self._paint_waiting)
        canvas.canvas.draw()

    def reset(self, swaps):
        """A new run; ``swaps``: its x axis counts trial swaps (Yeong-Torquato), not iterations."""
        self.history = []
        self.swaps = swaps
        self.finished = False
        self._limits = None

    def add(self, iteration, losses):
        self.history.append((iteration, dict(losses)))

    def replace(self, history):
        """Every iteration of a finished run (the live curve had only the throttled steps)."""
        self.history = list(history)
        self.finished = True  # fitted limits: the curves no longer grow
        if len(self.history) > 1:
            self.canvas.paint(self._paint)

    def refresh(self):
        """Move the curves to the newest history (a full repaint when the curves changed)."""
        if len(self.history) < 2:
            return
        axes = self.canvas.figure.axes
        iterations, curves = self._curves()
        lines = axes[0].get_lines() if len(axes) == 1 else []
        if [line.get_label() for line in lines] != [DESCRIPTOR_TITLES.get(name, name) for name in curves]:
            self.canvas.paint(self._paint)
            return
        for line, values in zip(lines, curves.values()):
            line.set_data(iterations, values)
        ax = axes[0]
        # Limits the user set (toolbar zoom or pan) stay; the plot's own grow with the curves.
        zoomed = self._limits is not None and (ax.get_xlim(), ax.get_ylim()) != self._limits
        if zoomed or _within(ax, iterations, curves):
            self.canvas.redraw_animated()  # the curves only
            return
        self._limits = _widen(ax, iterations, curves)  # a full redraw, a few times a run
        self.canvas.canvas.draw_idle()

    def _curves(self):
        iterations = [iteration for iteration, _ in self.history]
        names = list(self.history[-1][1])
        return iterations, {
            name: np.maximum([losses.get(name, np.nan) for _, losses in self.history], 1e-12) for name in names
        }

    def _paint_waiting(self, figure):
        ax = self._axes(figure)
        ax.text(0.5, 0.5, "the loss of each descriptor\nappears here during a run", ha="center", va="center",
                transform=ax.transAxes)  # fmt: skip

    def _axes(self, figure):
        figure.subplots_adjust(left=0.17, right=0.97, bottom=0.14, top=0.9)
        ax = figure.subplots()
        ax.set_yscale("log")
        ax.set_xlabel("trial swaps" if self.swaps else "iteration")
        ax.set_ylabel("S2 energy" if self.swaps else "normalized error")
        ax.set_title("loss per descriptor")
        return ax

    def _paint(self, figure):
        ax = self._axes(figure)
        iterations, curves = self._curves()
        for name, values in curves.items():
            style = {"color": "k", "lw": 2} if name == "total" else {}
            # Animated: the curves move by blitting, over axes drawn once (ThemedCanvas).
            ax.plot(iterations, values, label=DESCRIPTOR_TITLES.get(name, name), animated=True, **style)
        if not self.finished:
            self._limits = _widen(ax, iterations, curves)
        ax.legend(fontsize="small", loc="upper right").set_animated(True)  # over the curves, as they move


def _within(ax, iterations, curves):
    """Whether the curves' finite values lie inside the axes' limits."""
    values = _finite(curves)
    low, high = ax.get_ylim()
    inside = values.size == 0 or (low <= values.min() and values.max() <= high)
    return iterations[-1] <= ax.get_xlim()[1] and inside


def _widen(ax, iterations, curves):
    """Limits with room to grow: twice the iterations so far, and a decade below the lowest loss
    (the curves then stay inside for many steps, each drawn by blitting); returns them."""
    values = _finite(curves)
    ax.set_xlim(0, max(2, 2 * iterations[-1]))
    if values.size:
        ax.set_ylim(values.min() / 10, 2 * values.max())
    return ax.get_xlim(), ax.get_ylim()


def _finite(curves):
    values = np.concatenate(list(curves.values()))
    return values[np.isfinite(values)]
