"""Run an optimizer in a helper thread and relay its progress steps through a generator.

The generator hands over only the newest step, so a slow consumer (a GUI, a terminal) never
slows the run; closing it, or the cancel token, stops the run within one evaluation; an error in
the thread is raised in the consumer, after the thread's frames are released (their tensors may
be a GPU's whole working set).
"""

from __future__ import annotations

import threading
import traceback

import torch


def relay(work, cancel):
    """Run ``work(emit)`` in a thread, yield what it emits (coalesced to the newest step) and
    return its result; an exception in the thread is raised here."""
    condition = threading.Condition()
    state = {"step": None, "finished": False}
    outcome = {}

    def emit(step):
        with condition:
            state["step"] = step
            condition.notify()

    def run():
        try:
            outcome["result"] = work(emit)
        except BaseException as error:  # handed over to the consuming thread
            outcome["error"] = error
            _release_frames(error)
            if torch.cuda.is_initialized():
                torch.cuda.empty_cache()  # what the cleared frames held goes back to the driver
        finally:
            with condition:
                state["finished"] = True
                condition.notify()

    thread = threading.Thread(target=run, name="dmcr-reconstruct", daemon=True)
    thread.start()
    try:
        finished = False
        while not finished:
            with condition:
                while state["step"] is None and not state["finished"]:
                    condition.wait()
                finished = state["finished"]
                step, state["step"] = state["step"], None
            if step is not None:
                yield step
    finally:
        if thread.is_alive():
            cancel.cancel()
        thread.join()
    if "error" in outcome:
        raise outcome.pop("error")  # popped: a reference kept here would tie the error to this frame
    return outcome["result"]


def _release_frames(error):
    """Drop the local variables of the frames an error and the errors behind it passed through.

    Their tensors (a GPU run's whole working set, after an out-of-memory error) are then freed at
    once, not when the garbage collector finds the traceback's reference cycles, so that a retry
    with a smaller chunk size has the memory. The traceback's text is kept.
    """
    pending, seen = [error], set()
    while pending:
        error = pending.pop()
        if error is None or id(error) in seen:  # `raise e from e` makes a cycle
            continue
        seen.add(id(error))
        traceback.clear_frames(error.__traceback__)
        pending += [error.__cause__, error.__context__]
