import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage import measure

from napari_dmcr.errors import InputError
from napari_dmcr.postprocessing import (
    assign_with_counts,
    counts_from_fractions,
    gaussian_smooth,
    remove_small_islands,
)


def interface_pairs(labels):
    """Face-neighbour voxel pairs with different labels (the staircase interface area)."""
    return sum(np.count_nonzero(np.diff(labels, axis=a)) for a in range(labels.ndim))


def noisy_phases(shape, n_phases, seed, noise=0.08):
    """Smooth random phases (quantiles of a blurred field) with salt-and-pepper noise."""
    rng = np.random.default_rng(seed)
    field = ndi.gaussian_filter(rng.random(shape), 3, mode="wrap")
    edges = np.quantile(field, np.linspace(0, 1, n_phases + 1)[1:-1])
    labels = np.digitize(field, edges).astype(np.uint8)
    flip = rng.random(shape) < noise
    labels[flip] = rng.integers(0, n_phases, np.count_nonzero(flip))
    return labels


# assign_with_counts


@pytest.mark.parametrize("k", [2, 3, 4])
def test_assignment_meets_the_counts_exactly(k):
    rng = np.random.default_rng(k)
    scores = rng.random((k, 17, 23))
    counts = counts_from_fractions(rng.random(k) + 0.1, 17 * 23)
    result = assign_with_counts(scores, counts)
    assert result.shape == (17, 23)
    np.testing.assert_array_equal(np.bincount(result.ravel(), minlength=k), counts)


def test_two_phase_assignment_is_a_threshold_of_the_score_difference():
    rng = np.random.default_rng(0)
    scores = rng.random((2, 500))
    result = assign_with_counts(scores, [123, 377])
    top = np.argsort(scores[1] - scores[0])[:123]
    expected = np.ones(500, dtype=int)
    expected[top] = 0
    np.testing.assert_array_equal(result, expected)


def test_assignment_is_the_argmax_when_the_argmax_has_the_counts():
    rng = np.random.default_rng(1)
    scores = rng.random((4, 1000))
    argmax = np.argmax(scores, axis=0)
    result = assign_with_counts(scores, np.bincount(argmax, minlength=4))
    np.testing.assert_array_equal(result, argmax)


def test_assignment_prefers_the_voxels_that_lose_most_elsewhere():
    # Phase 0 has room for one voxel; both prefer it, but voxel 1 has no good alternative.
    scores = np.array([[0.9, 0.8, 0.0], [0.85, 0.1, 0.0], [0.0, 0.1, 1.0]])
    np.testing.assert_array_equal(assign_with_counts(scores, [1, 1, 1]), [1, 0, 2])


def test_assignment_rejects_counts_that_do_not_add_up():
    with pytest.raises(InputError, match="summing to 6"):
        assign_with_counts(np.zeros((2, 6)), [2, 3])


# gaussian_smooth


@pytest.mark.parametrize(
    ("shape", "n_phases", "sigma", "periodic"),
    [
        ((64, 64), 2, 1.0, False),
        ((64, 64), 3, (1.5, 0.7), True),
        ((24, 28, 32), 2, 1.0, True),
        ((24, 28, 32), 3, (1.0, 0.0, 2.0), False),
    ],
)
def test_smoothing_keeps_every_fraction_exactly_and_shrinks_the_interface(shape, n_phases, sigma, periodic):
    labels = noisy_phases(shape, n_phases, seed=len(shape) + n_phases)
    smoothed = gaussian_smooth(labels, sigma, periodic=periodic)
    assert smoothed.shape == labels.shape and smoothed.dtype == labels.dtype
    counts = [np.bincount(image.ravel(), minlength=n_phases) for image in (smoothed, labels)]
    np.testing.assert_array_equal(*counts)
    assert interface_pairs(smoothed) < 0.7 * interface_pairs(labels)


def test_smoothing_removes_speckle_and_keeps_a_ball_round():
    z, y, x = np.mgrid[:32, :32, :32] - 15.5
    ball = (np.sqrt(z**2 + y**2 + x**2) <= 9).astype(np.uint8)
    noisy = ball.copy()
    rng = np.random.default_rng(3)
    # Swap 40 voxels: the phase counts stay those of the ball.
    inside, outside = np.flatnonzero(ball), np.flatnonzero(ball == 0)
    noisy.flat[rng.choice(inside, 40, replace=False)] = 0
    noisy.flat[rng.choice(outside, 40, replace=False)] = 1
    smoothed = gaussian_smooth(noisy, 1.0)
    assert ndi.label(smoothed)[1] == 1
    assert np.count_nonzero(smoothed != ball) < 10


def test_zero_sigma_changes_nothing():
    labels = noisy_phases((40, 40), 3, seed=5)
    np.testing.assert_array_equal(gaussian_smooth(labels, 0), labels)


def test_periodic_smoothing_continues_features_across_the_border():
    # A diagonal band that is periodic: wrapping sees an infinite straight band and keeps it,
    # reflecting sees kinks at the border and moves voxels there.
    y, x = np.mgrid[:32, :32]
    band = (((x - y) % 32) < 8).astype(np.uint8)
    np.testing.assert_array_equal(gaussian_smooth(band, 1.5, periodic=True), band)
    assert np.any(gaussian_smooth(band, 1.5, periodic=False) != band)


def test_smoothing_rejects_bad_input():
    with pytest.raises(InputError, match="grey image"):
        gaussian_smooth(np.random.default_rng(0).random((8, 8)))
    with pytest.raises(InputError, match="sigma"):
        gaussian_smooth(np.zeros((8, 8), dtype=np.uint8), (1.0, 1.0, 1.0))


# remove_small_islands


def test_islands_are_merged_into_the_surrounding_phase():
    labels = np.zeros((30, 30), dtype=np.uint8)
    labels[10:25, 10:25] = 1  # kept: 225 pixels
    labels[2, 2] = 1  # island of 1
    labels[5, 5:7] = 1  # island of 2
    labels[15, 15] = 0  # hole of 1 inside the big square
    labels[2:5, 20:23] = 2  # a third phase: 9 pixels, kept with min_size=5
    cleaned, info = remove_small_islands(labels, 5)
    expected = labels.copy()
    expected[2, 2] = expected[5, 5:7] = 0
    expected[15, 15] = 1
    np.testing.assert_array_equal(cleaned, expected)
    assert info["islands_removed"] == 3
    assert info["voxels_changed"] == 4
    assert info["fraction_change"][1] == pytest.approx(-2 / 900)
    assert info["fraction_change"][0] == pytest.approx(2 / 900)
    # No component below the size is left, in any phase (checked with scikit-image).
    for value in np.unique(cleaned):
        sizes = np.bincount(measure.label(cleaned == value, connectivity=1).ravel())[1:]
        assert sizes.min() >= 5


def test_nested_islands_are_resolved_from_the_outside_in():
    labels = np.zeros((20, 20, 20), dtype=np.uint8)
    labels[8:13, 8:13, 8:13] = 1  # a 125-voxel grain, smaller than min_size
    labels[10, 10, 10] = 0  # a speck inside it
    cleaned, info = remove_small_islands(labels, 200)
    assert not cleaned.any()
    assert info["islands_removed"] == 2


def test_island_size_follows_the_connectivity():
    labels = np.zeros((10, 10), dtype=np.uint8)
    labels[3, 3] = labels[4, 4] = labels[5, 5] = 1  # a diagonal: 3 islands of 1, or one of 3
    assert remove_small_islands(labels, 2, connectivity=1)[1]["islands_removed"] == 3
    assert remove_small_islands(labels, 3, connectivity=2)[1]["islands_removed"] == 0


def test_remove_small_islands_rejects_impossible_settings():
    with pytest.raises(InputError, match="min_size"):
        remove_small_islands(np.zeros((5, 5), dtype=np.uint8), 0)
    with pytest.raises(InputError, match="smaller min_size"):
        remove_small_islands(np.eye(4, dtype=np.uint8), 100)
