"""Ensembles on Dask: a killed worker loses only its task; a rerun skips finished realizations."""

import json
import os
import signal
import threading
import time

import numpy as np
import pytest

from napari_dmcr.ensembles import SUMMARY, run_ensemble, summarize
from napari_dmcr.errors import InputError
from napari_dmcr.samples import conglomerate_volume

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def target():
    return conglomerate_volume((32, 32, 32), seed=0)[16]


def _kill_a_busy_worker(client, killed, deadline_s=60.0):
    """SIGKILL the process of the first worker seen running a task (its nanny restarts it)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        busy = [address for address, keys in client.processing().items() if keys]
        if busy:
            pid = client.run(os.getpid, workers=busy[:1])[busy[0]]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            return
        time.sleep(0.02)


def test_an_ensemble_survives_a_killed_worker_and_a_rerun_skips_what_is_finished(tmp_path, target):
    from dask.distributed import Client, LocalCluster

    shape = (16, 16, 16)
    options = {"device": "cpu", "max_iter": 10}
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    with cluster, Client(cluster) as client:
        killed = []
        killer = threading.Thread(target=_kill_a_busy_worker, args=(client, killed))
        killer.start()
        summary = run_ensemble(
            [target], shape, tmp_path, realizations=3, options=options, properties={"elastic": False}, client=client
        )
        killer.join()
    assert killed, "no worker was seen running a task"
    names = ["slice0_seed0", "slice0_seed1", "slice0_seed2"]
    assert summary["realizations"] == names and summary["skipped"] == []
    for seed, name in enumerate(names):
        labels = np.load(tmp_path / f"{name}.npy")
        record = json.loads((tmp_path / f"{name}.npy.json").read_text())
        assert labels.shape == shape and record["seed"] == seed
        assert set(record["properties"]["diffusivity"]) and "largest_cluster" in record["measures"]
    written = {name: (tmp_path / f"{name}.npy").stat().st_mtime_ns for name in names}

    seen = []
    rerun = run_ensemble(
        [target],
        shape,
        tmp_path,
        realizations=3,
        options=options,
        properties={"elastic": False},
        on_result=lambda name, record, fresh: seen.append((name, fresh)),
        on_start=lambda total, estimate: seen.append(total),
    )  # nothing is pending: no cluster is started
    assert rerun["skipped"] == names and seen == [3] + [(name, False) for name in names]
    assert {name: (tmp_path / f"{name}.npy").stat().st_mtime_ns for name in names} == written
    stored = json.loads((tmp_path / SUMMARY).read_text())
    assert stored["statistics"]["measures.fraction"]["count"] == 3


def test_a_damaged_realization_is_run_again(tmp_path, target):
    options = {"device": "cpu", "max_iter": 5}
    run_ensemble([target], (12, 12, 12), tmp_path, realizations=1, options=options, workers=1)
    (tmp_path / "slice0_seed0.npy").write_bytes(b"truncated")
    summary = run_ensemble([target], (12, 12, 12), tmp_path, realizations=1, options=options, workers=1)
    assert summary["skipped"] == [] and np.load(tmp_path / "slice0_seed0.npy").shape == (12, 12, 12)


def test_summary_statistics_match_numpy():
    records = {
        f"r{i}": {"measures": {"fraction": f}, "properties": {"axes": ["z", "y", "x"], "diffusivity": [f, 0.0, None]}}
        for i, f in enumerate([0.2, 0.3, 0.7])
    }
    stats = summarize(records)["statistics"]
    assert stats["measures.fraction"]["mean"] == pytest.approx(0.4)
    assert stats["measures.fraction"]["sd"] == pytest.approx(np.std([0.2, 0.3, 0.7], ddof=1))
    assert stats["properties.diffusivity_y"]["max"] == 0.0
    assert "properties.diffusivity_x" not in stats  # no value on any realization


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"realizations": 0}, "realizations must be a positive integer"),
        ({"workers": 0}, "workers must be a positive integer"),
        ({"method": "sa"}, "unknown method"),
        ({"properties": {"young": (1.0,), "poisson": (0.6,)}}, "Poisson ratios"),
        ({"options": {"phase": 7}}, "phase"),
    ],
)
def test_bad_settings_fail_before_a_cluster_starts(tmp_path, target, kwargs, message):
    started = []  # the command line prints its banner there: not before an error
    with pytest.raises(InputError, match=message):
        run_ensemble([target], (12, 12, 12), tmp_path / "out", on_start=started.append, **kwargs)
    assert not (tmp_path / "out").exists() and not started


def test_a_failing_task_keeps_the_others_and_says_so_after_writing_them(tmp_path, target):
    three_labels = target.copy()
    three_labels[:8, :8] = 2  # no modulus given for label 2: its tasks fail on the worker
    options = {"device": "cpu", "max_iter": 5}
    properties = {"young": (1.0, 2.0), "poisson": (0.2, 0.2), "elastic": True}
    with pytest.raises(InputError, match=r"1 of 2 realizations failed .*slice1_seed0.*for each label"):
        run_ensemble(
            [target, three_labels],
            (12, 12, 12),
            tmp_path,
            options=options,
            properties=properties,
            realizations=1,
            workers=1,
        )
    summary = json.loads((tmp_path / SUMMARY).read_text())
    assert summary["realizations"] == ["slice0_seed0"] and list(summary["failed"]) == ["slice1_seed0"]
    assert (tmp_path / "slice0_seed0.npy").is_file() and not (tmp_path / "slice1_seed0.npy").exists()


def test_a_rerun_with_other_settings_is_refused_and_replaces_nothing(tmp_path, target):
    options = {"device": "cpu", "max_iter": 5}
    run_ensemble([target], (12, 12, 12), tmp_path, realizations=1, options=options, workers=1)
    before = (tmp_path / "slice0_seed0.npy").read_bytes()
    with pytest.raises(InputError, match="made with other settings"):
        run_ensemble([target], (16, 16, 16), tmp_path, realizations=1, options=options, workers=1)
    assert (tmp_path / "slice0_seed0.npy").read_bytes() == before


def test_a_sidecar_that_is_not_text_is_made_again(tmp_path, target):
    options = {"device": "cpu", "max_iter": 5}
    run_ensemble([target], (12, 12, 12), tmp_path, realizations=1, options=options, workers=1)
    (tmp_path / "slice0_seed0.npy.json").write_bytes(b'{"sha256": "\xff\xfe')
    summary = run_ensemble([target], (12, 12, 12), tmp_path, realizations=1, options=options, workers=1)
    assert summary["skipped"] == [] and json.loads((tmp_path / "slice0_seed0.npy.json").read_text())["seed"] == 0
