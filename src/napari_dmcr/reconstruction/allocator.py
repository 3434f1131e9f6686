"""Let the C library keep the memory of the loss's large temporaries for the next evaluation.

torch's CPU tensors come from ``malloc``. glibc's ``malloc`` maps blocks above its mmap
threshold (dynamic, at most 32 MiB) straight from the kernel and unmaps them when they are freed,
and it hands the top of its heap back once more than its trim threshold is free. A loss
evaluation's temporaries (a chunk of slices' descriptors and their gradients, as large as the
memory budget allows) were then mapped, zero-filled page by page and unmapped again at every
evaluation. With both thresholds at :data:`THRESHOLD`, freed blocks are reused: a 64^3
evaluation with the ``cpu`` preset on 2 cores takes about half the time
(``benchmarks/results/allocator.json``), for up to :data:`THRESHOLD` of freed memory kept by
the process.

Only with glibc; a user who sets ``MALLOC_MMAP_THRESHOLD_`` or ``MALLOC_TRIM_THRESHOLD_`` keeps
their own choice.
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform

THRESHOLD = 256 * 2**20  # bytes: above the largest temporaries of the default memory budget
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


@functools.cache
def reuse_freed_memory():
    """Raise glibc's mmap and trim thresholds to :data:`THRESHOLD`, once per process.

    Returns
    -------
    bool
        True when both were set; False elsewhere than glibc or when the user set either.

    Examples
    --------
    >>> reuse_freed_memory() in (True, False)
    True
    """
    if platform.libc_ver()[0] != "glibc" or any(name in os.environ for name in USER_SETTINGS):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, THRESHOLD))
