"""The Gaussian level-cut start against closed forms and an independent bivariate normal CDF."""

import numpy as np
import pytest
import torch
from scipy import special, stats
from scipy.ndimage import gaussian_filter

from napari_dmcr.descriptors import s2_axis_profiles, volume_slices
from napari_dmcr.errors import InputError
from napari_dmcr.reconstruction import reconstruct, run_reconstruction
from napari_dmcr.reconstruction.level_cut import (
    correlation_mixture,
    gaussian_correlation,
    gaussian_level_cut,
    target_s2,
)


def orthant(fraction, rho):
    """P(X < t, Y < t) for a standard bivariate normal, t = Phi^-1(fraction) (SciPy)."""
    t = special.ndtri(fraction)
    if rho > 1 - 1e-9:  # one point twice
        return fraction
    return stats.multivariate_normal(mean=[0, 0], cov=[[1, rho], [rho, 1]]).cdf([t, t])


@pytest.mark.parametrize("fraction", [0.15, 0.4, 0.7])
def test_correlation_inverts_the_bivariate_normal_orthant_probability(fraction):
    rhos = np.array([-0.6, -0.1, 0.0, 0.3, 0.8, 0.97])
    s2 = [orthant(fraction, rho) for rho in rhos]
    np.testing.assert_allclose(gaussian_correlation(s2, fraction), rhos, atol=2e-3)
    # The ends: S2(0) = fraction is rho = 1, uncorrelated points (S2 = fraction^2) rho = 0.
    np.testing.assert_allclose(gaussian_correlation([fraction, fraction**2], fraction), [1.0, 0.0], atol=1e-3)


def test_mixture_recovers_a_gaussian_correlation_and_drops_noise():
    lags = np.arange(33.0)
    rho = 0.7 * np.exp(-(lags**2) / (4 * 3.0**2)) + 0.3 * np.exp(-(lags**2) / (4 * 8.0**2))
    noisy = rho + 0.01 * np.random.default_rng(0).standard_normal(rho.size) * (lags > 0)
    widths, weights = correlation_mixture(noisy)
    fitted = (weights * np.exp(-(lags[:, None] ** 2) / (4 * widths**2))).sum(1)
    assert np.all(weights > 0) and weights.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(fitted, rho, atol=0.015)


def smooth_image(side, width, fraction, seed):
    """A level cut of white noise filtered by a Gaussian of ``width``: rho = exp(-r^2 / (4 w^2))."""
    noise = gaussian_filter(np.random.default_rng(seed).standard_normal((side, side)), width, mode="wrap")
    return (noise < np.quantile(noise, fraction)).astype(np.uint8)


def test_cut_has_the_exact_fraction_and_the_closed_form_s2_along_every_axis():
    width, fraction = 2.5, 0.3
    image = smooth_image(256, width, fraction, seed=1)
    cut = gaussian_level_cut([image], 1, (48, 48, 48), seed=3, periodic=True)
    assert cut.dtype == bool and cut.sum() == round(fraction * cut.size)
    lags = np.arange(9)
    closed_form = [orthant(fraction, rho) for rho in np.exp(-(lags**2) / (4 * width**2))]
    volume = torch.as_tensor(cut, dtype=torch.float64)
    for stack in (volume_slices(volume, axis) for axis in range(3)):
        profiles = s2_axis_profiles(stack, 8, periodic=True).mean(0).numpy()
        for profile in profiles:  # both in-plane axes of the slices normal to z, y and x
            np.testing.assert_allclose(profile, closed_form, atol=0.02)
    # The target's own S2 is the closed form too: the fit is not what makes them agree.
    np.testing.assert_allclose(target_s2([image], 1, periodic=True)[:9], closed_form, atol=0.015)


def test_cut_is_seeded_and_works_in_2d():
    image = smooth_image(64, 2.0, 0.4, seed=2)
    first = gaussian_level_cut([image], 1, (32, 32, 32), seed=5)
    assert np.array_equal(first, gaussian_level_cut([image], 1, (32, 32, 32), seed=5))
    assert not np.array_equal(first, gaussian_level_cut([image], 1, (32, 32, 32), seed=6))
    flat = gaussian_level_cut([image], 0, (40, 40), seed=0)
    assert flat.shape == (40, 40) and flat.sum() == round(np.mean(image == 0) * 1600)


def test_engine_starts_from_the_cut_by_default_and_from_noise_when_it_cannot():
    image = smooth_image(48, 2.0, 0.3, seed=3)
    # A residual target that the first iteration meets: the run records its defaults and stops.
    result = run_reconstruction(image, (16, 16, 16), device="cpu", descriptors="cpu", target_residual=10.0)
    assert result.parameters["start"] == "auto" and result.parameters["start_model"]["model"] in ("gaussian", "spheres")
    assert (result.parameters["multigrid_levels"], result.parameters["max_iter"]) == (1, 30)
    result = run_reconstruction(
        image, (16, 16, 16), device="cpu", descriptors="cpu", target_residual=10.0, start="random"
    )
    assert (result.parameters["multigrid_levels"], result.parameters["max_iter"]) == (1, 200)
    # The polish of a fitted start stops within the natural spread of slices; a random start does not.
    defaults = [
        run_reconstruction(image, (16, 16, 16), device="cpu", descriptors="cpu", max_iter=1, start=start)
        for start in ("auto", "random")
    ]
    assert [r.parameters["target_residual"] for r in defaults] == [0.1, 0.005]
    three = (image + (np.arange(48)[:, None] < 8)).astype(np.uint8)  # labels 0, 1, 2
    result = run_reconstruction(three, (16, 16), device="cpu", max_iter=2, descriptors="cpu")
    assert result.parameters["start"] == "auto" and result.parameters["start_model"]["model"] == "pluri-gaussian"
    with pytest.raises(InputError, match="two-phase target images"):
        reconstruct(three, (16, 16), start="gaussian")
    with pytest.raises(InputError, match="unknown start"):
        reconstruct(image, (16, 16), start="blobs")
