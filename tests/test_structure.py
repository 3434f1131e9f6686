"""3D structure measures (evaluation.structure) against shapes whose answers are known."""

import math

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_dmcr.errors import InputError
from napari_dmcr.evaluation.structure import (
    grain_measures,
    passing,
    percolation,
    structure_measures,
    truth_spread,
    z_scores,
)


def ball(shape, centre, radius):
    grid = np.indices(shape)
    return sum((g - c) ** 2 for g, c in zip(grid, centre)) <= radius**2


def test_a_rod_percolates_along_its_axis_only():
    volume = np.zeros((20, 20, 20), np.uint8)
    volume[:, 5:9, 5:9] = 1
    m = structure_measures(volume, 1)
    assert percolation(volume, 1) == [True, False, False]
    assert m["fraction"] == 16 / 400
    assert m["clusters"] == 1 and m["largest_cluster"] == 1.0 and m["tiny_clusters"] == 0
    # Chords: across the rod 4 voxels long; along z every chord touches the border (left out).
    assert m["chord_phase_y"] == m["chord_phase_x"] == 4.0
    assert math.isnan(m["chord_phase_z"])
    # A rod of 4x4 section: every phase voxel lies in a digital ball of diameter 3 (radius 2
    # rounded down, see morphology.local_thickness): nothing is 1 voxel thin.
    assert m["thin_fraction"] == 0.0
    # Every slice normal to z holds the rod: no spread along z; normal to y and x, 4 of 20 do.
    spread = np.std(np.r_[np.full(16, 0.0), np.full(4, 0.2)])
    assert m["slice_fraction_sd"] == pytest.approx((0 + 2 * spread) / 3)


def test_euler_characteristic_counts_balls_and_tunnels():
    two_balls = (ball((24, 24, 24), (12, 6, 6), 4) | ball((24, 24, 24), (12, 17, 17), 4)).astype(np.uint8)
    m = structure_measures(two_balls, 1)
    assert m["clusters"] == 2
    assert m["euler_6"] * two_balls.size == pytest.approx(2)
    torus = np.zeros((24, 24, 24), np.uint8)
    torus[10:14, 4:20, 4:20] = 1
    torus[10:14, 8:16, 8:16] = 0  # a square ring: one tunnel
    assert structure_measures(torus, 1)["euler_26"] * torus.size == pytest.approx(0)


def test_a_one_voxel_plate_is_all_thin():
    volume = np.zeros((16, 16, 16), np.uint8)
    volume[8] = 1
    assert structure_measures(volume, 1)["thin_fraction"] == 1.0


def test_interface_alignment_tells_boxes_from_balls():
    box = np.zeros((30, 30, 30), np.uint8)
    box[5:25, 5:25, 5:25] = 1
    round_ = ball((30, 30, 30), (15, 15, 15), 10).astype(np.uint8)
    # A box's interfaces are all normal to an axis: voxel faces ~ marching-cubes area (the
    # cubes cut its edges and corners a little). A sphere's voxel faces are 3/2 of its area.
    assert 1.0 < structure_measures(box, 1)["interface_alignment"] < 1.05
    assert structure_measures(round_, 1)["interface_alignment"] > 1.3


def test_specific_surface_of_a_ball_is_three_over_radius():
    volume = ball((40, 40, 40), (20, 20, 20), 12).astype(np.uint8)
    assert structure_measures(volume, 1)["specific_surface"] == pytest.approx(3 / 12, rel=0.05)


def test_touching_balls_are_two_grains():
    shape = (40, 40, 40)
    pair = ball(shape, (20, 20, 13), 7) | ball(shape, (20, 20, 27), 7)
    volume = np.where(pair, 0, 1).astype(np.uint8)
    assert ndi.label(pair)[1] == 1  # one cluster: they overlap
    grains = grain_measures(volume, 0)
    assert grains["grain_count"] == 2
    diameter = (6 * pair.sum() / 2 / math.pi) ** (1 / 3)
    assert grains["grain_diameter"] == pytest.approx(diameter, rel=0.05)
    assert grains["grain_diameter_cv"] < 0.05
    assert 0.75 < grains["grain_sphericity"] < 1.0  # two caps cut flat where they met
    single = np.where(ball(shape, (20, 20, 20), 9), 0, 1).astype(np.uint8)
    assert grain_measures(single, 0)["grain_sphericity"] == pytest.approx(0.92, abs=0.03)


def test_z_scores_against_the_spread():
    measures = [{"a": 1.0, "clusters": 3.0}, {"a": 3.0, "clusters": 3.0}, {"a": 2.0, "clusters": 3.0}]
    spread = truth_spread(measures)
    assert spread["a"] == {"mean": 2.0, "sd": pytest.approx(np.std([1, 2, 3], ddof=1))}
    scores = z_scores({"a": 4.0, "clusters": 5.0}, spread)
    assert scores["a"] == pytest.approx(2.0)
    assert scores["clusters"] == 2.0  # no spread: counts floored at an SD of 1
    assert passing(scores) == ["a", "clusters"]
    assert passing(z_scores({"a": 4.1, "clusters": 3.0}, spread)) == ["clusters"]


def test_bad_volumes_are_refused():
    with pytest.raises(InputError, match="3D volume"):
        structure_measures(np.zeros((4, 4), np.uint8), 1)
    with pytest.raises(InputError, match="does not occur"):
        structure_measures(np.zeros((4, 4, 4), np.uint8), 1)
    with pytest.raises(InputError, match="fills the whole volume"):
        structure_measures(np.ones((4, 4, 4), np.uint8), 1)
    with pytest.raises(InputError, match="at least two"):
        truth_spread([{"a": 1.0}])
