"""The three-or-more-phase start: exact fractions, and its two-point functions against the
closed forms of a hierarchical truncation of independent Gaussian fields."""

import warnings

import numpy as np
import pytest
from scipy import ndimage

from napari_dmcr.postprocessing.assignment import counts_from_fractions
from napari_dmcr.reconstruction import run_reconstruction
from napari_dmcr.reconstruction.level_cut import lowest
from napari_dmcr.reconstruction.pluri_gaussian import cross_functions, hierarchical_cut, pluri_gaussian_start


def two_fields_image(shape, seed, sigmas=(3.0, 1.5), fractions=(0.3, 0.25)):
    """Label 2 where field 1 is lowest (fraction f2), label 0 where field 2 is lowest among the
    rest (f0 of all), label 1 the rest: the model's own kind of material."""
    rng = np.random.default_rng(seed)
    first = lowest(ndimage.gaussian_filter(rng.standard_normal(shape), sigmas[0], mode="wrap"), fractions[0])
    second = ndimage.gaussian_filter(rng.standard_normal(shape), sigmas[1], mode="wrap")
    second[first] = np.inf
    image = np.where(first, 2, 1)
    image[lowest(second, fractions[1])] = 0
    return image


def pair_function(volume, a, b, lags, axes):
    """P(a at x, b at x + r) along ``axes`` (periodic), brute force."""
    return np.array(
        [np.mean([np.mean((volume == a) & (np.roll(volume, -r, axis) == b)) for axis in axes]) for r in lags]
    )


def test_fractions_are_exact_for_three_and_four_labels():
    image = two_fields_image((48, 48), 0)
    image[image == 1] = np.where(np.arange(48)[None, :].repeat(48, 0)[image == 1] % 16 < 8, 1, 3)
    for labels_image in (np.where(image == 3, 1, image), image):
        result, choice = pluri_gaussian_start([labels_image], (20, 21, 22), seed=1, models=("gaussian",))
        labels = np.unique(labels_image)
        fractions = [np.mean(labels_image == label) for label in labels]
        counts = counts_from_fractions(fractions, result.size)
        assert [int(np.sum(result == label)) for label in labels] == counts.tolist()
        assert sorted(choice["order"]) == labels.tolist()


def test_each_label_and_cross_function_match_the_hierarchical_closed_form():
    image = two_fields_image((384, 384), 0)
    fractions = [np.mean(image == label) for label in (2, 0, 1)]
    first = lowest(
        ndimage.gaussian_filter(np.random.default_rng(5).standard_normal((96,) * 3), 3.0, mode="wrap"), fractions[0]
    )
    volume = hierarchical_cut([image], (2, 0, 1), first, fractions, seed=3, periodic=True)
    lags = range(0, 9)
    # Label 0's field is independent of the set of label 2: P(2 at x, 0 at x+r) = P(2 at x,
    # not 2 at x+r) * f0 / (1 - f2), with the volume's own first set (Monte Carlo check).
    cross = pair_function(volume, 2, 0, lags, (0, 1, 2))
    rest = np.mean(first) - pair_function(first.astype(int), 1, 1, lags, (0, 1, 2))  # P(2 at x, not 2 at x+r)
    np.testing.assert_allclose(cross, rest * fractions[1] / (1 - fractions[0]), atol=4e-3)
    # Label 0's two-point function is the image's (fitted through the conditional S2).
    np.testing.assert_allclose(
        pair_function(volume, 0, 0, lags, (0, 1, 2)), pair_function(image, 0, 0, lags, (0, 1)), atol=0.012
    )


def test_a_next_label_of_spheres_keeps_its_count_and_the_image_s_two_point_function():
    image = two_fields_image((256, 256), 4, sigmas=(3.0, 2.0), fractions=(0.3, 0.2))
    fractions = [np.mean(image == label) for label in (2, 0, 1)]
    first = lowest(
        ndimage.gaussian_filter(np.random.default_rng(6).standard_normal((64,) * 3), 3.0, mode="wrap"), fractions[0]
    )
    volume = hierarchical_cut([image], (2, 0, 1), first, fractions, seed=1, periodic=True, kinds=("spheres",))
    counts = counts_from_fractions(fractions, volume.size)
    assert [int(np.sum(volume == label)) for label in (2, 0, 1)] == counts.tolist()
    lags = range(0, 7)
    np.testing.assert_allclose(
        pair_function(volume, 0, 0, lags, (0, 1, 2)), pair_function(image, 0, 0, lags, (0, 1)), atol=0.02
    )


def test_the_engine_starts_three_phases_from_the_fitted_model():
    image = two_fields_image((64, 64), 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "random start, far longer" warning any more
        result = run_reconstruction(image, (20, 20, 20), seed=0, max_iter=3, device="cpu")
    assert result.parameters["start_model"]["model"] == "pluri-gaussian"
    counts = counts_from_fractions([np.mean(image == label) for label in (0, 1, 2)], result.labels.size)
    assert [int(np.sum(result.labels == label)) for label in (0, 1, 2)] == counts.tolist()


def test_cross_functions_count_every_pair_both_ways_without_wrap():
    image = np.random.default_rng(4).integers(0, 3, (9, 7))
    functions = cross_functions([image], [0, 1, 2], lags=3)
    for i, j in [(0, 1), (0, 2), (1, 2)]:
        for r in (1, 2, 3):
            expected = (
                np.mean([image[y, x] == i and image[y, x + r] == j for y in range(9) for x in range(7 - r)])
                + np.mean([image[y, x] == i and image[y + r, x] == j for y in range(9 - r) for x in range(7)])
                + np.mean([image[y, x] == j and image[y, x + r] == i for y in range(9) for x in range(7 - r)])
                + np.mean([image[y, x] == j and image[y + r, x] == i for y in range(9 - r) for x in range(7)])
            ) / 4
            assert functions[i, j][r - 1] == pytest.approx(expected / (np.mean(image == i) * np.mean(image == j)))


def test_the_order_is_the_one_the_cross_functions_show():
    """Label 2 placed first, label 0 inside the rest (as 1 would be: after the first label, the
    rest is split by one independent field either way): the cross functions tell a first label 2
    from every other."""
    image = two_fields_image((96, 96), seed=5, sigmas=(4.0, 1.0), fractions=(0.4, 0.1))
    _, choice = pluri_gaussian_start([image], (24, 24, 24), seed=0, models=("gaussian",))
    assert choice["order"][0] == 2
    crossed = choice["cross_distances"]
    assert max(v for k, v in crossed.items() if k.startswith("2")) < min(
        v for k, v in crossed.items() if not k.startswith("2")
    )
