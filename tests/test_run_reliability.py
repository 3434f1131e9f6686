"""A run's settings are checked before any work, and no result is ever lost or replaced by mistake."""

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from napari_dmcr.baselines.yeong_torquato import run_yeong_torquato
from napari_dmcr.cli import main
from napari_dmcr.errors import InputError
from napari_dmcr.io.writers import file_sha256
from napari_dmcr.reconstruction import check_settings, options_from_parameters, reconstruct, run_reconstruction
from napari_dmcr.samples import conglomerate_slice

QUICK = ["--shape", "12", "12", "12", "--max-iter", "3", "--preset", "cpu"]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--direction-weights", "0", "0", "0"], "all 0"),
        (["--weights", "s3=nan"], "descriptor weight"),
        (["--weights", "s3=0", "tv=0", "vf=0"], "every descriptor weight is 0"),
        (["--restarts", "-2"], "restarts"),
        (["--seed", str(2**70)], "seed"),
        (["--chunk-size", "-3"], "chunk_size"),
        (["--s3-limit", "0"], "window"),
        (["--target-residual", "nan"], "target_residual"),
        (["--sharpen", "inf"], "sharpen"),
        (["--time-limit", "-1"], "time_limit_s"),
        (["--threads", "0"], "threads must be"),
        (["--shape", "4000", "4000", "4000"], "try a size of at most"),
    ],
)
def test_degenerate_settings_are_one_line_errors_before_the_run(tmp_path, capsys, extra, message):
    started = time.perf_counter()
    code = main(["reconstruct", "--out", str(tmp_path / "v.npy"), *QUICK, *extra])
    captured = capsys.readouterr()
    assert code == 2 and message in captured.err and "Traceback" not in captured.err
    assert len(captured.err.strip().splitlines()) == 1
    assert "reconstructing" not in captured.out and time.perf_counter() - started < 5
    assert not (tmp_path / "v.npy").exists()


def test_a_huge_shape_is_refused_at_once_by_both_engines():
    image = conglomerate_slice((32, 32), seed=0)
    for run in (lambda: reconstruct(image, (4000,) * 3, device="cpu"), lambda: run_yeong_torquato(image, (4000,) * 3)):
        started = time.perf_counter()
        with pytest.raises(InputError, match="free; try a size of at most"):
            run()
        assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(
    "images, message",
    [
        ({"x": np.eye(8, dtype=int), "y": np.eye(8, dtype=int), "z": 3 + 4 * np.eye(8, dtype=int)}, "different labels"),
        (np.eye(8, dtype=int) - 1, "non-negative"),
        (np.where(np.eye(8), np.inf, 0.0), "NaN or infinite"),
        (np.eye(8) * 0.5, "grey image"),
    ],
)
def test_labels_follow_one_rule(images, message):
    with pytest.raises(InputError, match=message):
        reconstruct(images, (8, 8, 8), device="cpu")


def test_a_phase_that_rounds_to_no_voxel_is_an_error():
    image = np.zeros((64, 64), np.uint8)
    image[:32] = 1
    image[0, 0] = 2  # 1 pixel in 4096: no voxel of an 8^3 volume
    with pytest.raises(InputError, match="rounds to no voxel"):
        reconstruct(image, (8, 8, 8), device="cpu")


def test_one_default_phase_for_both_engines():
    image = np.zeros((16, 16), np.uint8)
    image[:5] = 1  # label 1 is the minority
    image[5:7] = 2
    image[image == 0] = 7
    two = np.where(image == 1, 1, 7).astype(np.uint8)
    assert check_settings(two, (8, 8, 8), device="cpu").phase == 1
    assert run_yeong_torquato(two, (8, 8), max_swaps=10).parameters["phase"] == 1


def test_the_optimizer_stops_at_its_time_limit_with_exact_fractions():
    image = conglomerate_slice((32, 32), seed=1)
    options = dict(device="cpu", descriptors="cpu", start="random", max_iter=50, multigrid_levels=2, seed=2)
    limited = run_reconstruction(image, (16, 16, 16), time_limit_s=1e-6, **options)
    assert limited.parameters["stopped_at_time_limit"] and limited.parameters["time_limit_s"] == 1e-6
    assert len(limited.history) == 1  # the first iteration ends past the limit
    assert any("time limit" in note for note in limited.notes)
    assert limited.labels.shape == (16, 16, 16)
    assert abs((limited.labels == 1).mean() - (image == 1).mean()) < 1 / 16**3 + 1e-9
    free = run_reconstruction(image, (16, 16, 16), time_limit_s=0, **dict(options, max_iter=3))
    assert not free.parameters["stopped_at_time_limit"] and len(free.history) > 3
    assert check_settings(image, (16,) * 3, device="cpu").time_limit_s == 60.0  # a fitted start's polish
    assert check_settings(image, (16,) * 3, device="cpu", start="random").time_limit_s == 0.0


def test_a_run_is_rebuilt_from_its_record():
    image = conglomerate_slice((32, 32), seed=1)
    first = run_reconstruction(
        image, (12, 12, 12), device="cpu", descriptors="cpu", max_iter=4, seed=3, direction_weights=(1.0, 0.5, 0.5)
    )
    again = run_reconstruction(image, (12, 12, 12), **options_from_parameters(first.parameters))
    assert np.array_equal(first.labels, again.labels)
    assert again.parameters | {"versions": None} == first.parameters | {"versions": None}


def test_existing_outputs_are_replaced_only_when_asked(tmp_path, capsys):
    out = tmp_path / "core.npy"
    assert main(["reconstruct", "--out", str(out), *QUICK]) == 0
    digest = file_sha256(out)
    assert json.loads((tmp_path / "core.npy.json").read_text())["sha256"] == digest
    code = main(["reconstruct", "--out", str(out), *QUICK, "--seed", "5"])
    assert code == 2 and "--overwrite" in capsys.readouterr().err and file_sha256(out) == digest
    assert main(["reconstruct", "--out", str(out), *QUICK, "--seed", "5", "--overwrite"]) == 0
    record = json.loads((tmp_path / "core.npy.json").read_text())
    assert record["seed"] == 5 and record["sha256"] == file_sha256(out) != digest


def test_the_record_names_the_source_and_its_preprocessing(tmp_path, capsys):
    grey = conglomerate_slice((32, 32), seed=2) * 0.6 + np.random.default_rng(0).random((32, 32)) * 0.3
    np.save(tmp_path / "grey.npy", grey)
    out = tmp_path / "core.npy"
    assert main(["reconstruct", str(tmp_path / "grey.npy"), "--out", str(out), *QUICK]) == 0
    assert "grey values thresholded at" in capsys.readouterr().out
    source = json.loads((tmp_path / "core.npy.json").read_text())["source"]
    assert source["files"] == [
        {"path": str((tmp_path / "grey.npy").resolve()), "sha256": file_sha256(tmp_path / "grey.npy")}
    ]
    (step,) = source["preprocessing"]
    assert step["step"] == "threshold" and step["method"] == "otsu" and 0.0 < step["value"] < 1.0


def test_a_failed_write_after_the_run_saves_the_result_elsewhere(tmp_path, capsys, monkeypatch):
    from napari_dmcr.io import writers

    # /proc takes no new files, even for root: known before the run (its lock cannot be made).
    assert main(["reconstruct", "--out", "/proc/core.npy", *QUICK]) == 2
    assert "cannot write in /proc" in capsys.readouterr().err
    write_volume = writers.write_volume

    def disk_full_in_tmp_path(path, *args, **kwargs):
        if Path(path).parent == tmp_path:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return write_volume(path, *args, **kwargs)

    monkeypatch.setattr(writers, "write_volume", disk_full_in_tmp_path)
    code = main(["reconstruct", "--out", str(tmp_path / "core.npy"), *QUICK])
    captured = capsys.readouterr()
    assert code == 2 and f"could not write {tmp_path / 'core.npy'} (No space left on device)" in captured.out
    saved = captured.out.split("the result was saved to ")[1].split()[0]
    assert np.load(saved).shape == (12, 12, 12)


def _start(tmp_path, out, *extra):
    """A slow ``dmcr reconstruct`` subprocess, returned once it has started computing."""
    command = [
        sys.executable,
        "-m",
        "napari_dmcr.cli",
        "reconstruct",
        "--out",
        str(out),
        "--shape",
        "40",
        "40",
        "40",
        "--start",
        "random",
        "--max-iter",
        "500",
        "--preset",
        "cpu",
        *extra,
    ]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        cwd=tmp_path,
    )
    assert process.stdout.readline().startswith("reconstructing")
    time.sleep(2.0)
    return process


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_saves_the_best_state_and_never_replaces_a_finished_result(tmp_path, signum):
    out = tmp_path / "core.npy"
    process = _start(tmp_path, out)
    sent = time.perf_counter()
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signum, stderr
    assert time.perf_counter() - sent < 5.0  # within an evaluation (under 1 s on a quiet machine)
    # Never under the asked name: a pipeline waiting for core.npy does not take it for a core.
    assert not out.exists() and "core.cancelled.npy" in stdout
    assert json.loads((tmp_path / "core.cancelled.npy.json").read_text())["cancelled"] is True
    finished = np.load(tmp_path / "core.cancelled.npy")
    np.save(out, finished)
    (tmp_path / "core.npy.json").write_text(json.dumps({"cancelled": False}))  # stands for a finished run
    process = _start(tmp_path, out, "--overwrite", "--seed", "4")
    process.send_signal(signum)
    stdout, _ = process.communicate(timeout=60)
    assert process.returncode == 128 + signum and "core.cancelled.npy" in stdout and "core.npy is kept" in stdout
    assert np.array_equal(np.load(out), finished)
    assert json.loads((tmp_path / "core.npy.json").read_text()) == {"cancelled": False}
    assert json.loads((tmp_path / "core.cancelled.npy.json").read_text())["cancelled"] is True


def test_damaged_files_and_folders_are_one_line_errors(tmp_path, capsys):
    from napari_dmcr.descriptors.vgg19_weights import load_vgg19_weights

    partial = tmp_path / "partial.npz"
    np.savez(tmp_path / "whole.npz", a=np.zeros(1000))
    partial.write_bytes((tmp_path / "whole.npz").read_bytes()[:300])
    assert main(["reconstruct", str(partial), "--out", str(tmp_path / "v.npy"), *QUICK]) == 2
    assert "damaged or partial" in capsys.readouterr().err
    with pytest.raises(InputError, match="damaged or partial"):
        load_vgg19_weights(partial, download=False)
    from napari_dmcr.descriptors.vgg19_weights import LAYER_NAMES

    layers = {f"{name}.{part}": np.ones(2, np.float32) for name in LAYER_NAMES for part in ("weight", "bias")}
    np.savez(tmp_path / "nan.npz", **{**layers, "conv1_1.weight": np.full(2, np.nan, np.float32)})
    with pytest.raises(InputError, match="NaN or infinite"):
        load_vgg19_weights(tmp_path / "nan.npz", download=False)
    (tmp_path / "folder.npy").mkdir()
    assert main(["reconstruct", str(tmp_path / "folder.npy"), "--out", str(tmp_path / "v.npy"), *QUICK]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_settings_out_of_range_in_the_library():
    from napari_dmcr.evaluation import evaluate
    from napari_dmcr.postprocessing.smoothing import gaussian_smooth

    volume = np.zeros((8, 8, 8), np.uint8)
    volume[:4] = 1
    started = time.perf_counter()
    with pytest.raises(InputError, match="wider than the image"):
        gaussian_smooth(volume, 1e6)
    assert time.perf_counter() - started < 1.0
    with pytest.raises(InputError, match="connectivity must be 1"):
        evaluate(volume[0], volume, connectivity=7)


def test_yeong_torquato_honours_a_signal_within_a_batch(tmp_path):
    command = [sys.executable, "-m", "napari_dmcr.cli", "reconstruct", "--method", "yt", "--shape", "48", "48", "48",
               "--out", str(tmp_path / "yt.npy")]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    assert process.stdout.readline().startswith("reconstructing")
    time.sleep(3.0)
    sent = time.perf_counter()
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=60)
    assert process.returncode == 143 and time.perf_counter() - sent < 5.0  # 12.8 s before (issue 14)
    assert json.loads((tmp_path / "yt.cancelled.npy.json").read_text())["cancelled"] is True


def test_every_command_keeps_an_existing_output_unless_asked(tmp_path, capsys):
    out = tmp_path / "descriptors.npz"
    characterize = ["characterize", "--out", str(out), "--no-gram", "--s3-levels", "1"]
    assert main(characterize) == 0
    digest = file_sha256(out)
    assert main(characterize) == 2 and "--overwrite" in capsys.readouterr().err and file_sha256(out) == digest
    assert main([*characterize, "--overwrite"]) == 0
    np.save(tmp_path / "slice.npy", conglomerate_slice((32, 32), seed=0))
    report = tmp_path / "evaluation.json"
    report.write_text("{}")
    evaluate = ["evaluate", "--original", str(tmp_path / "slice.npy"), "--recon", str(tmp_path / "slice.npy"),
                "--out", str(report)]  # fmt: skip
    assert main(evaluate) == 2 and report.read_text() == "{}"
    assert main([*evaluate, "--overwrite"]) == 0 and json.loads(report.read_text())["fractions"]
