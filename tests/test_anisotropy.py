"""Anisotropic starts from three slices: the per-axis correlation lengths of a known field,
and a start whose correlation lengths follow them."""

import numpy as np
import pytest
from scipy import ndimage

from napari_dmcr.reconstruction import run_reconstruction
from napari_dmcr.reconstruction.anisotropy import (
    SIGNIFICANT_Z,
    anisotropy_z,
    axis_scales,
    correlation_lengths,
    is_anisotropic,
    isotropized,
    shrunk_shape,
    stretched,
)
from napari_dmcr.reconstruction.level_cut import lowest
from napari_dmcr.reconstruction.starts import fitted_start
from napari_dmcr.reconstruction.targets import make_target

SIGMAS = (1.5, 3.0, 6.0)  # a Gaussian filter's widths along z, y, x: correlation lengths 1:2:4


def anisotropic_volume(side, fraction, seed=0, sigmas=SIGMAS):
    noise = np.random.default_rng(seed).standard_normal((side,) * 3)
    return lowest(ndimage.gaussian_filter(noise, sigmas, mode="wrap"), fraction).astype(np.int64)


def mid_slices(volume):
    middle = volume.shape[0] // 2
    return [volume[middle], volume[:, middle], volume[:, :, middle]]


def half_lag(volume, axis, fraction):
    """Lag at which the volume's correlation along ``axis`` falls to one half, brute force."""
    mask = volume.astype(float)
    lags = np.arange(volume.shape[axis] // 2)
    covariance = np.array([np.mean(mask * np.roll(mask, -r, axis)) for r in lags]) - fraction**2
    correlation = covariance / covariance[0]
    k = np.flatnonzero(correlation < 0.5)[0]
    return k - 1 + (correlation[k - 1] - 0.5) / (correlation[k - 1] - correlation[k])


@pytest.mark.parametrize("fraction", [0.3, 0.5])
def test_the_per_axis_fit_recovers_the_lengths_of_a_known_anisotropic_field(fraction):
    images = mid_slices(anisotropic_volume(96, fraction))
    scales = axis_scales(images, [0, 1])
    np.testing.assert_allclose(scales / scales[0], [1.0, 2.0, 4.0], rtol=0.1)
    assert np.prod(scales) == pytest.approx(1.0)
    # The indicator's own correlation lengths, brute force over the slices that see each axis,
    # keep the same order and ratios as the Gaussian field's.
    lengths = correlation_lengths(images, [0, 1])
    assert np.all(np.diff(lengths, axis=1) > 0)


def test_slices_of_an_isotropic_field_are_not_taken_as_anisotropic():
    for seed in range(3):
        isotropic = anisotropic_volume(96, 0.3, seed=seed, sigmas=(3.0, 3.0, 3.0))
        assert anisotropy_z(mid_slices(isotropic), [0, 1]) < SIGNIFICANT_Z
        assert make_target(dict(zip("zyx", mid_slices(isotropic))), 3).axis_scales() is None
    assert anisotropy_z(mid_slices(anisotropic_volume(96, 0.3)), [0, 1]) > 2 * SIGNIFICANT_Z


def test_one_image_or_the_same_slice_three_times_is_isotropic():
    image = anisotropic_volume(64, 0.3)[32]
    assert make_target(image, 3).axis_scales() is None
    checker = (np.add.outer(np.arange(48), np.arange(48)) // 6) % 2
    scales = make_target({"z": checker, "y": checker, "x": checker}, 3).axis_scales()
    assert not is_anisotropic(scales)


def test_stretched_sets_the_fraction_and_crops_to_the_shape():
    scales = np.array([0.5, 1.0, 2.0])
    box = shrunk_shape((24, 24, 24), scales)
    assert box == (96, 48, 24)  # no side narrower than the output's
    cut = anisotropic_volume(96, 0.27)[:, :48, :24].astype(bool)
    out = stretched(cut, scales, (24, 24, 24))
    assert out.shape == (24, 24, 24)
    assert out.sum() == round(cut.mean() * out.size)
    assert stretched(cut, scales, (24, 24, 24), 0.3).sum() == round(0.3 * out.size)


def test_isotropized_slices_look_alike_along_both_axes():
    images = mid_slices(anisotropic_volume(96, 0.3))
    scales = axis_scales(images, [0, 1])
    for image in isotropized(images, scales):
        lengths = [half_lag(image == 1, axis, np.mean(image == 1)) for axis in (0, 1)]
        assert max(lengths) / min(lengths) < 1.35


def test_the_start_from_three_slices_has_the_truth_s_correlation_per_axis():
    truth = anisotropic_volume(96, 0.3)
    images = mid_slices(truth)
    scales = axis_scales(images, [0, 1])
    cut, choice = fitted_start(images, 1, (48, 48, 48), seed=0, models=("gaussian",), scales=scales)
    assert cut.sum() == round(np.mean([np.mean(image) for image in images]) * cut.size)  # the slices' fraction
    assert choice["scales"] == pytest.approx(scales, rel=1e-3)
    truth_lengths = [half_lag(truth, axis, 0.3) for axis in range(3)]
    start_lengths = [half_lag(cut, axis, cut.mean()) for axis in range(3)]
    np.testing.assert_allclose(start_lengths, truth_lengths, rtol=0.25)
    # Without the stretch the start is isotropic: its x length is far below the truth's.
    flat, _ = fitted_start(images, 1, (48, 48, 48), seed=0, models=("gaussian",))
    assert half_lag(flat, 2, flat.mean()) < 0.7 * truth_lengths[2]


def test_the_engine_stretches_the_start_of_three_anisotropic_slices():
    images = mid_slices(anisotropic_volume(64, 0.3))
    result = run_reconstruction(dict(zip("zyx", images)), (24, 24, 24), phase=1, seed=0, max_iter=2, device="cpu")
    scales = result.parameters["start_model"]["scales"]
    assert scales[0] < scales[1] < scales[2]
