"""One realization of an ensemble, as a worker runs it: reconstruct, then measure what it does."""

from __future__ import annotations

import time

from napari_dmcr.errors import InputError
from napari_dmcr.evaluation.structure import structure_measures
from napari_dmcr.labels import minority_label
from napari_dmcr.threads import use_threads


def check_realization(target, shape, method="dmcr", options=None):
    """Check one realization's settings as its engine would, before any task starts; the engine's
    checked settings."""
    options = dict(options or {})
    if method == "yt":
        from napari_dmcr.baselines.annealing_settings import check_annealing_settings

        return check_annealing_settings(target, shape, **options)
    if method != "dmcr":
        raise InputError(f"unknown method {method!r}; use 'dmcr' or 'yt'")
    from napari_dmcr.reconstruction.settings import check_settings

    return check_settings(target, shape, **options)


def realize(target, shape, seed, method="dmcr", options=None, properties=None):
    """Reconstruct one core and measure it; runs on a Dask worker (or in the calling process).

    Parameters
    ----------
    target : numpy.ndarray or dict
        The labeled 2D slice (or three orthogonal slices) to reconstruct from.
    shape : tuple of 3 int
    seed : int
    method : {"dmcr", "yt"}
    options : dict, optional
        Further settings of the engine (``phase``, ``descriptors``, ...).
    properties : dict, optional
        Keyword arguments of :func:`~napari_dmcr.properties.volume_properties`; None: skip them.

    Returns
    -------
    dict
        ``labels`` and ``record``: the run's record, ``measures`` (unfitted 3D structure),
        ``properties`` (when asked) and ``seconds``.
    """
    use_threads(1)  # a Dask worker runs one task per thread, one worker per free core
    options = dict(options or {})
    start = time.perf_counter()
    if method == "yt":
        from napari_dmcr.baselines.yeong_torquato import run_yeong_torquato

        result = run_yeong_torquato(target, shape, seed=seed, **options)
    else:
        from napari_dmcr.reconstruction import run_reconstruction

        result = run_reconstruction(target, shape, seed=seed, **options)
    labels, phase = result.labels, result.parameters["phase"]
    if phase is None:  # a multi-phase run matches every label: measure the minority one
        phase = minority_label([labels])
    record = result.record()
    record.pop("history", None)  # per-iteration history stays out of an ensemble's sidecars
    record["seed"] = int(seed)
    record["measures"] = structure_measures(labels, phase)
    if properties is not None:
        from napari_dmcr.properties import volume_properties

        record["properties"] = volume_properties(labels, phase, **properties)
    record["seconds"] = time.perf_counter() - start
    return {"labels": labels, "record": record}
