"""The bundled sample: its slices are representative of its volume (their matrix fraction)."""

import json

import numpy as np
import pytest

from napari_dmcr.cli import main
from napari_dmcr.samples import MATRIX, conglomerate_slice, conglomerate_volume


def closest_by_loop(volume, axis):
    """The slice index whose matrix fraction is closest to the volume's, one slice at a time."""
    whole = np.count_nonzero(volume == MATRIX) / volume.size
    best, best_distance = None, np.inf
    for index in range(volume.shape[axis]):
        image = np.take(volume, index, axis=axis)
        distance = abs(np.count_nonzero(image == MATRIX) / image.size - whole)
        if distance < best_distance:
            best, best_distance = index, distance
    return best


@pytest.mark.parametrize(("side", "seed"), [(32, 1), (48, 0), (64, 0)])
def test_the_sample_slice_has_the_matrix_fraction_of_its_volume(side, seed):
    volume = conglomerate_volume((side,) * 3, seed=seed)
    image = conglomerate_slice((side, side), seed=seed)
    assert np.array_equal(image, volume[closest_by_loop(volume, 0)])
    assert abs(np.mean(image == MATRIX) - np.mean(volume == MATRIX)) < 0.02
    assert np.array_equal(image, conglomerate_slice((side, side), seed=seed))  # the seed fixes it


def test_a_slice_normal_to_another_axis_has_the_shape_asked_for():
    volume = conglomerate_volume((24, 24, 32), seed=2)  # 24 deep along axis 1
    image = conglomerate_slice((24, 32), seed=2, axis=1)
    assert image.shape == (24, 32)
    assert np.array_equal(image, volume[:, closest_by_loop(volume, 1)])


def test_dmcr_sample_writes_the_representative_slice_of_each_axis(tmp_path, capsys):
    assert main(["sample", "--out", str(tmp_path), "--size", "32", "--seed", "3"]) == 0
    printed = capsys.readouterr().out
    truth = np.load(tmp_path / "truth.npy")
    assert np.array_equal(truth, conglomerate_volume((32, 32, 32), seed=3))
    for axis, name in enumerate("zyx"):
        index = closest_by_loop(truth, axis)
        image = np.load(tmp_path / f"{name}.npy")
        assert np.array_equal(image, np.take(truth, index, axis=axis))
        assert abs(np.mean(image == MATRIX) - np.mean(truth == MATRIX)) < 0.02
        record = json.loads((tmp_path / f"{name}.npy.json").read_text())
        assert (record["axis"], record["index"]) == (name, index)
        assert f"{name} slice {index}:" in printed
    assert np.array_equal(np.load(tmp_path / "slice.npy"), np.load(tmp_path / "z.npy"))
