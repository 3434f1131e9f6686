"""The thread policy: the count asked for, else the free cores, given to torch, numba and BLAS."""

import os
import subprocess
import sys
import threading
import time

import numba
import pytest
import torch
from threadpoolctl import threadpool_info

from napari_dmcr.errors import InputError
from napari_dmcr.threads import (
    BACKGROUND_NICENESS,
    THREADS_VARIABLE,
    free_cores,
    run_in_background,
    thread_count,
    usable_cores,
    use_threads,
)


def test_the_count_is_the_one_asked_for_else_the_variable(monkeypatch):
    monkeypatch.setenv(THREADS_VARIABLE, "1")
    assert thread_count() == 1 and thread_count(3) == 3
    monkeypatch.setenv(THREADS_VARIABLE, "two")
    with pytest.raises(InputError, match=THREADS_VARIABLE):
        thread_count()
    with pytest.raises(InputError, match="threads must be a whole number >= 1"):
        thread_count(0)


def test_every_pool_gets_the_count_and_a_viewer_keeps_a_core(monkeypatch):
    monkeypatch.delenv(THREADS_VARIABLE, raising=False)
    before = torch.get_num_threads(), numba.get_num_threads()
    try:
        assert use_threads(1) == 1
        assert torch.get_num_threads() == 1 and numba.get_num_threads() == 1
        assert all(pool["num_threads"] == 1 for pool in threadpool_info())
        free = use_threads(reserve=1)
        assert 1 <= free <= max(1, len(usable_cores()) - 1) and torch.get_num_threads() == free
    finally:
        torch.set_num_threads(before[0])
        numba.set_num_threads(before[1])


def test_waiting_threads_sleep_unless_the_user_says_otherwise():
    code = (
        "import os; os.environ['OMP_WAIT_POLICY'] = 'ACTIVE'; import napari_dmcr; print(os.environ['OMP_WAIT_POLICY'])"
    )
    kept = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    fresh = subprocess.run(
        [sys.executable, "-c", "import napari_dmcr, os; print(os.environ['OMP_WAIT_POLICY'])"],
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"},
    ).stdout
    assert kept.strip() == "ACTIVE" and fresh.strip() == "PASSIVE"


@pytest.mark.skipif(len(usable_cores()) < 2, reason="needs two usable cores")
def test_a_busy_core_is_not_counted_free():
    core = usable_cores()[0]
    busy = subprocess.Popen(
        [sys.executable, "-c", f"import os\nos.sched_setaffinity(0, {{{core}}})\nwhile True: pass"],
    )
    try:
        time.sleep(0.5)
        assert free_cores(0.5) <= len(usable_cores()) - 1
    finally:
        busy.kill()
        busy.wait()


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="per-thread priorities are Linux's")
def test_a_background_thread_yields_to_the_others_and_only_it():
    seen = {}

    def work():
        thread = threading.get_native_id()
        before = os.getpriority(os.PRIO_PROCESS, thread)
        run_in_background()
        run_in_background()  # a pool thread that runs a second task: no lower
        seen["change"] = os.getpriority(os.PRIO_PROCESS, thread) - before
        seen["limit"] = before + BACKGROUND_NICENESS > 19

    main_before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    assert seen["change"] == BACKGROUND_NICENESS or seen["limit"]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == main_before
