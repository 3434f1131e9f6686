"""The characterize part of the "Reconstruct 3D" widget: the target's descriptors, computed and plotted.

The descriptors are :func:`napari_dmcr.descriptors.characterize`'s, computed in a worker thread.
"""

from __future__ import annotations

import numpy as np
from napari.qt.threading import create_worker

from napari_dmcr.descriptors import PRESETS, characterize
from napari_dmcr.descriptors.representativity import SLICE_NAMES, disagreements, interval
from napari_dmcr.errors import InputError
from napari_dmcr.plotting.descriptors import plot_gram_summary, plot_s2, plot_s3, plot_scalars
from napari_dmcr.widgets._base import in_background


class CharacterizeMixin:
    """Characterize for :class:`~napari_dmcr.widgets._reconstruct.ReconstructWidget`.

    Uses the input part (``_target``, ``_chosen_phase``, ``_phase``), the ``_preset`` setting,
    and the widget's ``_characterize_button``, ``descriptor_canvas``, ``_tabs`` and ``status``.
    """

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
            in_background(work),
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
        self.descriptor_canvas.paint(lambda figure: paint_characterization(figure, entries))
        self._tabs.setCurrentWidget(self.descriptor_canvas)
        line, warned = characterization_line(phase, entries)
        self.status.info(line, notify=warned)


def characterization_line(phase, entries):
    """``(line, warned)``: the phase's fraction in each slice with the material's 95 % interval,
    its TV, and a warning when three slices cannot be one material
    (:mod:`~napari_dmcr.descriptors.representativity`)."""
    intervals = [interval(e["volume_fraction"], e["volume_fraction_sd"]) for e in entries]
    fractions = ", ".join(f"{i['fraction']:.3f} (95 % {i['low']:.3f}-{i['high']:.3f})" for i in intervals)
    warnings = disagreements(intervals, SLICE_NAMES, phase) if len(entries) > 1 else []
    line = " ".join([f"phase {phase}: volume fraction {fractions}, TV {entries[0]['tv']:.3f}.", *warnings])
    return line, bool(warnings)


def paint_characterization(figure, entries):
    """S2, S3, the scalars and (when computed) the Gram matrices of one phase on ``figure``.

    ``entries``: the phase's descriptors of one slice, or of three orthogonal slices (normal to
    z, y, x), whose radial S2 curves are drawn together.
    """
    gram = "gram" in entries[0]
    mosaic = [["s2", "s2"], ["s3", "scalars"]] + ([["gram", "gram"]] if gram else [])
    axes = figure.subplot_mosaic(mosaic)
    if len(entries) == 1:
        plot_s2(axes["s2"], entries[0])
    else:
        for direction, entry in zip(("normal to z", "normal to y", "normal to x"), entries):
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
