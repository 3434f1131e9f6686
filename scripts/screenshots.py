"""Regenerate the screenshots of docs/user_guide.md from the real napari window.

Run from the repository root (starts its own Xvfb display when there is none)::

    .venv/bin/python scripts/screenshots.py

It opens the synthetic conglomerate sample, characterizes it, runs a small 64^3 reconstruction
on the CPU (screenshot while it runs, in 3D), smooths, compares (S2, then the properties beside a
64^3 piece of the truth) and exports the result, runs a 4-seed ensemble of 32^3 cores, and writes
one PNG per step to docs/images/. Takes about four minutes on two cores.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"
WINDOW_SIZE = (1500, 950)
DOCK_WIDTH = 520
SCREEN = "-screen 0 1600x1000x24"


def main():
    if not os.environ.get("DISPLAY"):
        if shutil.which("xvfb-run") is None:
            sys.exit("no display: install xvfb (xvfb-run) or run under a desktop session")
        sys.exit(subprocess.call(["xvfb-run", "-a", "-s", SCREEN, sys.executable, *sys.argv]))

    import napari
    from napari._qt.dialogs.qt_notification import NapariQtNotification
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    IMAGES.mkdir(parents=True, exist_ok=True)
    viewer = napari.Viewer(title="napari-dmcr")
    viewer.window._qt_window.resize(*WINDOW_SIZE)
    viewer.open_sample("napari-dmcr", "conglomerate_slice")

    def wait(condition, timeout_s=600):
        start = time.perf_counter()
        while not condition():
            if time.perf_counter() - start > timeout_s:
                raise TimeoutError("the widget did not finish in time")
            app.processEvents()
            time.sleep(0.02)

    def shoot(name):
        _idle(app, 1.0)  # let the canvas and the plots finish drawing
        for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
            toast.close()
        _idle(app, 0.3)
        path = IMAGES / f"{name}.png"
        _save_small_png(viewer.screenshot(canvas_only=False, flash=False), path)
        print(f"wrote {path}")

    def open_only(name):
        for dock in list(viewer.window.dock_widgets.values()):
            viewer.window.remove_dock_widget(dock)
        dock, widget = viewer.window.add_plugin_dock_widget("napari-dmcr", name)
        viewer.window._qt_window.resize(*WINDOW_SIZE)
        viewer.window._qt_window.resizeDocks([dock], [DOCK_WIDTH], Qt.Orientation.Horizontal)
        return widget

    reconstruct = open_only("Reconstruct 3D")
    shoot("reconstruct_widget")
    for box in reconstruct._shape:
        box.value = 64
    reconstruct._iterations.value = 25
    # Two levels: the fitted start of the sample slice meets the target residual by itself and
    # a default run ends in seconds, without an optimization to show.
    reconstruct._levels.value = 2
    reconstruct._device.value = "cpu"
    reconstruct._preview_interval.value = 1.0
    reconstruct.characterize()
    wait(lambda: reconstruct._characterize_worker is None)
    shoot("characterize")

    reconstruct.run()  # the widget places the live volume beside the slice and turns the camera
    wait(lambda: len(reconstruct._losses.history) >= 2 or reconstruct._worker is None)
    assert reconstruct._worker is not None, "the run ended before its in-progress screenshot"
    shoot("run_in_progress_3d")
    wait(lambda: reconstruct._worker is None)
    wait(lambda: any(layer.name.endswith("mid-slices (z | y | x)") for layer in viewer.layers))
    shoot("run_finished")

    result = viewer.layers["conglomerate slice reconstruction"]
    smooth = open_only("Smooth")
    smooth._labels.value = result
    smooth.smooth()
    wait(lambda: smooth._worker is None)
    for layer in viewer.layers:
        layer.visible = layer.name.endswith("(sigma 1)")
    shoot("smooth")

    for layer in viewer.layers:
        layer.visible = layer is result
    compare = open_only("Compare S2")
    compare._original.value = viewer.layers["conglomerate slice"]
    compare._reconstruction.value = result
    compare.compare()
    wait(lambda: compare._worker is None)
    shoot("compare_s2")

    # The properties tab: a 64^3 corner of the sample's 128^3 truth (the core's clast scale).
    from napari_dmcr.samples import conglomerate_volume

    truth = viewer.add_labels(conglomerate_volume((128,) * 3, seed=0)[:64, :64, :64], name="truth 64^3", visible=False)
    compare._truth.value = truth
    compare._properties.value = True
    compare.compare()
    wait(lambda: compare._worker is None)
    compare._tabs.setCurrentIndex(2)
    shoot("compare_properties")

    ensemble = open_only("Ensemble")
    ensemble._slice.value = viewer.layers["conglomerate slice"]
    ensemble._side.value = 32
    ensemble._realizations.value = 4
    ensemble._workers.value = 2
    with tempfile.TemporaryDirectory() as folder:
        ensemble._out.value = Path(folder) / "ensemble"
        ensemble.run()
        wait(lambda: ensemble._worker is None)
        assert ensemble.summary is not None, ensemble.status.value
        shoot("ensemble_widget")

    export = open_only("Export")
    export._labels.value = result
    export._format.value = ".f3grid"
    with tempfile.TemporaryDirectory() as folder:
        export._path.value = Path(folder) / "core.f3grid"
        export.export()
        wait(lambda: export._worker is None)
        shoot("export")
    viewer.close()


def _idle(app, seconds):
    """Process Qt events for ``seconds``."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.02)


def _save_small_png(rgba, path):
    """Save a screenshot as a 256-colour PNG (a few hundred kB instead of a few MB)."""
    from PIL import Image

    Image.fromarray(rgba[..., :3]).quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


if __name__ == "__main__":
    main()
