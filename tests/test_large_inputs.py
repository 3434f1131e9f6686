"""CT slices at their real size and inputs that scale: bounded work, an honest estimate, a cancel
that reaches every long step, and warnings where a run cannot be the material."""

import numpy as np
import pytest
import torch

from napari_dmcr.descriptors import preset
from napari_dmcr.errors import InputError
from napari_dmcr.io.readers import read_image
from napari_dmcr.progress import Cancelled, CancelToken, drain
from napari_dmcr.reconstruction import cost, reconstruct, run_reconstruction
from napari_dmcr.reconstruction import starts as starts_module
from napari_dmcr.reconstruction.level_cut import target_s2
from napari_dmcr.samples import conglomerate_slice

SPECS = preset("cpu")


def linear_scan(side, **kwargs):
    """The largest fitting side by stepping down one multiple of 16 at a time (the old loop)."""
    candidate = side
    while candidate > 16:
        estimate = cost.estimate_run((candidate,) * 3, SPECS, method="differentiable", device="cpu", **kwargs)
        if estimate.fits and estimate.seconds <= 180:
            return candidate
        candidate = (candidate - 1) // 16 * 16
    return max(min(side, 16), 4)


@pytest.mark.parametrize("side", [3, 16, 17, 40, 64, 97, 250, 1000])
def test_the_largest_fitting_side_is_the_linear_scan_s(side):
    found = cost.largest_fitting_side(
        side, SPECS, method="differentiable", device="cpu", iterations=30, max_seconds=180
    )
    assert found == linear_scan(side, iterations=30)


def test_an_elongated_huge_shape_is_refused_after_a_few_estimates(monkeypatch):
    """--shape 1000000000 16 16 hung in a loop of 60 million estimates."""
    calls = []
    estimate_run = cost.estimate_run
    monkeypatch.setattr(cost, "estimate_run", lambda *a, **k: calls.append(1) or estimate_run(*a, **k))
    with pytest.raises(InputError, match="try a size of at most"):
        cost.check_memory((10**9, 16, 16), SPECS)
    assert len(calls) < 80


def test_the_estimate_counts_the_target_images_and_refuses_what_cannot_be_characterized():
    small = cost.estimate_run((64,) * 3, SPECS, method="differentiable", device="cpu", iterations=1)
    large = cost.estimate_run(
        (64,) * 3, SPECS, method="differentiable", device="cpu", iterations=1, target_pixels=2048**2
    )
    assert large.memory_bytes - small.memory_bytes > 2048**2 * 32
    with pytest.raises(InputError, match="crop or downsample"):
        cost.check_memory((16,) * 3, SPECS, target_pixels=10**13)


def test_a_run_states_its_estimate_before_it_starts():
    image = conglomerate_slice((32, 32), seed=0)
    steps = reconstruct(image, (12, 12, 12), device="cpu", max_iter=2)
    assert steps.estimate.memory_bytes > 0 and steps.estimate.seconds > 0
    assert "free" in steps.estimate.summary()
    steps.close()


def test_the_start_s_correlations_stop_at_the_output_size():
    from napari_dmcr.descriptors import s2_radial

    image = (np.random.default_rng(0).random((300, 300)) < 0.3).astype(np.uint8)
    assert target_s2([image], 1).size == 150
    short = target_s2([image], 1, longest=40)  # from the longer profile kept
    np.testing.assert_allclose(short, s2_radial(image.astype(float), 40, periodic=False), atol=1e-12)


def test_a_cancel_while_the_target_is_characterized_ends_the_run_at_once(monkeypatch):
    """Nothing to keep yet: the run is cancelled whole instead of scoring the start against a
    target it would have to characterize again, uncancellably (seconds for a CT slice)."""
    from napari_dmcr.reconstruction import loss

    cancel = CancelToken()
    targets = loss.descriptor_targets

    def interrupted(*args, **kwargs):
        cancel.cancel()  # Ctrl-C while the slice is characterized
        return targets(*args, **kwargs)

    monkeypatch.setattr(loss, "descriptor_targets", interrupted)
    image = conglomerate_slice((32, 32), seed=0)
    with pytest.raises(Cancelled):
        drain(reconstruct(image, (16, 16, 16), device="cpu", cancel=cancel))


def test_grain_statistics_of_a_large_slice_use_a_sample_of_windows(monkeypatch):
    image = conglomerate_slice((64, 64), seed=0)
    large = np.tile(image, (8, 8))  # 512 x 512: 64 windows of 64
    labelled = []
    label = starts_module.measure.label
    monkeypatch.setattr(starts_module.measure, "label", lambda mask, **k: labelled.append(1) or label(mask, **k))
    rates = starts_module.slice_shapes([large], 1, window=64)
    assert len(labelled) == 2 * starts_module.MAX_WINDOWS  # per window, the phase and the rest
    np.testing.assert_allclose(rates, starts_module.slice_shapes([image], 1), rtol=1e-12)  # tiles of one image


def test_a_cancel_stops_the_fitted_start_before_it_builds(monkeypatch):
    cancel = CancelToken()
    cancel.cancel()
    built = []
    level_cut = starts_module.gaussian_level_cut
    monkeypatch.setattr(starts_module, "gaussian_level_cut", lambda *a, **k: built.append(1) or level_cut(*a, **k))
    image = conglomerate_slice((32, 32), seed=0)
    with pytest.raises(Cancelled):
        starts_module.fitted_start([image], 1, (16, 16, 16), cancel=cancel)
    assert not built
    with pytest.raises(Cancelled):  # the engine: nothing to keep yet, so the run is cancelled whole
        drain(reconstruct(image, (16, 16, 16), device="cpu", cancel=cancel))


def test_target_descriptors_are_computed_once_per_image(monkeypatch):
    """An isotropic target's one image serves the three directions, every level and the final score."""
    from napari_dmcr.reconstruction import loss

    calls = []
    targets = loss.descriptor_targets
    monkeypatch.setattr(loss, "descriptor_targets", lambda *a, **k: calls.append(1) or targets(*a, **k))
    image = conglomerate_slice((32, 32), seed=0)
    run_reconstruction(image, (16, 16, 16), device="cpu", start="random", max_iter=2, multigrid_levels=1, sharpen=0)
    assert len(calls) == 1


@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_infinite_pixels_are_refused_not_made_a_label(tmp_path, value):
    image = np.zeros((16, 16))
    image[4:9, 2:12] = 1.0
    image[0, 0] = value
    np.save(tmp_path / "slice.npy", image)
    with pytest.raises(InputError, match="NaN or infinite"):
        read_image(tmp_path / "slice.npy", ndim=2)


def test_more_than_two_phases_from_a_random_start_are_warned_about_before_the_run():
    image = np.tile(np.repeat(np.arange(3), 4), (12, 1)).astype(np.uint8)  # stripes of 0, 1, 2
    with pytest.warns(UserWarning, match="3 phases .* segment it to two labels"):
        steps = reconstruct(image, (12, 12, 12), device="cpu", max_iter=1, start="random")
    steps.close()


def test_an_implausible_residual_is_a_warning_in_the_result(monkeypatch):
    from napari_dmcr.reconstruction import finish

    image = conglomerate_slice((32, 32), seed=0)
    result = run_reconstruction(image, (12, 12, 12), device="cpu", max_iter=1)
    assert result.residual < finish.IMPLAUSIBLE_RESIDUAL and not any("warning" in n for n in result.notes)
    monkeypatch.setattr(finish, "IMPLAUSIBLE_RESIDUAL", result.residual / 2)
    result = run_reconstruction(image, (12, 12, 12), device="cpu", max_iter=1)
    assert any(note.startswith("warning: residual") for note in result.notes)
    assert any("warning: residual" in line for line in result.summary())


def test_large_target_images_give_the_same_loss_as_in_one_piece(monkeypatch):
    """The strip-wise targets of a large slice: the same residual as computed whole."""
    import napari_dmcr.descriptors.descriptor_set as descriptor_set

    image = conglomerate_slice((48, 48), seed=0)
    options = {"device": "cpu", "max_iter": 2, "start": "random", "multigrid_levels": 1, "sharpen": 0}
    whole = run_reconstruction(image, (16, 16, 16), **options)
    monkeypatch.setattr(descriptor_set, "STRIP_PIXELS", 300)
    strips = run_reconstruction(image, (16, 16, 16), **options)
    assert strips.residual == pytest.approx(whole.residual, rel=1e-5)
    assert torch.equal(torch.as_tensor(strips.labels), torch.as_tensor(whole.labels))


def test_the_command_line_states_the_estimate_and_warns_in_one_line(tmp_path, capsys):
    import tifffile

    from napari_dmcr.cli import main

    image = np.tile(np.repeat(np.array([0, 1000, 65535], np.uint16), 4), (12, 1))  # a 16-bit TIFF of 3 values
    tifffile.imwrite(tmp_path / "three.tif", image)
    out = tmp_path / "core.npy"
    assert main(["reconstruct", str(tmp_path / "three.tif"), "--shape", "12", "12", "12", "--max-iter", "1",
                 "--start", "random", "--out", str(out)]) == 0  # fmt: skip
    captured = capsys.readouterr()
    assert "reconstructing 12x12x12" in captured.out and "free, ≈" in captured.out
    warning = [line for line in captured.err.splitlines() if "warning" in line]
    assert warning == [warning[0]] and warning[0].startswith("dmcr reconstruct: warning: the target has 3 phases")
    assert "UserWarning" not in captured.err
