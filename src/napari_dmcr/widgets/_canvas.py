"""A matplotlib canvas for dock widgets that follows napari's theme (as napari-matplotlib does)."""

from __future__ import annotations

from collections.abc import Callable

import matplotlib.style
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg, NavigationToolbar2QT
from matplotlib.colors import same_color
from matplotlib.figure import Figure
from qtpy.QtWidgets import QSizePolicy, QVBoxLayout, QWidget


def theme_style(theme_name: str) -> dict:
    """Matplotlib rcParams that match a napari theme (background, text and accent colours).

    Parameters
    ----------
    theme_name : str
        A napari theme name, e.g. ``"dark"`` or ``"light"``.

    Returns
    -------
    dict
        rcParams for :func:`matplotlib.style.context`.
    """
    from napari.utils.theme import get_theme

    theme = get_theme(theme_name)
    background = theme.background.as_hex()
    text = theme.text.as_hex()
    return {
        "figure.facecolor": background,
        "axes.facecolor": theme.foreground.as_hex(),
        "savefig.facecolor": background,
        "axes.edgecolor": text,
        "axes.labelcolor": text,
        "axes.titlecolor": text,
        "text.color": text,
        "xtick.color": text,
        "ytick.color": text,
        "grid.color": theme.primary.as_hex(),
        "legend.facecolor": background,
        "legend.edgecolor": theme.primary.as_hex(),
        "legend.labelcolor": text,
        "font.size": 8,
    }


class ThemedCanvas(QWidget):
    """A figure, its canvas and a navigation toolbar, redrawn in napari's theme.

    Plots are drawn by a *painter*, a function that receives the cleared figure; the canvas
    keeps the last painter so that a theme change redraws the same plot in the new colours.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer whose theme the plots follow.
    height_px : int
        Minimum height of the canvas.
    layout : {"constrained", None}
        The figure's layout engine; None for plots redrawn often (the painter places the axes).
    """

    def __init__(self, viewer, height_px: int = 320, layout: str | None = "constrained"):
        super().__init__()
        self.viewer = viewer
        self.figure = Figure(figsize=(4, 3), layout=layout)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(height_px)
        self.canvas.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.toolbar = NavigationToolbar2QT(self.canvas, self)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.toolbar)
        layout.addWidget(self.canvas)
        self._painter: Callable[[Figure], None] | None = None
        self._background = None  # the last full drawing without the animated artists
        self.canvas.mpl_connect("draw_event", self._on_draw)
        viewer.events.theme.connect(self._repaint)
        self.destroyed.connect(lambda: viewer.events.theme.disconnect(self._repaint))

    def paint(self, painter: Callable[[Figure], None]) -> None:
        """Clear the figure and draw it with ``painter(figure)`` in the viewer's theme."""
        self._painter = painter
        self._repaint()

    def clear(self) -> None:
        """Remove every plot."""
        self._painter = None
        self.figure.clear()
        self.canvas.draw_idle()

    def save(self, path) -> None:
        """Save the current figure (PNG, SVG or PDF by suffix) with the theme's background."""
        self.figure.savefig(path, dpi=150)

    def _repaint(self, event=None) -> None:
        self.figure.clear()
        if self._painter is not None:
            style = theme_style(self.viewer.theme)
            with matplotlib.style.context(style):
                self.figure.set_facecolor(style["figure.facecolor"])
                self._painter(self.figure)
            _recolor_black_lines(self.figure, style["text.color"])
        self.canvas.draw_idle()

    def redraw_animated(self) -> None:
        """Draw only the animated artists again, over the last full drawing (blitting): what a
        plot that moves often needs, where a full redraw re-lays every tick and label."""
        if self._background is None:
            self.canvas.draw_idle()
            return
        self.canvas.restore_region(self._background)
        self._draw_animated()
        self.canvas.blit(self.figure.bbox)

    def _on_draw(self, event) -> None:
        if event.canvas is not self.canvas or self.canvas.is_saving():  # savefig draws them itself
            return
        self._background = self.canvas.copy_from_bbox(self.figure.bbox)
        self._draw_animated()  # a full drawing leaves the animated artists out

    def _draw_animated(self) -> None:
        for ax in self.figure.axes:
            for artist in ax.get_children():
                if artist.get_animated():
                    ax.draw_artist(artist)


def _recolor_black_lines(figure, color):
    """Draw black reference curves (the plotting modules' convention) in the theme's text colour,
    so that they stay visible on a dark background."""
    for ax in figure.axes:
        legend = ax.get_legend()
        for line in [*ax.get_lines(), *(legend.get_lines() if legend else [])]:
            if same_color(line.get_color(), "k"):
                line.set_color(color)
