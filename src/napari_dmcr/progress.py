"""Progress steps, cancel tokens and throttling shared by every long-running engine.

The differentiable reconstruction and the Yeong-Torquato baseline are both generators that yield
:class:`ProgressStep` objects and return a result; the napari widget and the command line drive
them the same way.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np


class Cancelled(Exception):
    """Raised inside an engine when its :class:`CancelToken` was set."""


class CancelToken:
    """A thread-safe flag that asks a running engine to stop at its next check.

    Engines check it at least once per optimizer iteration (and between slice chunks), so a
    cancel takes effect within one iteration.
    """

    def __init__(self):
        self._event = threading.Event()

    def cancel(self):
        """Ask the engine to stop."""
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self):
        if self._event.is_set():
            raise Cancelled()


@dataclass
class ProgressStep:
    """One report from a running engine.

    Attributes
    ----------
    iteration : int
        Iterations done so far in the current stage (optimizer iterations or swap batches).
    total : int
        Iteration budget of the current stage.
    stage : str
        Human-readable stage, e.g. ``"level 2/3 (32x32x32)"``.
    losses : dict of str to float
        Current loss per descriptor and ``"total"``.
    elapsed : float
        Seconds since the run started.
    volume : numpy.ndarray or None
        The current field as float32 in [0, 1] (phase of interest), or None when the engine
        was asked not to send previews.
    """

    iteration: int
    total: int
    stage: str
    losses: dict = field(default_factory=dict)
    elapsed: float = 0.0
    volume: np.ndarray | None = None

    @property
    def fraction_done(self) -> float:
        return min(1.0, self.iteration / max(self.total, 1))


class Throttle:
    """Lets an event through at most once every ``min_interval_s`` seconds of wall time."""

    def __init__(self, min_interval_s: float):
        self.min_interval_s = float(min_interval_s)
        self._last = -np.inf

    def ready(self) -> bool:
        now = time.perf_counter()
        if now - self._last >= self.min_interval_s:
            self._last = now
            return True
        return False


class RunSteps:
    """An engine's run: the iterator of its :class:`ProgressStep` (its result the value of the
    ``StopIteration``), with what was known before it started.

    Attributes
    ----------
    estimate : RunEstimate
        The cost model's memory and time of the run (``estimate.summary()`` is one line).
    """

    def __init__(self, steps, estimate):
        self._steps = steps
        self.estimate = estimate

    def __iter__(self):
        return self

    def __next__(self):
        return next(self._steps)

    def close(self):
        """Stop the run (the engine keeps its best state, as on a cancel)."""
        self._steps.close()


def drain(steps, on_step=None):
    """Run an engine's generator to the end; return its result (the ``StopIteration`` value).

    ``on_step(step)`` is called with every :class:`ProgressStep` yielded, if given.
    """
    while True:
        try:
            step = next(steps)
        except StopIteration as stop:
            return stop.value
        if on_step is not None:
            on_step(step)


def fractions_line(labels):
    """``"phase fractions 0: 0.6953, 1: 0.3047"``: the first line of every result's summary."""
    import numpy as np

    values, counts = np.unique(labels, return_counts=True)
    return "phase fractions " + ", ".join(f"{v}: {c / labels.size:.4f}" for v, c in zip(values, counts))
