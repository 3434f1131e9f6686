"""A slice's fraction interval against the spread of many windows of one large image, and the
warning for slices that cannot be one material."""

import warnings

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_dmcr.descriptors import characterize
from napari_dmcr.descriptors.representativity import common_fraction, fraction_interval, slice_disagreements
from napari_dmcr.reconstruction import run_reconstruction


def gaussian_cut(side, sigma, fraction, seed):
    field = ndi.gaussian_filter(np.random.default_rng(seed).standard_normal((side, side)), sigma, mode="wrap")
    return (field < np.quantile(field, fraction)).astype(np.uint8)


@pytest.mark.parametrize(("sigma", "fraction", "window"), [(2, 0.5, 64), (4, 0.3, 128), (8, 0.15, 128)])
def test_the_fraction_sd_is_the_spread_of_windows_of_a_large_image(sigma, fraction, window):
    large = gaussian_cut(1536, sigma, fraction, seed=sigma)
    windows = [large[r : r + window, c : c + window] for r in range(0, 1536, window) for c in range(0, 1536, window)]
    spread = np.std([w.mean() for w in windows])  # the truth: 144 or 576 windows of one material
    estimated = np.mean([fraction_interval(w, 1)["sd"] for w in windows[::9]])  # each from one window
    assert 0.8 < estimated / spread < 1.25
    interval = fraction_interval(windows[0], 1)
    assert interval["low"] < interval["fraction"] == windows[0].mean() < interval["high"]
    assert interval["high"] - interval["low"] == pytest.approx(2 * 1.96 * interval["sd"])


def test_a_one_phase_image_has_no_spread():
    assert fraction_interval(np.ones((8, 8), np.uint8), 1) == {
        "fraction": 1.0, "sd": 0.0, "low": 1.0, "high": 1.0, "integral_range": 0.0,
    }  # fmt: skip


def test_slices_of_one_material_agree_and_0_07_against_0_13_does_not():
    large = gaussian_cut(512, 2, 0.1, seed=0)
    same = [large[:128, :128], large[256:384, 256:384], large[:128, 384:]]
    assert slice_disagreements(same, ["a", "b", "c"], [1]) == []
    field = ndi.gaussian_filter(np.random.default_rng(1).standard_normal((128, 256)), 2, mode="wrap")
    low, high = (
        (field[:, :128] < np.quantile(field[:, :128], 0.07)),
        (field[:, 128:] < np.quantile(field[:, 128:], 0.13)),
    )
    lines = slice_disagreements([low.astype(np.uint8), high.astype(np.uint8)], ["normal to z", "normal to y"], [1])
    assert len(lines) == 1 and "normal to z and normal to y hold 0.070 and 0.130 of label 1" in lines[0]


def test_a_run_from_disagreeing_slices_warns_before_it_starts_and_goes_on():
    field = ndi.gaussian_filter(np.random.default_rng(1).standard_normal((3, 64, 64)), (0, 2, 2), mode="wrap")
    slices = {axis: (f < np.quantile(f, q)).astype(np.uint8) for axis, f, q in zip("zyx", field, (0.1, 0.3, 0.1))}
    with pytest.warns(UserWarning, match="normal to z and normal to y hold 0.100 and 0.300"):
        result = run_reconstruction(slices, (16, 16, 16), device="cpu", descriptors="cpu", max_iter=2)
    assert any(note.startswith("warning: the slices normal to z and normal to y") for note in result.notes)
    interval = result.parameters["fraction_intervals"][1]
    assert (
        interval["fraction"] == pytest.approx(np.mean([s.mean() for s in slices.values()]))
        and interval["low"] < interval["fraction"] < interval["high"]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one image: nothing to reconcile
        run_reconstruction(slices["z"], (16, 16, 16), device="cpu", descriptors="cpu", max_iter=2)


def test_the_characterization_holds_the_fraction_sd():
    image = gaussian_cut(96, 2, 0.3, seed=3)
    entry = characterize(image, gram=False)["phases"][1]
    assert entry["volume_fraction_sd"] == pytest.approx(fraction_interval(image, 1)["sd"])


def test_the_annealing_baseline_warns_of_the_same_slices():
    from napari_dmcr.baselines import run_yeong_torquato

    field = ndi.gaussian_filter(np.random.default_rng(1).standard_normal((3, 64, 64)), (0, 2, 2), mode="wrap")
    slices = {axis: (f < np.quantile(f, q)).astype(np.uint8) for axis, f, q in zip("zyx", field, (0.1, 0.1, 0.3))}
    with pytest.warns(UserWarning, match="normal to z and normal to x hold 0.100 and 0.300"):
        run_yeong_torquato(slices, (16, 16, 16), max_swaps=1000, max_lag=4)


def test_common_fraction_moves_only_interfaces_to_the_exact_count():
    image = gaussian_cut(96, 3, 0.2, seed=4)
    for fraction in (0.15, 0.2, 0.27):
        (moved,) = common_fraction([image], 1, fraction)
        assert int(np.count_nonzero(moved == 1)) == round(fraction * image.size)
        changed = moved != image
        # A changed pixel lies within a few pixels of the given interface: the rim grew or shrank evenly.
        interface = ndi.binary_dilation(image == 1) & ~ndi.binary_erosion(image == 1)
        assert np.all(ndi.distance_transform_edt(~interface)[changed] <= 3)
    np.testing.assert_array_equal(common_fraction([image], 1, image.mean())[0], image)


def test_three_slices_are_matched_at_their_mean_fraction():
    from napari_dmcr.reconstruction.targets import make_target

    slices = {axis: gaussian_cut(48, 2, f, seed=k) for k, (axis, f) in enumerate(zip("zyx", (0.2, 0.25, 0.3)))}
    target = make_target(slices, 3)
    mean = np.mean([s.mean() for s in slices.values()])
    assert all(abs(np.mean(image == 1) - mean) <= 1 / image.size for image in target.images)
    assert target.given[0] is not None and np.mean(target.given[1] == 1) == slices["y"].mean()
    assert target.notes and f"one fraction of label 1, {mean:.4f}" in target.notes[0]
    assert target.fraction_intervals()[1]["fraction"] == pytest.approx(mean)
    same = make_target({axis: slices["z"] for axis in "zyx"}, 3)
    assert same.notes == [] and same.warnings == []


def test_three_slices_start_from_their_shapes_and_keep_the_network_rule(monkeypatch):
    from napari_dmcr.reconstruction import target_start

    slices = {axis: gaussian_cut(48, 2, f, seed=k) for k, (axis, f) in enumerate(zip("zyx", (0.3, 0.35, 0.4)))}
    seen, fitted_start = [], target_start.fitted_start

    def watched(images, *args, **kwargs):
        seen.append(images)
        return fitted_start(images, *args, **kwargs)

    monkeypatch.setattr(target_start, "fitted_start", watched)
    result = run_reconstruction(slices, (16, 16, 16), device="cpu", descriptors="cpu", max_iter=2)
    # The start is fitted to the slices as given (their shapes), the polish to them at one fraction.
    assert [float(np.mean(image == 1)) for image in seen[0]] == [slices[a].mean() for a in "zyx"]
    assert result.parameters["polish_kept"] in (True, False) and "speck_voxels_changed" in result.parameters
    assert result.fractions["1"]["result"] == pytest.approx(np.mean([s.mean() for s in slices.values()]), abs=1e-3)


def test_chord_anisotropy_tells_layers_from_one_isotropic_material():
    from napari_dmcr.reconstruction.targets import make_target

    layers = np.repeat((np.arange(24) // 3 % 2)[:, None], 24, axis=1).astype(np.uint8)  # 3 rows each
    assert make_target({axis: layers for axis in "zyx"}, 3).chord_anisotropy() == pytest.approx(8.0)
    slices = {axis: gaussian_cut(96, 2, 0.3, seed=k) for k, axis in enumerate("zyx")}
    assert make_target(slices, 3).chord_anisotropy() < 1.2
    assert make_target(slices["z"], 3).chord_anisotropy() == 1.0
