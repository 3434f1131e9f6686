"""One thread policy for every entry point: no more compute threads than free cores, and
waiting threads that sleep rather than spin.

A CPU run's threads meet at a barrier after each parallel loop. Where one of them shares its
core with another job, the others spin at the barrier until it arrives (OpenMP's active wait),
so a run with as many threads as cores slows down many times beside one other job: a 64^3
diffusion axis took 51.9 s with torch's two threads beside one busy process, 2.65 s with one
(issue 31; ``benchmarks/results/contention.json``). So the command line, the widgets and the
ensembles count the cores that are free when they start (their idle share over
:data:`SAMPLE_S`) and give torch, numba and BLAS that many threads, and waiting OpenMP threads
sleep (:func:`passive_waiting`, set when the package is imported). ``--threads`` on the command
line or :data:`THREADS_VARIABLE` sets the count.

Examples
--------
>>> from napari_dmcr.threads import use_threads
>>> use_threads(1)
1
"""

from __future__ import annotations

import contextlib
import os
import threading

from napari_dmcr.checks import whole_number
from napari_dmcr.errors import InputError

THREADS_VARIABLE = "NAPARI_DMCR_THREADS"
SAMPLE_S = 0.2  # seconds over which the cores' idle share is measured
# Niceness a widget's run adds to its worker thread: on a core shared with the viewer's thread,
# the viewer then gets about three quarters of it when it has drawing to do (Linux weights
# 1024 against 335), and the run the rest, or all of it when the viewer idles.
BACKGROUND_NICENESS = 5


def passive_waiting():
    """Ask the OpenMP runtimes that torch and numba load to let waiting threads sleep (read when a
    runtime starts, so before torch is imported; a value the user set is kept)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def run_in_background(niceness=BACKGROUND_NICENESS):
    """Give the calling thread ``niceness`` more than the process's main thread (Linux, where each
    thread has its own priority; elsewhere nothing), so that a thread drawing a viewer runs first
    on a shared core. Calling it again in the same thread changes nothing.

    It cannot be raised back without privileges: call it in a thread that does background work
    from then on (napari's worker threads)."""
    if not hasattr(os, "setpriority") or not os.path.exists("/proc/self/task"):
        return
    thread = threading.get_native_id()
    with contextlib.suppress(OSError):  # a sandbox that forbids it: the run goes on at the usual priority
        wanted = min(19, os.getpriority(os.PRIO_PROCESS, os.getpid()) + niceness)
        if os.getpriority(os.PRIO_PROCESS, thread) < wanted:
            os.setpriority(os.PRIO_PROCESS, thread, wanted)


def usable_cores():
    """The cores this process may run on (its affinity), else the machine's."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return list(range(os.cpu_count() or 1))


def free_cores(sample_s=SAMPLE_S):
    """The usable cores left idle by other processes: their idle shares over ``sample_s``
    seconds, summed and rounded, at least 1."""
    import psutil

    cores = usable_cores()
    busy = psutil.cpu_percent(interval=sample_s, percpu=True)
    idle = sum(1.0 - busy[core] / 100.0 for core in cores if core < len(busy))
    return max(1, min(len(cores), int(idle + 0.5)))


def thread_count(threads=None):
    """The threads a run takes: ``threads``, else :data:`THREADS_VARIABLE`, else :func:`free_cores`."""
    if threads is None:
        threads = os.environ.get(THREADS_VARIABLE)
        if threads is None:
            return free_cores()
        try:
            threads = int(threads)
        except ValueError:
            raise InputError(f"{THREADS_VARIABLE} must be a whole number >= 1, got {threads!r}") from None
    return whole_number("threads", threads, 1)


def use_threads(threads=None, reserve=0):
    """Give torch, numba and BLAS :func:`thread_count` threads (``reserve`` fewer when they are
    the free cores, at least 1: a viewer keeps a core to redraw); return the count."""
    import numba
    import torch
    from threadpoolctl import threadpool_limits

    count = thread_count(threads)
    if threads is None and THREADS_VARIABLE not in os.environ:
        count = max(1, count - reserve)
    torch.set_num_threads(count)
    numba.set_num_threads(min(count, numba.config.NUMBA_NUM_THREADS))
    threadpool_limits(limits=count)  # BLAS and any other OpenMP pool loaded so far
    return count
