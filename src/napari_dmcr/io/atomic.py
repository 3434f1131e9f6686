"""Atomic file writes: write to a temporary file beside the target, then rename; a lock that keeps
two runs from writing the same output."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import tempfile
from pathlib import Path

from napari_dmcr.errors import InputError


@contextlib.contextmanager
def atomic_path(path, suffix=None, *, overwrite=True):
    """Yield a temporary path in the target's folder; rename it onto ``path`` on success.

    On an exception the temporary file is removed and ``path`` is left untouched, so a failed
    or cancelled write never leaves a half-written file under the final name.

    Parameters
    ----------
    path : str or Path
        Final destination.
    suffix : str, optional
        Suffix of the temporary file (some writers choose the format from it). Defaults to the
        suffix of ``path``.
    overwrite : bool, optional
        Replace an existing ``path``. When False, the file is put in place only if the name is
        still free at that moment; otherwise :class:`FileExistsError` is raised and the existing
        file is kept.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=path.suffix if suffix is None else suffix, dir=path.parent
    )
    os.close(fd)
    # mkstemp creates the file private (0600); give it the mode a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield Path(tmp)
        if overwrite:
            os.replace(tmp, path)
        else:
            _create_from(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _create_from(tmp, path):
    """Give ``tmp`` the name ``path`` only if that name is free: a hard link, unlike a rename,
    fails on an existing name, even one made by another process a moment ago."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: check, then rename
        if os.path.lexists(path):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(tmp), None, str(path)) from None
        os.replace(tmp, path)
    else:
        os.unlink(tmp)


def write_json(path, data, *, overwrite=True):
    """Write ``data`` as indented JSON, atomically (``overwrite`` as in :func:`atomic_path`)."""
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_text(json.dumps(json_ready(data), indent=2) + "\n")


@contextlib.contextmanager
def output_lock(path, check=None):
    """Hold ``<path>.lock`` while a run makes ``path``, so that a second run with the same output
    fails at once instead of replacing the first one's result. The lock goes at the end, also
    on an error or a cancel; one left by a process that no longer runs is taken over.

    ``check()``, when given, checks the output: before the lock is made (its errors say what is
    wrong with the path) and again once it is held (an output that a run ending meanwhile made
    is not replaced)."""
    path = Path(path)
    lock = path.with_name(path.name + ".lock")
    if check is not None:
        check()
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        if lock.exists() and _stale(lock):
            lock.unlink(missing_ok=True)
        with open(lock, "x") as handle:  # exclusive: of two runs started together, one gets it
            try:
                handle.write(f"{os.getpid()} {socket.gethostname()}\n")
            except OSError:
                lock.unlink(missing_ok=True)  # an empty lock would never be taken over
                raise
    except FileExistsError:
        raise InputError(
            f"{path}: another run is writing it (its lock {lock} exists); choose another output, "
            f"or wait for that run to end (delete {lock.name} if no run is left)"
        ) from None
    except OSError as error:  # the folder takes no new files: the output could not be written either
        raise InputError(
            f"{path}: cannot write in {lock.parent} ({error.strerror or error}); choose another output"
        ) from None
    try:
        if check is not None:
            check()
        yield
    finally:
        lock.unlink(missing_ok=True)


def _stale(lock):
    """Whether ``lock`` was left by a process of this machine that no longer runs."""
    import psutil

    try:
        pid, host = lock.read_text().split()
        pid = int(pid)
    except (OSError, ValueError):
        return False  # being written, or not ours: not taken over
    return host == socket.gethostname() and not psutil.pid_exists(pid)


def json_ready(value):
    """A copy of ``value`` with tuples, paths, NumPy scalars and arrays turned into JSON types:
    what :func:`write_json` writes, and napari layer metadata (saved with the layer)."""
    if isinstance(value, dict):
        return {str(key): json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    import numpy as np

    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value
