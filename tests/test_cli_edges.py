"""Bad inputs to the command line: one-line errors before any work, and no result replaced or lost."""

import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from napari_dmcr.cli import main
from napari_dmcr.io.atomic import output_lock, write_json
from napari_dmcr.samples import conglomerate_slice, conglomerate_volume

QUICK = ["--shape", "12", "12", "12", "--max-iter", "3", "--preset", "cpu"]


def _one_line_error(capsys, *expected):
    """What was printed, after checking that the error output is one line with ``expected`` in it."""
    captured = capsys.readouterr()
    assert len(captured.err.strip().splitlines()) == 1 and "Traceback" not in captured.err, captured.err
    for text in expected:
        assert text in captured.err, captured.err
    return captured


@pytest.fixture
def files(tmp_path):
    """A labeled slice, a labeled volume, a grey volume and a 0-byte .npy in ``tmp_path``."""
    np.save(tmp_path / "slice.npy", conglomerate_slice((32, 32), seed=0))
    np.save(tmp_path / "core.npy", conglomerate_volume((16, 16, 16), seed=0))
    np.save(tmp_path / "grey.npy", np.random.default_rng(0).random((16, 16, 16)))
    (tmp_path / "empty.npy").write_bytes(b"")
    return {name: str(tmp_path / f"{name}.npy") for name in ("slice", "core", "grey", "empty")}


def test_an_empty_npy_is_a_one_line_error_in_every_command(tmp_path, files, capsys):
    out = str(tmp_path / "out")
    commands = [
        ["reconstruct", files["empty"], "--out", out + ".npy", *QUICK],
        ["characterize", files["empty"], "--out", out + ".npz", "--no-gram"],
        ["evaluate", "--original", files["empty"], "--recon", files["core"], "--out", out + ".json"],
        ["evaluate", "--original", files["slice"], "--recon", files["empty"], "--out", out + ".json"],
        ["properties", files["empty"], "--out", out + ".json"],
        ["export", files["empty"], "--out", out + ".tif"],
    ]
    for argv in commands:
        assert main(argv) == 2, argv
        _one_line_error(capsys, "empty.npy: the file is empty or truncated")
    assert not list(tmp_path.glob("out*"))


def test_grey_volumes_are_refused_alike_unless_thresholded(tmp_path, files, capsys):
    out = str(tmp_path / "out")
    commands = [
        ["evaluate", "--original", files["slice"], "--recon", files["grey"], "--out", out + ".json"],
        ["properties", files["grey"], "--out", out + ".json"],
        ["export", files["grey"], "--out", out + ".tif"],
    ]
    for argv in commands:
        assert main(argv) == 2, argv
        _one_line_error(capsys, "grey.npy: 4096 distinct values", "segment it first", "--threshold otsu")
    assert not list(tmp_path.glob("out*"))
    assert main(["properties", files["grey"], "--out", out + ".json", "--no-elastic", "--threshold", "otsu"]) == 0


def test_export_checks_every_option_before_writing_a_byte(tmp_path, files, capsys):
    for extra, message in (
        (["--confining-pressures", "-1", "nan"], "confining pressures must be non-negative"),
        (["--voxel-size", "-2"], "--voxel-size must be a positive number"),
        (["--cylinder", "1"], "DIAMETER HEIGHT"),
    ):
        assert main(["export", files["core"], "--format", "f3grid", *extra]) == 2
        _one_line_error(capsys, message)
        assert sorted(p.name for p in tmp_path.glob("core*")) == ["core.npy"]


def test_a_second_run_with_the_same_output_fails_at_once(tmp_path, files, capsys):
    out = tmp_path / "run.npy"
    with output_lock(out):  # a first run, still computing
        started = time.perf_counter()
        assert main(["reconstruct", "--out", str(out), *QUICK]) == 2
        _one_line_error(capsys, "another run is writing it", "run.npy.lock")
        assert time.perf_counter() - started < 5 and not out.exists()
    with output_lock(tmp_path / "p.json"):
        assert main(["properties", files["core"], "--out", str(tmp_path / "p.json")]) == 2
        _one_line_error(capsys, "another run is writing it")
    assert main(["reconstruct", "--out", str(out), *QUICK]) == 0  # the first run's lock went with it
    assert not (tmp_path / "run.npy.lock").exists()


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path, capsys):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / "core.npy.lock").write_text(f"{dead.stdout.strip()} {socket.gethostname()}\n")
    assert main(["reconstruct", "--out", str(tmp_path / "core.npy"), *QUICK]) == 0


def test_an_output_made_during_the_run_is_kept_and_the_result_saved_elsewhere(tmp_path, capsys, monkeypatch):
    import napari_dmcr.cli.reconstruct as command

    out = tmp_path / "core.npy"
    record = command._sidecar

    def another_run_finishes_first(*args):
        np.save(out, np.ones((4, 4, 4), np.uint8))  # no sidecar: the run's own must not land beside it
        return record(*args)

    monkeypatch.setattr(command, "_sidecar", another_run_finishes_first)
    assert main(["reconstruct", "--out", str(out), *QUICK]) == 2
    printed = capsys.readouterr().out
    assert "could not write" in printed and "made by another program during this run; it is kept" in printed
    assert np.load(out).shape == (4, 4, 4) and not (tmp_path / "core.npy.json").exists()
    assert np.load(printed.split("the result was saved to ")[1].split()[0]).shape == (12, 12, 12)


def test_an_exclusive_write_without_hard_links_keeps_an_existing_file(tmp_path, monkeypatch):
    def no_hard_links(source, target):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_hard_links)
    write_json(tmp_path / "a.json", {"run": 1}, overwrite=False)
    with pytest.raises(FileExistsError):
        write_json(tmp_path / "a.json", {"run": 2}, overwrite=False)
    assert (tmp_path / "a.json").read_text() == '{\n  "run": 1\n}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_an_ensemble_output_that_cannot_be_a_folder_is_refused_first(tmp_path, files, capsys):
    (tmp_path / "taken").write_text("a file")
    for out, message in (
        (tmp_path / "taken", "is a file; give a folder"),
        ("/proc/ensemble", "cannot make this folder"),
    ):
        assert main(["ensemble", files["slice"], "--shape", "8", "8", "8", "--out", str(out)]) == 2
        assert "realizations" not in _one_line_error(capsys, message).out  # before the banner
    assert (tmp_path / "taken").read_text() == "a file"


@pytest.mark.parametrize(
    "address, message",
    [
        ("nonsense", "is not a Dask scheduler address"),
        ("tcp://host:port", "is not a Dask scheduler address"),
        ("tcp://127.0.0.1:1", "cannot reach the Dask scheduler"),  # nothing listens on port 1
    ],
)
def test_a_bad_scheduler_address_fails_in_seconds(tmp_path, files, capsys, monkeypatch, address, message):
    pytest.importorskip("distributed")
    monkeypatch.setattr("napari_dmcr.ensembles.run.SCHEDULER_TIMEOUT_S", 1)
    started = time.perf_counter()
    argv = ["ensemble", files["slice"], "--shape", "8", "8", "8", "--out", str(tmp_path / "e"), "--scheduler", address]
    assert main(argv) == 2
    _one_line_error(capsys, message)
    assert time.perf_counter() - started < 10


def test_sigterm_ends_an_ensemble_quietly_and_keeps_what_finished(tmp_path, files):
    pytest.importorskip("distributed")
    command = [sys.executable, "-m", "napari_dmcr.cli", "ensemble", files["slice"], "--shape", "16", "16", "16",
               "--realizations", "8", "--workers", "1", "--no-properties", "--out", str(tmp_path / "e")]  # fmt: skip
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    banner = process.stdout.readline()
    assert "8 realizations" in banner and "each" in banner and "on disk" in banner, banner
    assert "written" in process.stdout.readline()
    os.killpg(process.pid, signal.SIGTERM)  # as a batch scheduler does: the workers get it too
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert "Traceback" not in stderr and "CommClosedError" not in stderr and "WARNING" not in stderr, stderr
    (line,) = stderr.strip().splitlines()
    finished = len(list((tmp_path / "e").glob("*.npy")))
    assert f"{finished} of 8 realizations are finished and kept" in line and 1 <= finished < 8


@pytest.mark.parametrize(
    "command, option",
    [
        ("characterize {slice} --out {tmp}/d.npz", "pass --no-gram"),
        ("evaluate --original {slice} --recon {core} --gram --out {tmp}/e.json", "leave out --gram"),
        ("reconstruct {slice} --preset paper --shape 16 16 16 --out {tmp}/r.npy", "pass --preset cpu"),
    ],
)
def test_without_weights_the_hint_names_the_commands_own_option(tmp_path, files, capsys, monkeypatch, command, option):
    from napari_dmcr.descriptors import gram

    def offline(*args, **kwargs):
        raise OSError("offline (test)")

    monkeypatch.delenv("NAPARI_DMCR_VGG19_WEIGHTS", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr("urllib.request.urlopen", offline)  # no download is tried
    monkeypatch.setattr(gram, "_networks", {})  # no network built by an earlier test
    names = {"slice": files["slice"], "core": files["core"], "tmp": str(tmp_path)}
    assert main(command.format(**names).split()) == 2
    err = _one_line_error(capsys, "needs the normalized VGG-19 weights", f"; without Gram matrices, {option}").err
    assert "offline (test)" in err and "descriptor preset" not in err


def test_a_grey_slice_is_thresholded_with_a_note_wherever_slices_are_read(tmp_path, capsys):
    """characterize (and ensemble) segment a grey slice as reconstruct does, and say so."""
    np.save(tmp_path / "grey.npy", np.random.default_rng(0).random((32, 32)))
    assert main(["characterize", str(tmp_path / "grey.npy"), "--no-gram", "--out", str(tmp_path / "d.npz")]) == 0
    out = capsys.readouterr().out
    assert "grey.npy: grey values thresholded at" in out and "(otsu;" in out


def test_an_ensemble_another_run_is_writing_is_refused_at_once(tmp_path, files, capsys):
    out = tmp_path / "e"
    out.mkdir()
    (out / "ensemble.json.lock").write_text(f"{os.getpid()} {socket.gethostname()}\n")  # a live run's lock
    assert main(["ensemble", files["slice"], "--shape", "8", "8", "8", "--out", str(out)]) == 2
    assert "realizations" not in _one_line_error(capsys, "another run is writing it").out
    assert sorted(p.name for p in out.iterdir()) == ["ensemble.json.lock"]


def test_an_output_lock_checks_the_output_before_and_while_it_is_held(tmp_path):
    from napari_dmcr.errors import InputError

    held = []

    def check():
        held.append((tmp_path / "core.npy.lock").exists())
        if len(held) == 2:  # a run that ended meanwhile made the output
            raise InputError("core.npy exists")

    with pytest.raises(InputError, match="exists"), output_lock(tmp_path / "core.npy", check=check):
        pass
    assert held == [False, True] and not (tmp_path / "core.npy.lock").exists()
