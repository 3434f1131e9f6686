"""Let the C library keep the memory of the loss's large temporaries for the next evaluation.

torch's CPU tensors come from ``malloc``. glibc's ``malloc`` maps blocks above its mmap
threshold (dynamic, at most 32 MiB) straight from the kernel and unmaps them when they are freed,
and it hands the top of a heap back once more than its trim threshold is free. A loss
evaluation's temporaries (a chunk of slices' descriptors and their gradients, as large as the
memory budget allows) were then mapped, zero-filled page by page and unmapped again at every
evaluation. With both thresholds raised, freed blocks are reused: a 64^3 evaluation with the
``cpu`` preset on 2 cores takes about half the time, for a peak resident memory about a tenth
higher (``benchmarks/results/allocator.json``).

Only with glibc, and only for runs on the CPU; a user who sets ``MALLOC_MMAP_THRESHOLD_``,
``MALLOC_TRIM_THRESHOLD_`` or the matching ``GLIBC_TUNABLES`` keeps their own choice.
"""

from __future__ import annotations

import ctypes
import functools
import os

THRESHOLD = 256 * 2**20  # bytes: above the largest temporaries of the default memory budget
FALLBACK = 32 * 2**20  # the highest mmap threshold that some older glibc releases accept (64-bit)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
USER_TUNABLES = ("glibc.malloc.mmap_threshold", "glibc.malloc.trim_threshold")


def _glibc():
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (AttributeError, ValueError, OSError):  # no confstr, or no such name: not glibc
        return False


def _users_choice():
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    return any(name in os.environ for name in USER_SETTINGS) or any(name in tunables for name in USER_TUNABLES)


@functools.cache
def reuse_freed_memory():
    """Raise glibc's mmap and trim thresholds to :data:`THRESHOLD`, once per process.

    An older glibc that refuses so high an mmap threshold gets :data:`FALLBACK`.

    Returns
    -------
    bool
        True when both were set; False elsewhere than glibc or when the user chose.
    """
    if not _glibc() or _users_choice():
        return False
    mallopt = ctypes.CDLL(None).mallopt
    mapped = mallopt(M_MMAP_THRESHOLD, THRESHOLD) or mallopt(M_MMAP_THRESHOLD, FALLBACK)
    trimmed = mallopt(M_TRIM_THRESHOLD, THRESHOLD)
    return bool(mapped) and bool(trimmed)
