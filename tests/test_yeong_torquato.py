import time

import numpy as np
import pytest

from napari_dmcr.baselines.annealing_result import AnnealingResult
from napari_dmcr.baselines.yeong_torquato import run_yeong_torquato, yeong_torquato
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
        target,
        shape,
        max_lag=max_lag,
        max_swaps=40_000,
        stall_swaps=10**9,
        initial_temperature=temperature,
        cooling=1.0,
        seed=3,
        preview_interval_s=1e9,
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


def test_periodic_target_profiles_wrap_around():
    target = blobs((20, 24), 2)
    result = run_yeong_torquato(target, (12, 12), max_lag=6, max_swaps=0, target_periodic=True)
    np.testing.assert_allclose(result.target_s2, periodic_s2(target, 6), rtol=0, atol=1e-12)
    assert not np.allclose(result.target_s2, open_s2(target, 6))


def test_polishing_a_reconstruction_keeps_its_structure():
    """Two-stage method: start from a near solution; the default polish is a cool anneal."""
    target = blobs((48, 48), 11)
    near_solution = blobs((32, 32), 12)  # another realization of the target's process
    polished = run_yeong_torquato(target, (32, 32), initial=near_solution)
    from_scratch = run_yeong_torquato(target, (32, 32))
    assert polished.parameters["initial_acceptance"] == 0.05
    assert polished.energy < 0.01 * polished.energy_history[0]
    # A fresh start keeps nothing of it: chance agreement is 0.4**2 + 0.6**2 = 0.52.
    assert np.mean(polished.labels == near_solution) > 0.68
    assert np.mean(from_scratch.labels == near_solution) < 0.62


def test_initial_temperature_accepts_the_mean_uphill_swap_with_the_given_probability():
    target = blobs((32, 32), 13)
    start = blobs((16, 16), 14, fraction=round(target.mean() * 256) / 256)
    result = run_yeong_torquato(target, (16, 16), max_lag=8, initial=start, initial_acceptance=0.3, max_swaps=0)
    energy = np.sum((periodic_s2(start, 8) - result.target_s2) ** 2)
    assert result.energy_history[0] == pytest.approx(energy)  # the start was used as given
    # Brute force: mean energy rise over the uphill ones among random phase-preserving swaps.
    rng = np.random.default_rng(0)
    ones, zeros = np.flatnonzero(start), np.flatnonzero(start == 0)
    changes = []
    for p, q in zip(rng.choice(ones, 3000), rng.choice(zeros, 3000)):
        swapped = start.copy().reshape(-1)
        swapped[p], swapped[q] = 0, 1
        changes.append(np.sum((periodic_s2(swapped.reshape(16, 16), 8) - result.target_s2) ** 2))
    changes = np.array(changes) - energy
    expected = -changes[changes > 0].mean() / np.log(0.3)
    np.testing.assert_allclose(result.initial_temperature, expected, rtol=0.1)


def test_geometric_cooling_per_temperature_level():
    result = run_yeong_torquato(
        blobs((32, 32), 15),
        (16, 16),
        max_swaps=10_000,
        stall_swaps=10**9,
        swaps_per_temperature=1_000,
        cooling=0.9,
    )
    # The temperature drops before trial swaps 1000, 2000, ..., 9000: nine times.
    np.testing.assert_allclose(result.final_temperature, result.initial_temperature * 0.9**9)


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
    # The differentiable engine's form of three slices: a dict by the axis each is normal to.
    as_dict = run_yeong_torquato(dict(zip("zyx", images)), (8, 8, 8), max_lag=4, max_swaps=10)
    np.testing.assert_allclose(as_dict.target_s2, expected, atol=1e-12)


def test_phase_fraction_never_changes():
    target = blobs((32, 32), 4, fraction=0.3)
    run = yeong_torquato(target, (16, 16, 16), max_swaps=60_000, interface_bias=True, preview_interval_s=0)
    steps, result = drain(run)
    count = round(target.mean() * 16**3)
    assert len(steps) > 3
    assert all(step.volume.sum() == count for step in steps)
    assert all(step.volume.dtype == np.float32 for step in steps)
    assert (result.labels == 1).sum() == count


def test_initial_state_is_polished_at_the_exact_fraction():
    target = blobs((32, 32), 5)
    initial = blobs((32, 32), 6, fraction=0.5) * 7  # other labels count as "not phase"
    result = run_yeong_torquato(target, (32, 32), phase=0, initial=initial, initial_temperature=0.0, max_swaps=20_000)
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
    run = yeong_torquato(blobs((32, 32), 9), (32, 32, 32), max_swaps=10**9, cancel=token, preview_interval_s=0)
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
        (np.arange(256).reshape(16, 16) % 2 * 255, (8, 8), {}, "labels must lie in 0..254"),
        (blobs((16, 16), 0), (8, 8), {"phase": 5}, "does not occur"),
        (blobs((16, 16), 0), (8, 8), {"max_lag": 6}, "too small for max_lag"),
        (blobs((8, 8), 0), (32, 32), {"max_lag": 6}, "target is too small"),
        (blobs((16, 16), 0), (8, 8), {"initial": np.zeros((9, 8))}, "initial has shape"),
        (blobs((16, 16), 0), (8, 8), {"cooling": 1.5}, "cooling"),
        (blobs((16, 16), 0).astype(float) * 0.5, (8, 8), {}, "grey image"),
        (blobs((16, 16, 16), 0), (8, 8), {}, "single 2D target"),
    ],
)
def test_bad_input_is_refused_up_front(target, shape, kwargs, match):
    with pytest.raises(InputError, match=match):
        yeong_torquato(target, shape, **kwargs)


def three_phases(shape, seed):
    """Labels 0, 1 and 5 of a smooth test image: thresholds of periodic low-pass noise."""
    rng = np.random.default_rng(seed)
    spectrum = np.fft.fftn(rng.standard_normal(shape))
    radius = np.sqrt(sum(f**2 for f in np.meshgrid(*map(np.fft.fftfreq, shape), indexing="ij")))
    field = np.fft.ifftn(spectrum * np.exp(-((radius / 0.08) ** 2))).real
    return np.select([field < np.quantile(field, 0.2), field < np.quantile(field, 0.55)], [5, 0], 1).astype(np.uint8)


@pytest.mark.parametrize("temperature", [1e3, 0.0])
def test_three_phases_keep_every_count_and_their_incremental_s2_is_exact(temperature):
    target, max_lag = three_phases((24, 24), 0), 5
    run = yeong_torquato(
        target, (10, 10, 12), max_lag=max_lag, max_swaps=30_000, stall_swaps=10**9,
        initial_temperature=temperature, cooling=1.0, seed=2, preview_interval_s=1e9,
    )  # fmt: skip
    steps, result = drain(run)
    assert result.energy < result.energy_history[0]
    assert result.parameters["phase"] == 5  # the minority; progress shows its indicator
    assert steps[-1].volume.sum() == result.parameters["label_counts"]["5"]
    labels = (0, 1, 5)
    fractions = np.array([np.mean(target == label) for label in labels])
    counts = [int(np.sum(result.labels == label)) for label in labels]
    assert counts == list(result.parameters["label_counts"].values())
    assert np.all(np.abs(np.array(counts) - fractions * 1200) < 1)
    # Every label's S2 is matched: its incrementally kept counts and the energy, brute force.
    s2 = np.stack([periodic_s2(result.labels == label, max_lag) for label in labels])
    np.testing.assert_allclose(result.s2, s2, rtol=0, atol=1e-12)
    target_s2 = np.stack(
        [np.broadcast_to(open_s2(target == label, max_lag).mean(0), (3, max_lag + 1)) for label in labels]
    )
    np.testing.assert_allclose(result.target_s2, target_s2, rtol=0, atol=1e-12)
    np.testing.assert_allclose(result.energy, np.sum((s2 - target_s2) ** 2), rtol=1e-10)


def test_three_phases_anneal_toward_each_label_s2_and_polish_a_given_start():
    target = three_phases((32, 32), 1)
    result = run_yeong_torquato(target, (32, 32), seed=0)
    assert result.energy < 0.05 * result.energy_history[0]
    start = three_phases((32, 32), 2)
    polished = run_yeong_torquato(target, (32, 32), initial=start, seed=0)
    assert [int(np.sum(polished.labels == label)) for label in (0, 1, 5)] == list(
        polished.parameters["label_counts"].values()
    )
    assert np.mean(polished.labels == start) > 0.6  # a cool polish keeps the start's structure
