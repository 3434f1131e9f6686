"""Reading label images and writing volumes: round trips, metadata and the errors users see."""

import base64
import hashlib
import json
from xml.etree import ElementTree

import numpy as np
import pytest
import tifffile
from PIL import Image

from napari_dmcr.cli import main
from napari_dmcr.errors import InputError
from napari_dmcr.io.readers import read_image, validate_labels
from napari_dmcr.io.writers import (
    file_sha256,
    read_sidecar,
    read_volume,
    read_voxel_size,
    sidecar_path,
    write_volume,
)


@pytest.fixture
def volume():
    rng = np.random.default_rng(7)
    return rng.integers(0, 3, size=(5, 6, 7)).astype(np.uint8)  # (z, y, x)


def two_phase_grey(shape=(64, 64), seed=0):
    """A bimodal grey image (dark matrix ~60, bright disc ~190) and its true segmentation."""
    rng = np.random.default_rng(seed)
    y, x = np.indices(shape)
    truth = ((y - 30) ** 2 + (x - 34) ** 2 < 18**2).astype(np.uint8)
    grey = np.where(truth == 1, 190.0, 60.0) + rng.normal(0, 8, shape)
    return np.clip(grey, 0, 255).astype(np.uint8), truth


# ---------------------------------------------------------------- writing volumes


@pytest.mark.parametrize("suffix", [".npy", ".tif", ".tiff", ".vti"])
def test_volume_round_trip(tmp_path, volume, suffix):
    path = write_volume(tmp_path / f"core{suffix}", volume, voxel_size=0.25)
    back = read_volume(path)
    assert back.dtype == volume.dtype and np.array_equal(back, volume)
    assert np.array_equal(read_image(path, ndim=3), volume)
    if suffix != ".npy":
        assert read_voxel_size(path) == pytest.approx(0.25)
    assert not (tmp_path / f"core{suffix}.json").exists()  # no parameters, no sidecar


def test_tiff_is_an_imagej_stack_with_the_voxel_size(tmp_path, volume):
    path = write_volume(tmp_path / "core.tif", volume, voxel_size=0.002)
    with tifffile.TiffFile(path) as tif:
        assert len(tif.pages) == volume.shape[0]  # one page per z slice
        assert tif.imagej_metadata["spacing"] == pytest.approx(0.002)
        numerator, denominator = tif.pages[0].tags["XResolution"].value
        assert denominator / numerator == pytest.approx(0.002)  # pixels per unit, inverted
        assert np.array_equal(tif.pages[2].asarray(), volume[2])


def test_vti_is_vtk_image_data_with_cells_in_x_fastest_order(tmp_path, volume):
    path = write_volume(tmp_path / "core.vti", volume.astype(np.int16), voxel_size=0.5)
    root = ElementTree.parse(path).getroot()  # well-formed XML, as ParaView's reader needs
    assert root.get("type") == "ImageData" and root.get("header_type") == "UInt64"
    image = root.find("ImageData")
    assert image.get("WholeExtent") == "0 7 0 6 0 5"
    assert [float(v) for v in image.get("Spacing").split()] == [0.5, 0.5, 0.5]
    array = image.find("Piece/CellData/DataArray")
    assert array.get("type") == "Int16" and array.get("format") == "binary"
    raw = base64.b64decode(array.text.strip())
    assert int.from_bytes(raw[:8], "little") == volume.size * 2
    values = np.frombuffer(raw[8:], dtype="<i2")
    _, ny, nx = volume.shape
    z, y, x = 3, 4, 5
    assert values[x + nx * (y + ny * z)] == volume[z, y, x]  # VTK cell id: x fastest
    assert np.array_equal(values, volume.ravel())


def test_sidecar_records_parameters_voxel_size_and_format(tmp_path, volume):
    path = write_volume(tmp_path / "core.npy", volume, voxel_size=0.1, parameters={"seed": 4, "lr": 0.01})
    sidecar = json.loads((tmp_path / "core.npy.json").read_text())
    assert sidecar == {"seed": 4, "lr": 0.01, "voxel_size": 0.1, "format": "npy", "sha256": file_sha256(path)}
    assert sidecar["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert read_sidecar(path) == sidecar
    assert read_voxel_size(path) == pytest.approx(0.1)


def test_a_failed_write_keeps_the_old_file(tmp_path, volume, monkeypatch):
    path = write_volume(tmp_path / "core.tif", volume)

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(tifffile, "imwrite", fail)
    with pytest.raises(OSError):
        write_volume(path, volume + 1)
    assert np.array_equal(read_volume(path), volume)
    assert [p.name for p in tmp_path.iterdir()] == ["core.tif"]


@pytest.mark.parametrize(
    "name, labels, kwargs, message",
    [
        ("v.png", np.zeros((2, 2, 2), np.uint8), {}, "use one of"),
        ("v.npy", np.full((2, 2, 2), 0.5, np.float32), {}, "grey image"),
        ("v.npy", np.zeros((2, 2, 2, 2), np.uint8), {}, "2D or 3D"),
        ("v.npy", np.zeros((2, 2, 2), np.uint8), {"voxel_size": -1}, "positive"),
        ("v.tif", np.full((2, 2, 2), 70000, np.int32), {}, "65535"),
    ],
)
def test_write_volume_refuses_bad_input(tmp_path, name, labels, kwargs, message):
    with pytest.raises(InputError, match=message):
        write_volume(tmp_path / name, labels, **kwargs)


# ---------------------------------------------------------------- reading images


def test_single_and_multi_page_tiff(tmp_path, volume):
    tifffile.imwrite(tmp_path / "slice.tif", volume[0])
    tifffile.imwrite(tmp_path / "stack.tif", volume)
    assert np.array_equal(read_image(tmp_path / "slice.tif", ndim=2), volume[0])
    assert np.array_equal(read_image(tmp_path / "stack.tif"), volume)
    tifffile.imwrite(tmp_path / "one.tif", volume[:1])
    assert read_image(tmp_path / "one.tif", ndim=2).shape == volume.shape[1:]  # singleton squeezed
    with pytest.raises(InputError, match="pick one slice"):
        read_image(tmp_path / "stack.tif", ndim=2)
    with pytest.raises(InputError, match="not a volume"):
        read_image(tmp_path / "slice.tif", ndim=3)


def test_png_mask_and_palette_labels(tmp_path):
    mask = np.zeros((20, 30), np.uint8)
    mask[5:15, 10:25] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    assert np.array_equal(read_image(tmp_path / "mask.png"), mask // 255)  # 0/255 -> 0/1
    indices = (np.arange(600).reshape(20, 30) % 3).astype(np.uint8)
    palette = Image.fromarray(indices, mode="P")
    palette.putpalette([250, 0, 0, 0, 250, 0, 0, 0, 250] + [0] * 759)
    palette.save(tmp_path / "palette.png")
    assert np.array_equal(read_image(tmp_path / "palette.png"), indices)
    colours = np.array([[255, 0, 0], [0, 0, 255]], np.uint8)[indices % 2]
    Image.fromarray(colours).save(tmp_path / "rgb.png")
    rgb_labels = read_image(tmp_path / "rgb.png")
    assert np.array_equal(rgb_labels, 1 - indices % 2)  # labels follow the sorted colours


def test_grey_ct_is_thresholded_by_otsu(tmp_path):
    grey, truth = two_phase_grey()
    Image.fromarray(grey).save(tmp_path / "ct.png")
    assert np.array_equal(read_image(tmp_path / "ct.png"), truth)
    Image.fromarray(grey).save(tmp_path / "ct.jpg", quality=90)
    assert np.mean(read_image(tmp_path / "ct.jpg") != truth) < 0.01  # lossy, nearly exact
    np.save(tmp_path / "ct.npy", grey.astype(np.float32) / 255)
    assert np.array_equal(read_image(tmp_path / "ct.npy"), truth)
    at_value = read_image(tmp_path / "ct.png", threshold=200)
    assert np.array_equal(at_value, (grey > 200).astype(np.uint8))
    with pytest.raises(InputError, match="grey image"):
        read_image(tmp_path / "ct.png", threshold=None)


def test_raw_volume(tmp_path, volume):
    data = volume.astype("<u2") * 1000
    data.tofile(tmp_path / "core.raw")
    labels = read_image(tmp_path / "core.raw", raw_shape=volume.shape, raw_dtype="<u2")
    assert np.array_equal(labels, volume)  # 0/1000/2000 renumbered 0/1/2
    with pytest.raises(InputError, match=r"has 420 bytes but shape .* needs 840"):
        read_image(tmp_path / "core.raw", raw_shape=(5, 6, 7), raw_dtype="<u4")
    with pytest.raises(InputError, match="raw_shape"):
        read_image(tmp_path / "core.raw")


@pytest.mark.parametrize(
    "array, kwargs, message",
    [
        (np.array([[0.0, np.nan], [1.0, 0.0]]), {}, "NaN"),
        (np.ones((8, 8), np.uint8), {}, "constant"),
        (
            np.arange(4000, dtype=np.int16).reshape(40, 100),
            {"threshold": None},
            "4000 distinct values.*grey",
        ),
        (np.zeros((0, 5), np.uint8), {}, "empty"),
        (np.eye(3, dtype=np.uint8), {"min_side": 16}, "too small"),
        (np.array([[-1, 0], [0, 1]], np.int8), {}, "non-negative integers"),
        (np.zeros((2, 3, 4, 5), np.uint8), {}, "label image"),
        (np.array([["a", "b"], ["c", "d"]]), {}, "must be integers, got dtype"),
    ],
)
def test_read_image_refuses_bad_images(tmp_path, array, kwargs, message):
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(InputError, match=message):
        read_image(tmp_path / "bad.npy", **kwargs)


def test_unreadable_files(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_image(tmp_path / "missing.png")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match="cannot read"):
        read_image(tmp_path / "broken.png")
    (tmp_path / "image.gif").write_bytes(b"GIF89a")
    with pytest.raises(InputError, match="unsupported file type"):
        read_image(tmp_path / "image.gif")
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="numeric"):
        read_image(tmp_path / "objects.npy")


def test_validate_labels_for_widgets():
    assert validate_labels(np.array([[0.0, 1.0], [2.0, 1.0]])).dtype == np.uint8
    assert validate_labels(np.array([[True, False], [False, True]])).tolist() == [[1, 0], [0, 1]]
    with pytest.raises(InputError, match="layer 'core': expected a 3D"):
        validate_labels(np.zeros((4, 4), np.uint8), what="layer 'core'", ndim=3)
    with pytest.raises(InputError, match="non-whole values"):
        validate_labels(np.array([[0.5, 1.0], [0.0, 1.0]]))
    with pytest.raises(InputError, match="negative"):
        validate_labels(np.array([[-1, 0], [0, 1]]))
    with pytest.raises(InputError, match="at most 2 labels"):
        validate_labels(np.arange(9).reshape(3, 3), max_labels=2)


# ---------------------------------------------------------------- dmcr export


def test_export_command_carries_the_parameters_over(tmp_path, volume, capsys):
    source = tmp_path / "core.npy"
    write_volume(source, volume, voxel_size=0.004, parameters={"seed": 9})
    for fmt, suffix in (("tif", ".tif"), ("vti", ".vti")):
        out = tmp_path / "out" / f"exported{suffix}"
        assert main(["export", str(source), "--format", fmt, "--out", str(out)]) == 0
        assert np.array_equal(read_volume(out), volume)
        assert read_voxel_size(out) == pytest.approx(0.004)  # from the source's sidecar
        sidecar = json.loads(sidecar_path(out).read_text())
        assert sidecar["seed"] == 9 and sidecar["format"] == fmt and fmt in sidecar["export"]
    assert (
        main(
            [
                "export",
                str(source),
                "--format",
                "f3grid",
                "--group-names",
                "clast",
                "cement",
                "--cylinder",
            ]
        )
        == 0
    )
    assert (tmp_path / "core.f3grid").exists() and (tmp_path / "core.f3dat").exists()
    own = json.loads((tmp_path / "core.f3grid.json").read_text())  # each file has its own sidecar
    assert own["seed"] == 9 and own["format"] == "f3grid"
    assert own["sha256"] == hashlib.sha256((tmp_path / "core.f3grid").read_bytes()).hexdigest()
    assert own["export"]["f3grid"]["group_names"] == {"0": "clast", "1": "cement", "2": "phase2"}
    assert own["export"]["f3grid"]["flac3d"]["zones"] > 0
    assert json.loads((tmp_path / "core.npy.json").read_text())["format"] == "npy"  # the source's, untouched
    assert "range group 'cement'" in (tmp_path / "core.f3dat").read_text()
    assert "f3grid:" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--format", "f3grid", "--cylinder", "1"], "DIAMETER HEIGHT"),
        (["--out", "x.xyz"], "unknown output suffix"),
        ([], "give --format"),
        (["--format", "f3grid", "--no-face-groups"], "--no-f3dat"),
        (["--format", "f3grid", "--coarsen", "9"], "at most"),
    ],
)
def test_export_command_errors_without_traceback(tmp_path, volume, capsys, args, message):
    np.save(tmp_path / "core.npy", volume)
    assert main(["export", str(tmp_path / "core.npy"), *args]) == 2
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error
    np.save(tmp_path / "slice.npy", volume[0])
    assert main(["export", str(tmp_path / "slice.npy"), "--format", "tif"]) == 2
    assert "not a volume" in capsys.readouterr().err


def test_read_volume_of_a_broken_file(tmp_path):
    (tmp_path / "broken.tif").write_bytes(b"II*\x00garbage")
    with pytest.raises(InputError, match="holds no image"):
        read_volume(tmp_path / "broken.tif")
    with pytest.raises(InputError, match=r"broken\.tif"):
        read_image(tmp_path / "broken.tif")
    (tmp_path / "broken.vti").write_text("<VTKFile")
    with pytest.raises(InputError, match="not a valid VTK XML"):
        read_volume(tmp_path / "broken.vti")
