import time

import numpy as np
import pytest

from napari_dmcr.baselines.yeong_torquato import (
    AnnealingResult,
    run_yeong_torquato,
    yeong_torquato,
)
from napari_dmcr.errors import InputError
from napari_dmcr.progress import CancelToken, ProgressStep


def periodic_s2(indicator, max_lag):
    """Brute force: mean of I(x) I(x + r e_a) with wrap-around, per axis and lag."""
    indicator = indicator.astype(np.float64)
    return np.array(
        [
            [np.mean(indicator * np.roll(indicator, -r, axis=a)) for r in range(max_lag + 1)]
            for a in range(indicator.ndim)
        ]
    )


def open_s2(indicator, max_lag):
    """Brute force: mean over the pairs inside a non-periodic image, per axis and lag."""
    indicator = indicator.astype(np.float64)
    profiles = []
    for a in range(indicator.ndim):
        moved = np.moveaxis(indicator, a, 0)
        n = moved.shape[0]
        profiles.append([np.mean(moved[: n - r] * moved[r:]) for r in range(max_lag + 1)])
    return np.array(profiles)


def blobs(shape, seed, fraction=0.4):
    """A smooth two-phase test image: thresholded periodic low-pass noise."""
    rng = np.random.default_rng(seed)
    spectrum = np.fft.fftn(rng.standard_normal(shape))
    radius = np.sqrt(sum(f**2 for f in np.meshgrid(*map(np.fft.fftfreq, shape), indexing="ij")))
    field = np.fft.ifftn(spectrum * np.exp(-((radius / 0.08) ** 2))).real
    return (field > np.quantile(field, 1 - fraction)).astype(np.uint8)


def drain(generator):
    steps = []
    while True:
        try:
            steps.append(next(generator))
        except StopIteration as stop:
            return steps, stop.value


@pytest.mark.parametrize(
    "target, shape, max_lag",
    [
        (blobs((24, 20), 0), (10, 12), 5),  # lag 5 on a length-10 axis: both sides coincide
        (blobs((20, 20), 1), (6, 8, 10), 3),
    ],
)
@pytest.mark.parametrize("temperature", [1e3, 0.0])
def test_incremental_s2_equals_full_recomputation(target, shape, max_lag, temperature):
    run = yeong_torquato(
        target, shape, max_lag=max_lag, max_swaps=40_000, stall_swaps=10**9,
        initial_temperature=temperature, cooling=1.0, seed=3, preview_interval_s=1e9,
    )
    steps, result = drain(run)
    assert result.swaps == 40_000
    assert result.energy < result.energy_history[0]  # the best state lies after the start
    target_s2 = open_s2(target, max_lag)
    if len(shape) == 3:  # one 2D section: its mean profile along every volume axis
        target_s2 = np.broadcast_to(target_s2.mean(axis=0), (3, max_lag + 1))
    np.testing.assert_allclose(result.target_s2, target_s2, rtol=0, atol=1e-12)

    # The returned (best) state: its incrementally kept counts and energy.
    s2 = periodic_s2(result.labels == 1, max_lag)
    np.testing.assert_allclose(result.s2, s2, rtol=0, atol=1e-12)
    np.testing.assert_allclose(result.energy, np.sum((s2 - result.target_s2) ** 2), rtol=1e-10)
    # The current state after all swaps, as reported by the last progress step.
    last = steps[-1]
    assert last.iteration == result.swaps
    current = periodic_s2(last.volume == 1, max_lag)
    expected = np.sum((current - result.target_s2) ** 2)
    np.testing.assert_allclose(last.losses["s2"], expected, rtol=1e-10)
    if temperature > 0:
        assert result.accepted > 30_000  # a hot run swaps nearly every trial


def test_three_section_targets_map_to_volume_axes():
    images = [blobs((16, 18), 1), blobs((14, 18), 2), blobs((14, 16), 3)]  # normal to z, y, x
    result = run_yeong_torquato(images, (8, 8, 8), max_lag=4, max_swaps=2_000)
    profiles = [open_s2(image, 4) for image in images]
    expected = [
        (profiles[1][0] + profiles[2][0]) / 2,  # z: axis 0 of the y- and x-normal images
        (profiles[0][0] + profiles[2][1]) / 2,
        (profiles[0][1] + profiles[1][1]) / 2,
    ]
    np.testing.assert_allclose(result.target_s2, expected, atol=1e-12)
    fraction = np.mean(np.concatenate([image.ravel() for image in images]))
    assert (result.labels == 1).sum() == round(fraction * 512)


def test_phase_fraction_never_changes():
    target = blobs((32, 32), 4, fraction=0.3)
    run = yeong_torquato(
        target, (16, 16, 16), max_swaps=60_000, interface_bias=True, preview_interval_s=0
    )
    steps, result = drain(run)
    count = round(target.mean() * 16**3)
    assert len(steps) > 3
    assert all(step.volume.sum() == count for step in steps)
    assert all(step.volume.dtype == np.float32 for step in steps)
    assert (result.labels == 1).sum() == count


def test_initial_state_is_polished_at_the_exact_fraction():
    target = blobs((32, 32), 5)
    initial = blobs((32, 32), 6, fraction=0.5) * 7  # other labels count as "not phase"
    result = run_yeong_torquato(
        target, (32, 32), phase=0, initial=initial, initial_temperature=0.0, max_swaps=20_000
    )
    assert result.labels.dtype == np.uint8
    assert set(np.unique(result.labels)) == {0, 1}
    assert (result.labels == 0).sum() == round((target == 0).mean() * 32 * 32)
    assert np.all(np.diff(result.energy_history) <= 0)  # cold: the energy never rises
    assert np.mean((result.labels == 0) == (initial == 0)) > 0.7  # structure kept


def test_energy_decreases_on_a_simple_target():
    target = blobs((48, 48), 7)
    result = run_yeong_torquato(target, (32, 32), max_swaps=150_000)
    assert isinstance(result, AnnealingResult)
    assert result.energy < 0.05 * result.energy_history[0]
    assert result.energy <= result.energy_history.min() + 1e-15
    assert result.swaps_per_second > 0
    assert result.parameters["seed"] == 0


def test_seeded_runs_repeat():
    target = blobs((32, 32), 8)
    kwargs = dict(max_swaps=50_000, interface_bias=True)
    first = run_yeong_torquato(target, (24, 24), seed=5, **kwargs)
    again = run_yeong_torquato(target, (24, 24), seed=5, **kwargs)
    other = run_yeong_torquato(target, (24, 24), seed=6, **kwargs)
    np.testing.assert_array_equal(first.labels, again.labels)
    np.testing.assert_array_equal(first.energy_history, again.energy_history)
    assert first.accepted == again.accepted
    assert not np.array_equal(first.labels, other.labels)


def test_cancel_returns_best_state_within_a_batch():
    token = CancelToken()
    run = yeong_torquato(
        blobs((32, 32), 9), (32, 32, 32), max_swaps=10**9, cancel=token, preview_interval_s=0
    )
    first = next(run)
    assert isinstance(first, ProgressStep) and first.iteration == 0
    next(run)
    token.cancel()
    tic = time.perf_counter()
    steps, result = drain(run)
    assert time.perf_counter() - tic < 2.0
    assert result.cancelled and result.stop_reason == "cancelled"
    assert result.swaps <= 2 * 20_000
    assert result.energy <= result.energy_history[0]
    assert steps == [] or steps[-1].iteration == result.swaps


def test_stop_criteria():
    target = blobs((32, 32), 10)
    reached = run_yeong_torquato(target, (16, 16), target_energy=10.0)
    assert reached.stop_reason == "target_energy" and reached.swaps == 0
    stalled = run_yeong_torquato(target, (16, 16), initial_temperature=0.0, stall_swaps=500)
    assert stalled.stop_reason == "stall"
    budget = run_yeong_torquato(target, (16, 16), max_swaps=1_234, stall_swaps=10**9)
    assert budget.stop_reason == "max_swaps" and budget.swaps == 1_234


@pytest.mark.parametrize(
    "target, shape, kwargs, match",
    [
        (np.ones((16, 16), np.uint8), (8, 8), {}, "single label"),
        (np.arange(256).reshape(16, 16) % 3, (8, 8), {}, "two phases"),
        (blobs((16, 16), 0), (8, 8), {"phase": 5}, "does not occur"),
        (blobs((16, 16), 0), (8, 8), {"max_lag": 6}, "too small for max_lag"),
        (blobs((8, 8), 0), (32, 32), {"max_lag": 6}, "target is too small"),
        (blobs((16, 16), 0), (8, 8), {"initial": np.zeros((9, 8))}, "initial has shape"),
        (blobs((16, 16), 0), (8, 8), {"cooling": 1.5}, "cooling"),
        (blobs((16, 16), 0).astype(float) * 0.5, (8, 8), {}, "labeled image"),
        (blobs((16, 16, 16), 0), (8, 8), {}, "single 2D target"),
    ],
)
def test_bad_input_is_refused_up_front(target, shape, kwargs, match):
    with pytest.raises(InputError, match=match):
        yeong_torquato(target, shape, **kwargs)
