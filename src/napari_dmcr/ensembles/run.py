"""Many realizations as Dask tasks: each core and its record written as its task ends.

Tasks run on a Dask cluster (a local one by default, or an existing scheduler's workers); the
client writes each realization (``<name>.npy`` and its sidecar ``<name>.npy.json``: the run's
record, its unfitted 3D measures and properties) the moment its task ends. A worker that dies
loses only the task it was running, which Dask runs again elsewhere; a rerun of the same
ensemble skips every realization whose volume and sidecar are already there, intact.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_dmcr.checks import positive_integer, whole_number
from napari_dmcr.ensembles.realization import check_realization, realize
from napari_dmcr.errors import InputError
from napari_dmcr.io.atomic import write_json
from napari_dmcr.io.writers import file_sha256, make_output_folder, read_sidecar, sidecar_path, write_volume
from napari_dmcr.progress import Cancelled
from napari_dmcr.properties.summary import PER_AXIS, check_properties_settings
from napari_dmcr.reconstruction.cost import _bytes_text, _seconds_text, estimate_settings
from napari_dmcr.threads import free_cores

SUMMARY = "ensemble.json"
SCHEDULER_TIMEOUT_S = 5  # a wrong or unreachable scheduler address fails within this
_RECORD_BYTES = 8e3  # a realization's sidecar: its record, measures and properties
_HOST_PORT_SCHEMES = ("tcp", "tls", "ws", "wss")


@dataclass(frozen=True)
class EnsembleEstimate:
    """What an ensemble will roughly take, from the cost model, before it starts.

    Attributes
    ----------
    realizations : int
    seconds_each : float
        Wall time of one realization on one worker.
    workers : int or None
        Workers of the local cluster; None on an existing scheduler (not known before it runs).
    disk_bytes : float
        The volumes and their sidecars.
    """

    realizations: int
    seconds_each: float
    workers: int | None
    disk_bytes: float

    def summary(self) -> str:
        """One line, e.g. ``"≈ 2 s each, ≈ 3 h on 2 workers, ≈ 45 MB on disk"``."""
        text = f"≈ {_seconds_text(self.seconds_each)} each"
        if self.workers:
            rounds = math.ceil(self.realizations / self.workers)
            text += f", ≈ {_seconds_text(rounds * self.seconds_each)} on {self.workers} workers"
        return f"{text}, ≈ {_bytes_text(self.disk_bytes)} on disk"


def realization_name(slice_index, seed):
    return f"slice{slice_index}_seed{seed}"


def recorded(options):
    """The engine options as a record keeps them (an initial field is an array, not a setting)."""
    return {key: value for key, value in options.items() if key != "initial"}


def ensemble_key(targets, shape, method, options, properties):
    """A digest of everything that makes a realization: its slices, shape, engine and settings."""
    digest = hashlib.sha256()
    for target in targets:
        images = target.values() if isinstance(target, dict) else [target]
        for image in images:
            image = np.ascontiguousarray(image)
            digest.update(f"{image.shape}{image.dtype}".encode())
            digest.update(image.tobytes())
    text = json.dumps([list(shape), method, recorded(options), properties], sort_keys=True, default=str)
    digest.update(text.encode())
    return digest.hexdigest()


def finished_record(path, key):
    """The sidecar of a realization already written whole (volume and sidecar agree) with the
    settings ``key``, else None; one made with other settings is refused (it is never replaced)."""
    path = Path(path)
    if not path.is_file() or not sidecar_path(path).is_file():
        return None
    try:
        record = read_sidecar(path)
    except InputError:
        return None
    if record.get("sha256") != file_sha256(path) or "measures" not in record:
        return None  # damaged or cut short: made again
    if record.get("ensemble_key") != key:
        raise InputError(
            f"{path} was made with other settings (slices, shape, method or options); "
            "choose another output folder, or move it away to make it again"
        )
    return record


def check_scheduler_address(address):
    """Refuse, before anything starts, an address that is not a Dask scheduler's (``tcp://HOST:PORT``)."""
    from distributed.comm import parse_address
    from distributed.comm.addressing import parse_host_port
    from distributed.comm.registry import backends

    try:
        scheme, location = parse_address(str(address), strict=False)
        if scheme in _HOST_PORT_SCHEMES:
            host, port = parse_host_port(location)
            valid = bool(host) and 0 < port < 65536
        else:
            valid = scheme in backends and bool(location)
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise InputError(
            f"{address!r} is not a Dask scheduler address; give it as tcp://HOST:PORT (the scheduler "
            "prints it, e.g. tcp://10.0.0.5:8786), or leave the scheduler out for a local cluster"
        )


def _client(scheduler, workers):
    from dask.distributed import Client, LocalCluster

    from napari_dmcr.ensembles.interrupts import IgnoreInterrupt

    if scheduler:
        try:
            return Client(scheduler, timeout=f"{SCHEDULER_TIMEOUT_S}s"), None
        except (OSError, TimeoutError) as error:
            raise InputError(
                f"cannot reach the Dask scheduler at {scheduler} ({error}); check that it runs and the "
                "address, or leave the scheduler out for a local cluster"
            ) from None
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
    client = Client(cluster)
    client.register_plugin(IgnoreInterrupt())
    return client, cluster


def _close(client, cluster, cancelled):
    """Close the client and the local cluster; after a cancel, its workers stop logging first: each
    task they drop would warn."""
    if cancelled and cluster is not None:
        client.run(_quiet_logging, on_error="ignore")
    client.close()
    if cluster is not None:
        cluster.close()


def _quiet_logging():
    """Run on each worker before it is closed."""
    import logging

    logging.getLogger("distributed").setLevel(logging.CRITICAL)


def _local_workers(workers, realizations):
    """Workers of a local cluster: as asked, else one per free core (one thread each), at most
    one per realization."""
    return workers or max(1, min(realizations, free_cores()))


def run_ensemble(
    targets,
    shape,
    out,
    *,
    realizations=3,
    seed=0,
    method="dmcr",
    options=None,
    properties=None,
    scheduler=None,
    workers=None,
    client=None,
    on_result=None,
    on_start=None,
    cancel=None,
):
    """Reconstruct ``realizations`` seeds of each target slice on a Dask cluster.

    Parameters
    ----------
    targets : list of numpy.ndarray or dict
        Labeled 2D slices (or dicts of three orthogonal slices); every one gets every seed.
    shape : tuple of 3 int
    out : str or Path
        Folder of the realizations and the summary :data:`SUMMARY` (created if missing).
    realizations : int
        Seeds per slice: ``seed``, ``seed + 1``, ...
    seed : int
    method : {"dmcr", "yt"}
    options : dict, optional
        Engine settings (``phase``, ``descriptors``, ...), checked before anything starts.
    properties : dict, optional
        Keyword arguments of :func:`~napari_dmcr.properties.volume_properties`; None: skip them.
    scheduler : str, optional
        Address of an existing Dask scheduler; a local cluster by default.
    workers : int, optional
        Workers of the local cluster (one thread each); the machine's cores by default.
    client : dask.distributed.Client, optional
        A client to use as it is (the caller closes it).
    on_result : callable, optional
        Called with ``(name, record, written)`` as each realization is written (``written``
        True) or found finished by an earlier run (False).
    on_start : callable, optional
        Called with the number of realizations and their :class:`EnsembleEstimate` once every
        setting has passed its checks and the folder ``out`` is made, before anything is read
        back or computed.
    cancel : CancelToken, optional
        Checked while the tasks run: the pending ones are cancelled (the finished ones stay
        written) and :class:`~napari_dmcr.progress.Cancelled` is raised.

    Returns
    -------
    dict
        The summary written to ``out/ensemble.json``: the realizations' names, the mean and SD of
        every measure and property, which were skipped as already finished, which failed (their
        errors; :class:`InputError` is raised after the summary is written) and the settings.
    """
    realizations = positive_integer("realizations", realizations)
    seed = whole_number("seed", seed, 0)
    workers = None if workers is None else positive_integer("workers", workers)
    options = dict(options or {})
    if scheduler:
        check_scheduler_address(scheduler)
    if not targets:
        raise InputError("an ensemble needs at least one target slice")
    settings = [check_realization(target, shape, method, options) for target in targets]
    if properties is not None:
        check_properties_settings(properties)
    out = make_output_folder(out)
    key = ensemble_key(targets, shape, method, options, properties)
    jobs = {realization_name(i, s): (i, s) for i in range(len(targets)) for s in range(seed, seed + realizations)}
    if on_start is not None:
        on_start(
            len(jobs), _estimate(settings, method, len(jobs), None if scheduler else _local_workers(workers, len(jobs)))
        )
    records = {name: record for name in jobs if (record := finished_record(out / f"{name}.npy", key)) is not None}
    skipped = list(records)
    for name in skipped:
        if on_result is not None:
            on_result(name, records[name], False)
    pending = [name for name in jobs if name not in records]
    failed = {}
    start = time.perf_counter()
    if pending:
        own = client is None
        cluster = None
        if own:
            client, cluster = _client(scheduler, _local_workers(workers, len(pending)))
        try:
            tasks = _submit(client, jobs, pending, targets, shape, method, options, properties)
            failed = _collect(client, tasks, jobs, key, out, records, on_result, cancel)
        finally:
            if own:
                _close(client, cluster, cancelled=cancel is not None and cancel.cancelled)
    summary = summarize(records)
    summary.update(
        skipped=skipped,
        failed=failed,
        seconds=time.perf_counter() - start,
        settings={
            "shape": list(shape),
            "method": method,
            "phase": settings[-1].phase,
            "realizations": realizations,
            "first_seed": seed,
            "slices": len(targets),
            "options": recorded(options),
            "properties": properties,
            "scheduler": scheduler or "local",
        },
    )
    write_json(out / SUMMARY, summary)
    if failed:
        name, message = next(iter(failed.items()))
        raise InputError(
            f"{len(failed)} of {len(jobs)} realizations failed ({name}: {message}); the others are written "
            f"in {out} and {SUMMARY} lists the failures; a rerun makes only the missing ones"
        )
    return summary


def _estimate(settings, method, realizations, workers):
    """The :class:`EnsembleEstimate` of ``realizations`` runs with these settings (one per slice);
    ``workers`` None for an existing scheduler's."""
    seconds_each = max(estimate_settings(checked, method).seconds for checked in settings)
    volume_bytes = math.prod(settings[0].shape) + 128  # uint8 labels and the .npy header
    return EnsembleEstimate(
        realizations=realizations,
        seconds_each=seconds_each,
        workers=workers,
        disk_bytes=realizations * (volume_bytes + _RECORD_BYTES),
    )


def _submit(client, jobs, pending, targets, shape, method, options, properties):
    """One task per pending realization; ``{future: name}``."""
    scattered = client.scatter(list(targets), broadcast=True)
    tasks = {}
    for name in pending:
        index, seed = jobs[name]
        future = client.submit(
            realize,
            scattered[index],
            tuple(shape),
            seed,
            method,
            options,
            properties,
            key=f"dmcr-{name}-{os.getpid()}-{time.time_ns()}",
            pure=False,
        )
        tasks[future] = name
    return tasks


def _collect(client, tasks, jobs, key, out, records, on_result, cancel):
    """Write each realization as its task ends (polling, so that a cancel is seen within 0.5 s);
    a task that raised is recorded and the others go on. Returns ``{name: error message}``."""
    from dask.distributed import wait

    remaining, failed = dict(tasks), {}
    while remaining:
        if cancel is not None and cancel.cancelled:
            client.cancel(list(remaining))
            raise Cancelled()
        try:
            done = wait(list(remaining), timeout=0.5, return_when="FIRST_COMPLETED").done
        except TimeoutError:
            continue
        for future in done:
            name = remaining.pop(future)
            try:
                result = future.result()
            except Exception as error:  # the task's own error (a lost worker is retried by Dask)
                failed[name] = f"{type(error).__name__}: {error}"
                continue
            record = {**result["record"], "name": name, "slice": jobs[name][0], "ensemble_key": key}
            write_volume(out / f"{name}.npy", result["labels"], parameters=record)
            records[name] = read_sidecar(out / f"{name}.npy")
            if on_result is not None:
                on_result(name, records[name], True)
    return failed


def _flat(record):
    """Scalar measures and per-axis properties of one realization as ``{name: value}``."""
    values = {f"measures.{key}": value for key, value in record.get("measures", {}).items()}
    properties = record.get("properties") or {}
    for key in PER_AXIS:
        for axis, value in zip(properties.get("axes", ()), properties.get(key, ())):
            values[f"properties.{key}_{axis}"] = value
    return values


def summarize(records):
    """Mean, SD, minimum and maximum over the realizations of every measure and property."""
    flat = {name: _flat(record) for name, record in records.items()}
    keys = sorted({key for values in flat.values() for key in values})
    statistics = {}
    for key in keys:
        values = np.array([v[key] for v in flat.values() if v.get(key) is not None], float)
        values = values[np.isfinite(values)]
        if values.size:
            statistics[key] = {
                "mean": float(values.mean()),
                "sd": float(values.std(ddof=1)) if values.size > 1 else 0.0,
                "min": float(values.min()),
                "max": float(values.max()),
                "count": int(values.size),
            }
    return {"realizations": sorted(records), "statistics": statistics, "values": flat}
