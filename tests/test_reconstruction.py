"""The differentiable reconstruction engine on small problems (CPU)."""

import gc
import json
import math
import time
import types
import weakref

import numpy as np
import pytest
import torch
from scipy.ndimage import label as ndi_label

from napari_dmcr.cli import main
from napari_dmcr.descriptors import DescriptorSpec, preset, s2_axis_profiles, volume_slices
from napari_dmcr.errors import DeviceMemoryError, InputError
from napari_dmcr.progress import CancelToken
from napari_dmcr.reconstruction import engine, reconstruct, run_reconstruction
from napari_dmcr.reconstruction.loss import SliceLoss, pooled_target_fields
from napari_dmcr.reconstruction.targets import make_target
from napari_dmcr.samples import conglomerate_slice

FAST = dict(descriptors="cpu", device="cpu", target_residual=0.0)


def blobs(shape, fraction, sigma=2.0, seed=0):
    """A smooth random two-phase image with exactly ``fraction`` of label 1."""
    from scipy.ndimage import gaussian_filter

    noise = gaussian_filter(np.random.default_rng(seed).standard_normal(shape), sigma, mode="wrap")
    return (noise > np.quantile(noise, 1 - fraction)).astype(np.uint8)


def stripes(shape, width):
    """Horizontal stripes: rows alternate between label 1 and 0 every ``width`` rows."""
    rows = (np.arange(shape[0]) // width) % 2
    return np.repeat(rows[:, None], shape[1], axis=1).astype(np.uint8)


def test_2d_reconstruction_of_a_real_image(shared_data):
    image = np.load(shared_data / "li2018_sandstone_256.npy")[:64, :64]
    result = run_reconstruction(image, (64, 64), max_iter=60, seed=0, **FAST)
    fraction = (image == 1).mean()
    # The rounding meets the target fraction to the voxel.
    assert (result.labels == 1).mean() == pytest.approx(fraction, abs=1 / 64**2)
    assert set(np.unique(result.labels)) == {0, 1}
    assert result.final_errors[0]["s3"] < 0.02  # relative squared error, i.e. about 14 % RMS
    start = result.history[0]["loss"]
    assert result.history[-1]["loss"] < 0.1 * start
    timings = result.timings
    assert 0 < timings["loss_s"] < timings["optimize_s"] <= timings["total_s"]


def test_optimizer_time_leaves_out_the_fitted_start(monkeypatch):
    """``optimize_s`` sums the optimizer runs: a start model that takes 0.5 s counts in
    ``total_s`` only."""
    fit = engine.target_start

    def slow_fit(*args, **kwargs):
        time.sleep(0.5)
        return fit(*args, **kwargs)

    monkeypatch.setattr(engine, "target_start", slow_fit)
    image = blobs((32, 32), 0.35, sigma=2.0, seed=1)
    result = run_reconstruction(image, (12, 12, 12), max_iter=5, seed=0, multigrid_levels=1, start="gaussian", **FAST)
    timings = result.timings
    assert 0 < timings["loss_s"] < timings["optimize_s"] <= timings["total_s"] - 0.5


def test_2d_to_3d_slices_match_the_target_s2_along_every_axis():
    image = blobs((48, 48), 0.35, sigma=2.0, seed=1)
    result = run_reconstruction(image, (16, 16, 16), max_iter=80, seed=0, multigrid_levels=1, **FAST)
    target = s2_axis_profiles(image, 4, periodic=False).mean(axis=0)
    indicator = (result.labels == 1).astype(float)
    for axis in range(3):
        profiles = s2_axis_profiles(volume_slices(indicator, axis), 4, periodic=True).mean(axis=(0, 1))
        # S2 within 0.04 of the target at every lag 0..4 (phi = 0.35, phi^2 = 0.12).
        np.testing.assert_allclose(profiles, target, atol=0.04)


def test_anisotropic_targets_give_an_anisotropic_volume():
    layered = stripes((24, 24), width=3)  # slices normal to x and y: layers stacked along z
    target = {"x": layered, "y": layered, "z": layered}
    result = run_reconstruction(
        target,
        (24, 16, 16),
        direction_weights=(0.0, 1.0, 1.0),
        max_iter=60,
        seed=0,
        multigrid_levels=1,
        **FAST,
    )
    indicator = (result.labels == 1).astype(float)
    # A layered volume: along z, S2 at lag 3 (the next layer) drops towards 0; along x it stays
    # near phi = 0.5 because each layer is uniform.
    along_z = s2_axis_profiles(volume_slices(indicator, 2), 3).mean(axis=0)[0]
    along_x = s2_axis_profiles(volume_slices(indicator, 0), 3).mean(axis=0)[1]
    assert along_z[3] < 0.15
    assert along_x[3] > 0.35


def test_three_phase_target_gives_three_phases_at_the_target_fractions(shared_data):
    image = np.load(shared_data / "li2018_composite_256.npy")[::4, ::4]  # 64x64
    result = run_reconstruction(image, (16, 16, 16), max_iter=25, seed=0, **FAST)
    assert sorted(np.unique(result.labels)) == [0, 1, 2]
    for label in (0, 1, 2):
        assert (result.labels == label).mean() == pytest.approx((image == label).mean(), abs=2 / 16**3)
    assert result.parameters["labels"] == [0, 1, 2]


def test_cancel_stops_within_one_iteration_and_keeps_the_state():
    image = blobs((32, 32), 0.4)
    cancel = CancelToken()
    steps = reconstruct(
        image, (16, 16, 16), max_iter=500, seed=0, cancel=cancel, preview_interval_s=0.0, multigrid_levels=1, **FAST
    )
    seen = None
    while True:
        try:
            step = next(steps)
        except StopIteration as stop:
            result = stop.value
            break
        if seen is None and step.iteration >= 3:
            seen = step.iteration
            cancel.cancel()
    assert result.cancelled
    # The step seen was emitted after iteration `seen`; one more may have been under way.
    assert len(result.history) <= seen + 1
    assert result.labels.shape == (16, 16, 16)
    assert np.isfinite(result.field).all()


def test_same_seed_same_result_other_seed_other_result():
    image = blobs((32, 32), 0.4)
    runs = [run_reconstruction(image, (12, 12, 12), max_iter=10, seed=s, **FAST) for s in (3, 3, 4)]
    np.testing.assert_array_equal(runs[0].labels, runs[1].labels)
    np.testing.assert_array_equal(runs[0].field, runs[1].field)
    assert not np.array_equal(runs[0].labels, runs[2].labels)


def test_lbfgsb_keeps_the_field_in_bounds_and_adam_runs():
    image = blobs((32, 32), 0.3)
    lbfgsb = run_reconstruction(image, (32, 32), max_iter=20, seed=0, **FAST)
    assert lbfgsb.field.min() >= 0.0 and lbfgsb.field.max() <= 1.0
    adam = run_reconstruction(image, (32, 32), optimizer="adam", max_iter=40, seed=0, multigrid_levels=1, **FAST)
    assert adam.history[-1]["loss"] < adam.history[0]["loss"]
    runs = sorted({h["run"] for h in adam.history})
    assert runs == [0, 1, 2]  # the level, then the two rounds of the sharpening stage
    for run in runs:  # one evaluation per iteration, counted per run
        counts = [h["evaluations"] for h in adam.history if h["run"] == run]
        assert counts == list(range(1, len(counts) + 1))
    assert [h["stage"] for h in adam.history].count("sharpen") == 40


def test_multigrid_runs_coarse_to_fine_and_previews_keep_the_full_shape():
    image = blobs((64, 64), 0.4, sigma=3.0)
    steps = reconstruct(image, (32, 32, 32), max_iter=4, multigrid_levels=2, seed=0, preview_interval_s=0.0, **FAST)
    shapes = set()
    while True:
        try:
            shapes.add(next(steps).volume.shape)
        except StopIteration as stop:
            result = stop.value
            break
    assert shapes == {(32, 32, 32)}
    assert next(h["level"] for h in result.history) == 1 and result.history[-1]["level"] == 0


def test_sharpening_stage_pushes_the_field_toward_0_and_1():
    image = blobs((48, 48), 0.35, sigma=2.5)
    kwargs = dict(max_iter=30, multigrid_levels=2, seed=0, **FAST)
    plain = run_reconstruction(image, (32, 32), sharpen=0, **kwargs)
    sharpened = run_reconstruction(image, (32, 32), sharpen=8, **kwargs)

    def grey(field):
        return ((field > 0.1) & (field < 0.9)).mean()

    assert {h["stage"] for h in plain.history} == {"optimize"}
    stages = [h["stage"] for h in sharpened.history]
    assert stages[-1] == "sharpen" and 0 < stages.count("sharpen") <= 30
    assert grey(sharpened.field) < 0.75 * grey(plain.field)
    assert sharpened.parameters["sharpen"] == 8.0
    assert (sharpened.labels == 1).mean() == pytest.approx((image == 1).mean(), abs=1 / 32**2)


def test_chunked_gradient_equals_the_whole_gradient():
    image = blobs((24, 24), 0.4)
    target = make_target(image, 3)
    specs = (DescriptorSpec("s3", limit_to=3), DescriptorSpec("tv"), DescriptorSpec("vf"))
    fields = pooled_target_fields(target, [1], 0, torch.float64, "cpu")
    volume = torch.rand((8, 10, 12), dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    gradients, losses = [], []
    for chunk in (1, 3, 100):
        variable = volume.clone().requires_grad_(True)
        loss = SliceLoss(specs, fields, volume.shape, (1.0, 0.5, 2.0), chunk)
        losses.append(loss.evaluate(lambda v: [v], variable)[0])
        gradients.append(variable.grad.clone())
    assert losses[0] == pytest.approx(losses[2], rel=1e-12)
    torch.testing.assert_close(gradients[0], gradients[2])
    torch.testing.assert_close(gradients[1], gradients[2])


def test_out_of_memory_explains_and_frees_the_run_at_once(monkeypatch):
    """The OOM error names a smaller chunk size, and the failed run's tensors are freed without the
    garbage collector (on a GPU they would otherwise hold the memory the retry needs)."""
    held = []

    def out_of_memory(variable, *args):
        held.append(weakref.ref(variable))
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(engine, "run_lbfgsb_torch", out_of_memory)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: types.SimpleNamespace(total_memory=2**30))
    gc.disable()
    try:
        with pytest.raises(DeviceMemoryError, match=r"chunks of 8 slices; try chunk_size=4 or device='cpu'"):
            run_reconstruction(stripes((16, 16), 2), (8, 8, 8), chunk_size=8, **FAST)
        assert held and held[0]() is None
    finally:
        gc.enable()


def test_an_error_whose_cause_is_itself_still_reaches_the_caller(monkeypatch):
    def fails(*args):
        error = RuntimeError("broken optimizer")
        raise error from error

    monkeypatch.setattr(engine, "run_lbfgsb_torch", fails)
    with pytest.raises(RuntimeError, match="broken optimizer"):
        run_reconstruction(stripes((16, 16), 2), (8, 8, 8), **FAST)


@pytest.mark.parametrize(
    "target, shape, kwargs, match",
    [
        (np.ones((16, 16), np.uint8), (8, 8, 8), {}, "single label"),
        (np.random.default_rng(0).random((16, 16)), (8, 8, 8), {}, "grey image"),
        (np.zeros((2, 16, 16), np.uint8), (8, 8, 8), {}, "2D label array"),
        (stripes((16, 16), 2), (8, 8, 8, 8), {}, "shape must be 2 or 3"),
        (stripes((16, 16), 2), (8, 8, 8), {"optimizer": "sgd"}, "unknown optimizer"),
        (stripes((16, 16), 2), (8, 8, 8), {"phase": 7}, "not a label"),
        (stripes((16, 16), 2), (8, 8, 8), {"descriptors": "fast"}, "unknown descriptor preset"),
        (stripes((16, 16), 2), (8, 8, 8), {"device": "tpu"}, "unknown device"),
        ({"x": stripes((16, 16), 2)}, (8, 8, 8), {}, "missing"),
        (stripes((16, 16), 2), (8, 8, 8), {"sharpen": -1}, "sharpen must be"),
    ],
)
def test_bad_input_gives_a_clear_error(target, shape, kwargs, match):
    with pytest.raises(InputError, match=match):
        reconstruct(target, shape, **kwargs)


def test_command_line_writes_the_volume_and_its_parameters(tmp_path):
    image_path = tmp_path / "slice.npy"
    np.save(image_path, conglomerate_slice((32, 32), seed=1))
    out = tmp_path / "volume.tif"
    code = main(
        [
            "reconstruct",
            str(image_path),
            "--out",
            str(out),
            "--shape",
            "12",
            "12",
            "12",
            "--max-iter",
            "5",
            "--seed",
            "7",
            "--preset",
            "cpu",
            "--weights",
            "tv=2",
        ]
    )
    assert code == 0
    import tifffile

    volume = tifffile.imread(out)
    assert volume.shape == (12, 12, 12)
    sidecar = json.loads((tmp_path / "volume.tif.json").read_text())
    assert sidecar["seed"] == 7 and sidecar["parameters"]["seed"] == 7
    assert sidecar["device"] == "cpu"
    assert {d["name"]: d["weight"] for d in sidecar["parameters"]["descriptors"]}["tv"] == 2.0
    assert set(sidecar["final_errors"]) == {"z", "y", "x"}


def test_command_line_refuses_bad_weights(tmp_path, capsys):
    code = main(["reconstruct", "--out", str(tmp_path / "v.npy"), "--weights", "s3:1"])
    assert code == 2
    assert "NAME=WEIGHT" in capsys.readouterr().err


@pytest.mark.parametrize(
    "out, extra, message",
    [
        ("folder.npy", [], "is a folder"),
        ("a_file/core.npy", [], "is a file, not a folder"),
        ("core", [], "without suffix"),
        ("core.npy", ["--voxel-size", "-1"], "positive number"),
    ],
)
def test_command_line_checks_the_output_before_it_computes(tmp_path, capsys, out, extra, message):
    (tmp_path / "folder.npy").mkdir()
    (tmp_path / "a_file").write_text("not a folder")
    code = main(["reconstruct", "--out", str(tmp_path / out), "--shape", "64", "64", "64", *extra])
    captured = capsys.readouterr()
    assert code == 2 and message in captured.err
    assert "reconstructing" not in captured.out  # refused before the run started


def test_initial_state_is_where_the_run_starts():
    image = blobs((32, 32), 0.4)
    start = blobs((16, 16), 0.4, seed=5)
    result = run_reconstruction(image, (16, 16), initial=start, max_iter=1, multigrid_levels=1, **FAST)
    assert result.parameters["start"] == "initial"
    # One iteration from a labeled start moves little: most voxels keep their label.
    assert (result.labels == start).mean() > 0.8
    field = np.random.default_rng(0).random((16, 16))
    steps = reconstruct(image, (16, 16), initial=field, max_iter=1, multigrid_levels=1, preview_interval_s=0.0, **FAST)
    first = next(steps)
    assert first.volume.shape == (16, 16)
    with pytest.raises(InputError, match="output shape"):
        reconstruct(image, (16, 16), initial=start[:8])
    with pytest.raises(InputError, match="labels"):
        reconstruct(image, (16, 16), initial=start + 5)
    with pytest.raises(InputError, match="either initial or restarts"):
        reconstruct(image, (16, 16), initial=start, restarts=1)


def test_a_descriptor_file_target_equals_its_image(tmp_path):
    from napari_dmcr.descriptors import characterize, save_descriptors

    image = blobs((32, 32), 0.35, seed=3)
    path = tmp_path / "target.npz"
    save_descriptors(path, characterize(image, s3_limit_to=3, s3_levels=1, gram=False))
    from_file = run_reconstruction(path, (16, 16, 16), max_iter=8, seed=2, isotropic_s2=1.0, **FAST)
    # The same run from the image, with the settings the file was characterized with.
    weights = {spec.name: spec.weight for spec in preset(FAST["descriptors"])}
    specs = (
        DescriptorSpec("s3", limit_to=3, levels=1),
        DescriptorSpec("tv", weight=weights["tv"]),
        DescriptorSpec("vf"),
    )
    # A file holds no radial S2: the isotropic 3D term is off for it (and said so), and the run
    # starts from noise, not from a Gaussian level cut.
    from_image = run_reconstruction(
        image,
        (16, 16, 16),
        descriptors=specs,
        max_iter=8,
        seed=2,
        start="random",
        multigrid_levels=1,
        device="cpu",
        target_residual=0.0,
        isotropic_s2=0,
    )
    assert any("isotropic 3D S2 off" in note for note in from_file.notes)
    assert [d["name"] for d in from_file.parameters["descriptors"]] == ["s3", "tv", "vf"]
    assert from_file.parameters["multigrid_levels"] == 1
    assert from_file.parameters["start"] == "random"
    assert from_file.fractions == from_image.fractions
    # The file stores the descriptors in float32: the runs agree to rounding, amplified a little
    # over the optimizer's iterations.
    np.testing.assert_allclose(
        [h["loss"] for h in from_file.history], [h["loss"] for h in from_image.history], rtol=1e-3
    )
    with pytest.raises(InputError, match="one multigrid level"):
        reconstruct(path, (16, 16, 16), multigrid_levels=2)
    with pytest.raises(InputError, match="descriptor file"):
        reconstruct(tmp_path / "image.png", (16, 16, 16))


def test_command_line_reconstructs_from_a_descriptor_file(tmp_path):
    image_path = tmp_path / "slice.npy"
    np.save(image_path, conglomerate_slice((32, 32), seed=1))
    npz = tmp_path / "descriptors.npz"
    assert (
        main(
            ["characterize", str(image_path), "--out", str(npz), "--no-gram", "--s3-limit-to", "3", "--s3-levels", "1"]
        )
        == 0
    )
    out = tmp_path / "volume.npy"
    assert main(["reconstruct", str(npz), "--out", str(out), "--max-iter", "3", "--preset", "cpu"]) == 0
    assert np.load(out).shape == (32, 32, 32)
    assert main(["reconstruct", str(npz), "--method", "yt", "--out", str(out)]) == 2


def test_volume_match_is_the_error_of_the_mean_slice_descriptor():
    """match="volume": brute force over every slice (S3 per slice, mean, relative squared error
    against the image's S3), value and gradient, with the slices split into several chunks."""
    from napari_dmcr.descriptors.three_point import s3

    image = blobs((24, 24), 0.4)
    weights = (1.0, 0.5, 2.0)
    volume = torch.rand((8, 10, 12), dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    reference = volume.clone().requires_grad_(True)
    target = s3(torch.as_tensor(image == 1, dtype=torch.float64)[None], 3, periodic=False)[0].flatten()
    expected = 0.0
    for axis, weight in enumerate(weights):
        slices = volume_slices(reference, axis)
        mean = torch.stack([s3(s[None], 3, periodic=True)[0].flatten() for s in slices]).mean(0)
        expected = expected + weight * ((mean - target) ** 2).sum() / (target**2).sum()
    expected.backward()
    fields = pooled_target_fields(make_target(image, 3), [1], 0, torch.float64, "cpu")
    for chunk in (3, 100):
        variable = volume.clone().requires_grad_(True)
        loss = SliceLoss((DescriptorSpec("s3", limit_to=3),), fields, volume.shape, weights, chunk)
        assert loss.evaluate(lambda v: [v], variable)[0] == pytest.approx(float(expected.detach()), rel=1e-12)
        torch.testing.assert_close(variable.grad, reference.grad)


def test_field_filter_is_a_periodic_gaussian_and_the_projection_keeps_its_fixed_points():
    from scipy import ndimage as ndi

    from napari_dmcr.reconstruction.field_maps import periodic_gaussian, projection

    for shape, sigma in (((8, 9, 10), 1.0), ((5, 6), 2.5)):  # 2.5: the kernel wraps more than once
        field = torch.rand(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        expected = ndi.gaussian_filter(field.numpy(), sigma, mode="wrap", truncate=math.ceil(3 * sigma) / sigma)
        np.testing.assert_allclose(periodic_gaussian(field, sigma).numpy(), expected, atol=1e-12)
    values = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0], dtype=torch.float64)
    projected = projection(values, 8.0)
    torch.testing.assert_close(projected[[0, 2, 4]], values[[0, 2, 4]])
    assert projected[1] < 0.25 and projected[3] > 0.75


def test_filtered_run_has_no_one_voxel_specks_and_records_its_settings():
    image = blobs((48, 48), 0.35, sigma=2.0, seed=1)
    result = run_reconstruction(image, (16, 16, 16), max_iter=40, seed=0, filter_sigma=1.0, start="random", **FAST)
    assert result.parameters["filter_sigma"] == 1.0 and result.parameters["match"] == "volume"
    labels, _count = ndi_label(result.labels == 1)
    sizes = np.bincount(labels.ravel())[1:]
    assert sizes.min() > 1
    with pytest.raises(InputError, match="filter_sigma"):
        reconstruct(image, (16, 16, 16), filter_sigma=-1)
    with pytest.raises(InputError, match="match"):
        reconstruct(image, (16, 16, 16), match="each")


def test_isotropic_s2_is_the_volume_correlation_held_to_the_radial_profile():
    from napari_dmcr.descriptors.two_point import s2_radial
    from napari_dmcr.reconstruction.isotropy import IsotropicS2

    volume = torch.rand((9, 10, 11), dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    image = torch.as_tensor(blobs((20, 20), 0.3, sigma=1.5), dtype=torch.float64)
    term = IsotropicS2([image], volume.shape, 3, weight=1.0)
    profile = s2_radial(image, 3, periodic=False).numpy()
    # Brute force over every vector of length <= 3: the volume's periodic S2 against the
    # profile interpolated at that length.
    difference, norm = 0.0, 0.0
    for a in range(-3, 4):
        for b in range(-3, 4):
            for c in range(-3, 4):
                length = math.sqrt(a * a + b * b + c * c)
                if length > 3:
                    continue
                value = float((volume * torch.roll(volume, (-a, -b, -c), (0, 1, 2))).mean())
                target = np.interp(length, np.arange(4), profile)
                difference += (value - target) ** 2
                norm += target**2
    assert float(term.errors([volume])[0]) == pytest.approx(difference / norm, rel=1e-10)


def test_isotropic_s2_tells_an_isotropic_volume_from_a_stack_of_one_slice():
    from scipy.ndimage import gaussian_filter

    from napari_dmcr.reconstruction.isotropy import IsotropicS2

    noise = gaussian_filter(np.random.default_rng(0).standard_normal((64, 64, 64)), 2.0, mode="wrap")
    volume = (noise > np.quantile(noise, 0.7)).astype(np.float32)
    term = IsotropicS2([torch.as_tensor(volume[32])], volume.shape, 16, weight=1.0)
    isotropic = float(term.errors([torch.as_tensor(volume)])[0])
    stacked = float(term.errors([torch.as_tensor(np.repeat(volume[32][None], 64, axis=0))])[0])
    assert stacked > 5 * isotropic


def test_default_recipe_keeps_a_percolating_phase_percolating():
    """A percolating pore network (a thresholded smooth random field, 30 % pore): the core made
    from one of its slices with the default settings percolates along every axis, like the truth."""
    from scipy.ndimage import gaussian_filter

    from napari_dmcr.evaluation import percolation

    noise = gaussian_filter(np.random.default_rng(4).standard_normal((24, 48, 48)), 2.0, mode="wrap")
    truth = (noise > np.quantile(noise, 0.7)).astype(np.uint8)
    assert percolation(truth[:, :24, :24], 1) == [True, True, True]
    result = run_reconstruction(truth[12], (24, 24, 24), descriptors="auto", device="cpu", seed=0)
    assert result.parameters["start"] == "auto" and result.parameters["match"] == "volume"
    assert percolation(result.labels, 1) == [True, True, True]
