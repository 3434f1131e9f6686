"""The base of the plugin's form widgets: a form (and plots) in a scrolling body, a status line,
and one background worker at a time whose button is off while it runs."""

from __future__ import annotations

import functools
import inspect

from magicgui.widgets import Container
from napari.qt.threading import create_worker
from qtpy.QtWidgets import QWidget

from napari_dmcr.threads import run_in_background
from napari_dmcr.widgets._body import scrolling_body
from napari_dmcr.widgets._messages import StatusLine


class FormWidget(QWidget):
    """A dock widget over the viewer: call :meth:`lay_out` with the form's widgets, start work
    with :meth:`start_worker`.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
    """

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self._worker = None
        self.status = StatusLine()

    def lay_out(self, widgets, *parts, stretch=False):
        """The form of ``widgets`` and the status line, then ``parts`` (plots, tables), scrolling."""
        self._form = Container(widgets=[*widgets, self.status])
        scrolling_body(self, self._form.native, *parts, stretch=stretch)

    def reset_choices(self, event=None):
        """Refresh the layer lists (napari calls this when layers are added or removed)."""
        self._form.reset_choices()

    def start_worker(self, function, *args, button, connect, **kwargs):
        """Run ``function(*args, **kwargs)`` in a worker (``connect``: its signals' slots, as
        napari's ``create_worker`` takes them); ``button`` is off until it ends."""
        button.enabled = False
        self._worker = create_worker(in_background(function), *args, _start_thread=False, _connect=connect, **kwargs)
        self._worker.finished.connect(lambda: self._on_finished(button))
        self._worker.start()

    def _on_finished(self, button):
        self._worker = None
        button.enabled = True


def in_background(function):
    """``function`` (plain or a generator function) run at a lower priority than the viewer's
    thread (:func:`napari_dmcr.threads.run_in_background`), for a worker thread."""
    if inspect.isgeneratorfunction(function):

        @functools.wraps(function)
        def steps(*args, **kwargs):
            run_in_background()
            return (yield from function(*args, **kwargs))

        return steps

    @functools.wraps(function)
    def call(*args, **kwargs):
        run_in_background()
        return function(*args, **kwargs)

    return call
