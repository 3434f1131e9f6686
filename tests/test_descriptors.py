"""Descriptors against independent references: brute-force counts and closed forms."""

import numpy as np
import pytest
import torch

from napari_dmcr.descriptors import (
    DescriptorSpec,
    characterize,
    descriptor_targets,
    displacement_vectors,
    gram_matrices,
    indicator,
    load_descriptors,
    load_vgg19_weights,
    normalized_errors,
    s2_axis_profiles,
    s2_map,
    s2_radial,
    s3,
    save_descriptors,
    total_variation,
    volume_fraction,
    volume_slices,
)
from napari_dmcr.descriptors.gram import wrap_pad
from napari_dmcr.descriptors.multigrid import pooled
from napari_dmcr.errors import InputError
from napari_dmcr.samples import conglomerate_volume


def random_binary(shape, fraction=0.4, seed=0):
    return (np.random.default_rng(seed).random(shape) < fraction).astype(np.uint8)


def brute_s2(image, r0, r1, periodic):
    image = image.astype(int)
    h, w = image.shape
    total = count = 0
    for i in range(h):
        for j in range(w):
            a, b = i + r0, j + r1
            if periodic:
                a, b = a % h, b % w
            elif not (0 <= a < h and 0 <= b < w):
                continue
            total += image[i, j] * image[a, b]
            count += 1
    return total / count


def brute_s3(image, ra, rb, limit_to, periodic):
    image = image.astype(int)
    h, w = image.shape
    total = count = 0
    for i in range(h):
        for j in range(w):
            # without wrap-around: only positions whose whole window lies inside the image
            if not periodic and not (i + limit_to - 1 < h and j - limit_to + 1 >= 0 and j + limit_to - 1 < w):
                continue
            values = [image[(i + r[0]) % h, (j + r[1]) % w] for r in ((0, 0), ra, rb)]
            total += values[0] * values[1] * values[2]
            count += 1
    return total / count


@pytest.mark.parametrize("periodic", [True, False])
def test_s2_map_matches_brute_force_counts(periodic):
    image = random_binary((9, 11), seed=1)
    lag = 4 if periodic else 6
    result = s2_map(image, lag, periodic=periodic)
    assert result.shape == (2 * lag + 1, 2 * lag + 1)
    for r0 in range(-lag, lag + 1):
        for r1 in range(-lag, lag + 1):
            expected = brute_s2(image, r0, r1, periodic)
            assert result[lag + r0, lag + r1] == pytest.approx(expected, abs=1e-12)


def test_s2_conventions_and_axis_profiles():
    image = random_binary((32, 40), fraction=0.3, seed=2)
    phi = image.mean()
    result = s2_map(image, 8)
    assert result[8, 8] == pytest.approx(phi)  # S2(0) = phi
    profiles = s2_axis_profiles(image, 8)
    for r in range(9):
        assert profiles[0, r] == pytest.approx(brute_s2(image, r, 0, True))
        assert profiles[1, r] == pytest.approx(brute_s2(image, 0, r, True))
    # Uncorrelated pixels: far lags approach phi^2.
    noise = random_binary((256, 256), fraction=0.3, seed=3)
    assert s2_radial(noise, 20)[5:].mean() == pytest.approx(noise.mean() ** 2, rel=0.02)


@pytest.mark.parametrize("periodic", [True, False])
def test_s2_radial_matches_direct_implementation(periodic):
    image = random_binary((15, 17), seed=4)
    lag = 5
    result = s2_radial(image, lag, periodic=periodic)
    for k in range(lag + 1):
        values = [
            brute_s2(image, r0, r1, periodic)
            for r0 in range(-lag, lag + 1)
            for r1 in range(-lag, lag + 1)
            if round(np.hypot(r0, r1)) == k
        ]
        assert result[k] == pytest.approx(np.mean(values), abs=1e-12)


def test_s2_radial_over_long_lags_sums_bin_by_bin():
    """Past DENSE_RADIAL_LAG the bins are summed without the dense matrix: the same means of
    the S2 map's lags, and still differentiable."""
    from napari_dmcr.descriptors.two_point import DENSE_RADIAL_LAG

    lag = DENSE_RADIAL_LAG + 6
    image = random_binary((2 * lag + 9, 2 * lag + 3), seed=5)
    result = s2_radial(image, lag, periodic=False)
    lags = np.arange(-lag, lag + 1)
    bins = np.rint(np.hypot(lags[:, None], lags[None, :]))
    expected = [s2_map(image, lag, periodic=False)[bins == k].mean() for k in range(lag + 1)]
    np.testing.assert_allclose(result, expected, atol=1e-12)
    field = torch.tensor(image, dtype=torch.float64, requires_grad=True)
    s2_radial(field, lag, periodic=False)[-1].backward()
    assert field.grad.abs().sum() > 0


def test_displacement_vectors_are_a_half_window():
    vectors = displacement_vectors(3)
    assert vectors[0] == (0, 0)
    assert len(vectors) == 3**2 + 2**2
    assert len(set(vectors)) == len(vectors)
    # no vector is the negative of another one
    assert not {(-a, -b) for a, b in vectors if (a, b) != (0, 0)} & set(vectors)


@pytest.mark.parametrize("periodic", [True, False])
def test_s3_matches_brute_force_counts(periodic):
    limit_to = 3
    image = random_binary((8, 12) if not periodic else (7, 9), seed=5)
    result = s3(image, limit_to, periodic=periodic)
    vectors = displacement_vectors(limit_to)
    rng = np.random.default_rng(0)
    pairs = [(0, 0), (0, 5), (len(vectors) - 1, 3)] + [tuple(rng.integers(0, len(vectors), 2)) for _ in range(20)]
    for a, b in pairs:
        expected = brute_s3(image, vectors[a], vectors[b], limit_to, periodic)
        assert result[a, b] == pytest.approx(expected, abs=1e-12)
    np.testing.assert_allclose(result, result.T)


def test_s3_contains_s2_and_phi():
    image = random_binary((16, 16), seed=6)
    result = s3(image, 4)
    vectors = displacement_vectors(4)
    assert result[0, 0] == pytest.approx(image.mean())
    for index, (r0, r1) in enumerate(vectors):
        assert result[0, index] == pytest.approx(brute_s2(image, r0, r1, True))


def test_total_variation_closed_forms():
    width = 3
    stripes = ((np.arange(24) // width) % 2)[None, :].repeat(10, 0)  # columns alternate
    assert total_variation(stripes) == pytest.approx(1 / (2 * width))
    # Non-periodic: 7 interior stripe boundaries among 23 column pairs per row, none along rows.
    assert total_variation(stripes, periodic=False) == pytest.approx(0.5 * 7 / 23)
    checkerboard = np.indices((10, 12)).sum(0) % 2
    assert total_variation(checkerboard) == pytest.approx(1.0)
    assert total_variation(np.ones((5, 5))) == pytest.approx(0.0)


def test_relaxed_descriptors_equal_exact_ones_on_binary_input():
    image = random_binary((24, 24), seed=7)
    field32 = torch.as_tensor(image, dtype=torch.float32)
    np.testing.assert_allclose(s2_map(field32, 5).numpy(), s2_map(image, 5), atol=1e-6)
    np.testing.assert_allclose(s3(field32, 4).numpy(), s3(image, 4), atol=1e-6)
    assert float(total_variation(field32)) == pytest.approx(total_variation(image), abs=1e-6)
    assert float(volume_fraction(field32)) == pytest.approx(image.mean())
    # and the exact values are brute-force counts (checked above), not soft-thresholded ones
    assert s3(image, 4)[0, 0] == pytest.approx(image.mean())


def test_descriptors_on_grey_input_are_smooth_and_differentiable():
    rng = np.random.default_rng(8)
    x = torch.tensor(rng.random((2, 7, 9)), dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda f: s2_map(f, 3), (x,))
    assert torch.autograd.gradcheck(lambda f: s2_map(f, 3, periodic=False), (x,))
    assert torch.autograd.gradcheck(lambda f: s2_radial(f, 3), (x,))
    assert torch.autograd.gradcheck(lambda f: s3(f, 2), (x,))
    assert torch.autograd.gradcheck(lambda f: s3(f, 2, periodic=False), (x,))
    assert torch.autograd.gradcheck(lambda f: s3(f, 3), (x,))  # margins wider than one pixel
    assert torch.autograd.gradcheck(lambda f: s3(f, 3, periodic=False), (x,))
    assert torch.autograd.gradcheck(lambda f: total_variation(f), (x,))
    assert torch.autograd.gradcheck(lambda f: total_variation(f, periodic=False), (x,))


def test_gram_gradcheck(vgg19_weights):
    x = torch.rand(1, 16, 16, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda f: gram_matrices(f)[0], (x,), fast_mode=True)
    assert torch.autograd.gradcheck(lambda f: gram_matrices(f)[4], (x,), fast_mode=True)


def test_gram_gradcheck_where_a_block_is_padded_once(vgg19_weights):
    x = torch.rand(1, 32, 32, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda f: gram_matrices(f)[0], (x,), fast_mode=True)


def test_wrap_pad_matches_circular_padding_and_its_gradient():
    x = torch.rand(2, 3, 5, 7, dtype=torch.float64, requires_grad=True)
    for margin in (1, 3):
        reference = torch.nn.functional.pad(x, (margin,) * 4, mode="circular")
        weights = torch.rand(reference.shape, dtype=torch.float64)
        (expected,) = torch.autograd.grad((reference * weights).sum(), x)
        padded = wrap_pad(x, margin)
        (gradient,) = torch.autograd.grad((padded * weights).sum(), x)
        assert torch.equal(padded, reference)
        torch.testing.assert_close(gradient, expected)


def test_gram_matrices_are_invariant_to_periodic_shifts(vgg19_weights):
    image = random_binary((48, 48), seed=9)
    grams = gram_matrices(image, padding="circular")
    assert [g.shape for g in grams] == [(64, 64), (128, 128), (256, 256), (512, 512), (512, 512)]
    # Shifts by multiples of 16 commute with the four 2x2 poolings: every layer is invariant.
    shifted = gram_matrices(np.roll(image, (16, -32), axis=(0, 1)), padding="circular")
    for g, h in zip(grams, shifted):
        np.testing.assert_allclose(h, g, rtol=1e-9, atol=1e-9 * np.abs(g).max())
    # Any shift: the layer before the first pooling is invariant.
    odd = gram_matrices(np.roll(image, (5, -11), axis=(0, 1)), padding="circular")
    np.testing.assert_allclose(odd[0], grams[0], rtol=1e-9, atol=1e-9 * np.abs(grams[0]).max())


def test_gram_shift_invariance_needs_periodic_padding(vgg19_weights):
    image = random_binary((32, 32), seed=9)
    grams = gram_matrices(image, padding="zeros")
    shifted = gram_matrices(np.roll(image, (5, -11), axis=(0, 1)), padding="zeros")
    assert not np.allclose(grams[0], shifted[0], rtol=1e-6)


def test_wrapped_gram_of_a_crop_estimates_the_material_better_than_zero_padding(vgg19_weights):
    volume = conglomerate_volume((16, 128, 128), seed=3) == 1

    def mean_gram(slices, padding):
        return np.concatenate([g.mean(0).ravel() for g in gram_matrices(slices.astype(np.float32), padding)])

    material = mean_gram(volume[::8], "circular")
    crops = volume[::4, 32:96, 40:104]
    wrapped = np.linalg.norm(mean_gram(crops, "circular") - material)
    zero_padded = np.linalg.norm(mean_gram(crops, "zeros") - material)
    assert wrapped < 0.5 * zero_padded


def test_gram_error_takes_the_layers_together_and_other_parts_one_by_one(vgg19_weights):
    target = torch.as_tensor(random_binary((32, 32), seed=1)[None], dtype=torch.float64)
    field = torch.rand((2, 32, 32), dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    specs = [DescriptorSpec("gram", levels=2), DescriptorSpec("s3", limit_to=3, levels=2)]
    errors = normalized_errors(specs, field, descriptor_targets(specs, target))

    def flat(values):
        return torch.cat([v.reshape(len(v), -1) for v in values], dim=1)

    gram_expected = []
    for image, reference in ((field, target), (pooled(field, 1), pooled(target, 1))):
        current, wanted = flat(gram_matrices(image)), flat(gram_matrices(reference))
        gram_expected.append(((current - wanted) ** 2).sum(1) / (wanted**2).sum())
    torch.testing.assert_close(errors["gram"], torch.stack(gram_expected).mean(0), rtol=1e-4, atol=0)
    s3_expected = []
    for image, reference in ((field, target), (pooled(field, 1), pooled(target, 1))):
        current, wanted = s3(image, 3).flatten(1), s3(reference, 3).flatten(1)
        s3_expected.append(((current - wanted) ** 2).sum(1) / (wanted**2).sum())
    torch.testing.assert_close(errors["s3"], torch.stack(s3_expected).mean(0))


def test_gram_descriptor_of_a_non_periodic_target_wraps(vgg19_weights):
    image = random_binary((32, 32), seed=4)
    fields = torch.as_tensor(image[None], dtype=torch.float32)
    parts = descriptor_targets([DescriptorSpec("gram", periodic=False)], fields)["gram"]
    np.testing.assert_allclose(parts[0].numpy(), gram_matrices(image)[0].ravel(), rtol=1e-5)


def test_descriptor_files_with_zero_padded_gram_matrices_are_refused(tmp_path, vgg19_weights):
    result = characterize(random_binary((32, 32), seed=5), s2_max_lag=8, gram=True)
    save_descriptors(tmp_path / "current.npz", result)
    assert "gram" in load_descriptors(tmp_path / "current.npz")["phases"][1]
    result["settings"]["format_version"] = 1
    save_descriptors(tmp_path / "old.npz", result)
    with pytest.raises(InputError, match="characterize the image again"):
        load_descriptors(tmp_path / "old.npz")


def test_gram_matches_a_direct_convolution_network(vgg19_weights):
    """Layer relu1_2 recomputed with explicit 3-channel convolutions of the encoded image."""
    weights = load_vgg19_weights(vgg19_weights)
    image = random_binary((20, 20), seed=10).astype(np.float64)
    encoded = np.stack([255 * image - m for m in weights["mean_bgr"]])[None]
    x = torch.as_tensor(encoded)
    for name in ("conv1_1", "conv1_2"):
        x = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="circular")
        x = torch.relu(
            torch.nn.functional.conv2d(
                x,
                torch.as_tensor(weights[f"{name}.weight"], dtype=torch.float64),
                torch.as_tensor(weights[f"{name}.bias"], dtype=torch.float64),
            )
        )
    flat = x[0].reshape(64, -1).numpy()
    expected = flat @ flat.T / flat.shape[1]
    np.testing.assert_allclose(gram_matrices(image)[0], expected, rtol=1e-10)


def test_missing_vgg_weights_give_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("NAPARI_DMCR_VGG19_WEIGHTS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(InputError, match="NAPARI_DMCR_VGG19_WEIGHTS"):
        load_vgg19_weights(download=False)
    with pytest.raises(InputError, match="does not exist"):
        load_vgg19_weights(tmp_path / "nope.npz")
    bad = tmp_path / "bad.npz"
    np.savez(bad, something=np.zeros(3))
    with pytest.raises(InputError, match=r"missing conv1_1\.weight"):
        load_vgg19_weights(bad)


def test_weights_are_found_through_the_environment_and_the_cache(tmp_path, monkeypatch, vgg19_weights):
    monkeypatch.setenv("NAPARI_DMCR_VGG19_WEIGHTS", str(vgg19_weights))
    assert load_vgg19_weights()["conv5_4.weight"].shape == (512, 512, 3, 3)
    monkeypatch.delenv("NAPARI_DMCR_VGG19_WEIGHTS")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cached = tmp_path / "napari-dmcr" / "vgg19_normalized.npz"
    cached.parent.mkdir()
    cached.write_bytes(vgg19_weights.read_bytes())
    assert load_vgg19_weights(download=False)["conv1_1.bias"].shape == (64,)


def test_volume_slices_follow_the_documented_axes():
    volume = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    assert volume_slices(volume, 0).shape == (2, 3, 4)
    assert volume_slices(volume, 1).shape == (3, 2, 4)
    assert volume_slices(volume, 2).shape == (4, 2, 3)
    np.testing.assert_array_equal(volume_slices(volume, 2)[1], volume[:, :, 1])
    np.testing.assert_array_equal(volume_slices(torch.as_tensor(volume), 1)[2].numpy(), volume[:, 2])


def test_normalized_errors_are_relative_squared_errors():
    image = random_binary((32, 32), seed=11)
    target_fields = torch.as_tensor(image, dtype=torch.float64)[None]
    specs = (DescriptorSpec("s3", limit_to=3), DescriptorSpec("tv"), DescriptorSpec("vf"))
    targets = descriptor_targets(specs, target_fields)
    errors = normalized_errors(specs, target_fields, targets)
    assert all(float(e) == pytest.approx(0.0, abs=1e-20) for e in errors.values())
    scaled = normalized_errors(specs, target_fields * 1.1, targets)
    # vf scales by 1.1 and S3 by 1.1^3: relative squared errors 0.01 and 0.331^2
    assert float(scaled["vf"]) == pytest.approx(0.01)
    tv, tv_scaled = total_variation(image), total_variation(image * 1.1)
    assert float(scaled["tv"]) == pytest.approx(((tv_scaled - tv) / tv) ** 2)
    assert float(scaled["s3"]) == pytest.approx((1.1**3 - 1) ** 2)


def test_bad_inputs_give_clear_errors():
    with pytest.raises(InputError, match="max_lag"):
        s2_map(np.zeros((8, 8)), 5)
    with pytest.raises(InputError, match="2D image"):
        s2_map(np.zeros((2, 3, 4, 5)), 1)
    with pytest.raises(InputError, match="too large"):
        s3(np.zeros((8, 8)), 6)
    with pytest.raises(InputError, match="at least 16x16"):
        gram_matrices(np.zeros((8, 8)))
    with pytest.raises(InputError, match="single label"):
        characterize(np.ones((16, 16), dtype=np.uint8))
    with pytest.raises(InputError, match="does not occur"):
        indicator(np.zeros((4, 4)), 3)
    with pytest.raises(InputError, match="unknown descriptor"):
        DescriptorSpec("s4")


def test_real_images_characterize_per_phase(shared_data, tmp_path, vgg19_weights):
    for name in ("li2018_sandstone_256", "li2018_alloy_256", "li2018_composite_256"):
        image = np.load(shared_data / f"{name}.npy")[:128, :128]
        result = characterize(image, s2_max_lag=20)
        assert sorted(result["phases"]) == sorted(np.unique(image).tolist())
        fractions = [entry["volume_fraction"] for entry in result["phases"].values()]
        assert sum(fractions) == pytest.approx(1.0)
        for entry in result["phases"].values():
            assert np.isfinite(entry["s3"][1]).all() and entry["tv"] > 0
            assert entry["s2_radial"][0] == pytest.approx(entry["volume_fraction"])
    berea = np.load(shared_data / "berea_dpm_pore_110.npy")
    result = characterize(berea[55], gram=False)
    assert result["phases"][1]["volume_fraction"] == pytest.approx((berea[55] == 1).mean())
    path = tmp_path / "berea.npz"
    save_descriptors(path, result)
    loaded = load_descriptors(path)
    assert loaded["settings"] == result["settings"]
    np.testing.assert_array_equal(loaded["phases"][1]["s3"][1], result["phases"][1]["s3"][1])
    assert loaded["phases"][0]["tv"] == result["phases"][0]["tv"]


@pytest.mark.parametrize("periodic", [False, True])
def test_large_targets_are_characterized_in_strips_with_the_same_values(monkeypatch, periodic):
    """S3 of an image beyond STRIP_PIXELS from strips of rows: the same mean over the same
    window origins as in one piece (both levels, periodic or not)."""
    import napari_dmcr.descriptors.descriptor_set as descriptor_set

    image = torch.as_tensor(random_binary((90, 77), seed=6), dtype=torch.float64)[None]
    specs = [DescriptorSpec("s3", limit_to=5, levels=2, periodic=periodic), DescriptorSpec("tv", periodic=periodic)]
    whole = descriptor_targets(specs, image)
    monkeypatch.setattr(descriptor_set, "STRIP_PIXELS", 700)  # strips of 9 rows
    strips = descriptor_targets(specs, image)
    for name in whole:
        for expected, value in zip(whole[name], strips[name], strict=True):
            np.testing.assert_allclose(value, expected, atol=1e-13)


def test_large_targets_take_the_mean_gram_matrices_of_their_tiles(monkeypatch, vgg19_weights):
    import napari_dmcr.descriptors.descriptor_set as descriptor_set

    monkeypatch.setattr(descriptor_set, "STRIP_PIXELS", 32 * 32)
    monkeypatch.setattr(descriptor_set, "GRAM_TILE", 32)
    image = torch.as_tensor(random_binary((64, 80), seed=7), dtype=torch.float32)[None]
    tiles = [image[:, r : r + 32, c : c + 32] for r in (0, 32) for c in (0, 32, 48)]  # the last flush
    per_tile = [[layer[0] for layer in gram_matrices(tile)] for tile in tiles]
    expected = [torch.stack(layer).mean(0).flatten() for layer in zip(*per_tile)]
    (value,) = descriptor_targets([DescriptorSpec("gram")], image).values()
    for got, want in zip(value, expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5)
