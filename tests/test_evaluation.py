import itertools
import json
import math

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage import measure

from napari_dmcr.cli import main
from napari_dmcr.descriptors import s2_radial
from napari_dmcr.errors import InputError
from napari_dmcr.evaluation import (
    chord_length_distribution,
    connectivity,
    descriptor_gaps,
    euler_characteristic_density,
    evaluate,
    fraction_errors,
    lineal_path,
    local_thickness,
    s2_comparison,
    size_distribution,
    slice_statistics,
    specific_surface_area,
    two_point_cluster_function,
)
from napari_dmcr.plotting.evaluation import draw_report
from napari_dmcr.postprocessing import gaussian_smooth


def stripes(shape=(20, 40), period=8, width=3):
    """Phase 1 in columns x with x mod period < width."""
    labels = np.zeros(shape, dtype=np.uint8)
    labels[:, np.arange(shape[1]) % period < width] = 1
    return labels


def ball(shape, centre, radius):
    grid = np.indices(shape)
    return sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True)) <= radius**2


def random_phases(shape, n_phases, seed, sigma=2.0):
    rng = np.random.default_rng(seed)
    field = ndi.gaussian_filter(rng.random(shape), sigma, mode="wrap")
    edges = np.quantile(field, np.linspace(0, 1, n_phases + 1)[1:-1])
    return np.digitize(field, edges).astype(np.uint8)


def runs(line):
    """(length, touches_border) of every run of True in a 1D boolean sequence."""
    result, start = [], 0
    for value, group in itertools.groupby(line):
        length = len(list(group))
        if value:
            result.append((length, start == 0 or start + length == len(line)))
        start += length
    return result


# lineal path and chords


def test_lineal_path_of_stripes():
    labels = stripes()
    n, m, width = 40, 5, 3
    across = lineal_path(labels, 1, max_length=10, axis=1)
    r = np.arange(11)
    np.testing.assert_allclose(across, m * np.maximum(width - r, 0) / (n - r))
    np.testing.assert_allclose(lineal_path(labels, 1, max_length=10, axis=0), 3 / 8)


def test_lineal_path_against_brute_force():
    labels = random_phases((12, 9, 10), 2, seed=0, sigma=1.0)
    for axis in range(3):
        lines = np.moveaxis(labels == 1, axis, -1).reshape(-1, labels.shape[axis])
        n = lines.shape[1]
        expected = [np.mean([line[s : s + r + 1].all() for line in lines for s in range(n - r)]) for r in range(n)]
        np.testing.assert_allclose(lineal_path(labels, 1, n - 1, axis), expected)


def test_chord_lengths_of_stripes():
    labels = stripes()
    across = chord_length_distribution(labels, 1, axis=1)
    # The first stripe starts at the border and is left out: 4 stripes x 20 rows of width 3.
    assert across["n_chords"] == 80
    assert across["mean_length"] == 3
    assert across["probability"][2] == 1
    along = chord_length_distribution(labels, 1, axis=0)
    assert along["n_chords"] == 0 and math.isnan(along["mean_length"])
    along = chord_length_distribution(labels, 1, axis=0, include_border=True)
    assert along["n_chords"] == 15 and along["mean_length"] == 20


def test_chord_lengths_against_brute_force():
    labels = random_phases((15, 17), 3, seed=1, sigma=1.0)
    for axis, include in itertools.product((0, 1), (False, True)):
        lines = np.moveaxis(labels == 2, axis, -1).reshape(-1, labels.shape[axis])
        lengths = [length for line in lines for length, border in runs(line) if include or not border]
        result = chord_length_distribution(labels, 2, axis, include_border=include)
        counts = np.bincount(lengths, minlength=labels.shape[axis] + 1)[1:]
        assert result["n_chords"] == len(lengths)
        np.testing.assert_allclose(result["probability"], counts / len(lengths))
        assert result["mean_length"] == pytest.approx(np.mean(lengths))


# clusters


def test_two_point_cluster_function_separates_the_clusters_of_stripes():
    labels = stripes()
    cluster = two_point_cluster_function(labels, 1, max_lag=10, axis=1)
    r = np.arange(11)
    # Within one stripe only: the same as the lineal path's pairs, and 0 beyond the width.
    np.testing.assert_allclose(cluster, 5 * np.maximum(3 - r, 0) / (40 - r))
    # S2 does see the next stripe, 8 pixels away.
    assert s2_radial(labels.astype(float), 10, periodic=False)[8] > 0


def test_two_point_cluster_function_against_scikit_image_labels():
    labels = random_phases((20, 22), 2, seed=2, sigma=1.5)
    clusters = measure.label(labels == 1, connectivity=2)
    for axis in (0, 1):
        moved = np.moveaxis(clusters, axis, -1)
        n = moved.shape[-1]
        expected = [np.mean((moved[..., : n - r] == moved[..., r:]) & (moved[..., r:] > 0)) for r in range(8)]
        result = two_point_cluster_function(labels, 1, 7, axis, connectivity=2)
        np.testing.assert_allclose(result, expected)


def test_percolation_of_a_slab_and_of_a_column():
    labels = np.zeros((20, 16, 12), dtype=np.uint8)
    labels[5:9] = 1  # slab normal to z: spans y and x
    labels[12:, 3:5, 3:5] = 1  # a column along z from z=12 to the bottom face: spans nothing
    result = connectivity(labels, 1)
    assert result["n_clusters"] == 2
    assert result["percolates"] == [False, True, True]
    slab = 4 * 16 * 12
    assert result["largest_cluster_fraction"] == pytest.approx(slab / (slab + 32))
    assert result["percolating_fraction"][1] == pytest.approx(slab / (slab + 32))
    labels[:5, 3:5, 3:5] = 1  # the column now reaches the top face through the slab
    labels[9:12, 3:5, 3:5] = 1
    assert connectivity(labels, 1)["percolates"] == [True, True, True]


# Euler characteristic


def test_euler_characteristic_of_ball_torus_spheres_and_shell():
    shape = (40, 40, 40)
    z, y, x = np.indices(shape) - 20
    torus = (np.hypot(y, x) - 11) ** 2 + z**2 <= 4**2
    spheres = ball(shape, (8, 8, 8), 5) | ball(shape, (28, 28, 28), 6) | ball(shape, (8, 30, 10), 4)
    shell = ball(shape, (20, 20, 20), 12) & ~ball(shape, (20, 20, 20), 6)
    size = np.prod(shape)
    for volume, chi in ((ball(shape, (20, 20, 20), 10), 1), (torus, 0), (spheres, 3), (shell, 2)):
        for neighbourhood in (1, 3):
            labels = volume.astype(np.uint8)
            density = euler_characteristic_density(labels, 1, connectivity=neighbourhood)
            assert density * size == pytest.approx(chi)


def test_euler_characteristic_in_2d_counts_holes():
    disk = ball((40, 40), (20, 20), 15)
    disk &= ~ball((40, 40), (14, 20), 3)
    disk &= ~ball((40, 40), (26, 20), 3)
    assert euler_characteristic_density(disk.astype(np.uint8), 1) * 1600 == pytest.approx(-1)


def test_euler_characteristic_rejects_18_connectivity():
    with pytest.raises(InputError, match="1 or 3"):
        euler_characteristic_density(np.ones((4, 4, 4), dtype=np.uint8), 1, connectivity=2)


# surface area and thickness


def test_specific_surface_area_of_a_ball_and_a_disk():
    z, y, x = np.indices((40, 40, 40)) - 19.5
    round_ball = (np.sqrt(z**2 + y**2 + x**2) <= 10).astype(np.uint8)
    assert specific_surface_area(round_ball, 1) == pytest.approx(3 / 10, rel=0.03)
    assert specific_surface_area(round_ball, 1, voxel_size=2.0) == pytest.approx(3 / 20, rel=0.03)
    disk = ball((50, 50), (25, 25), 12).astype(np.uint8)
    assert specific_surface_area(disk, 1) == pytest.approx(2 / 12, rel=0.03)


@pytest.mark.parametrize("thickness", [1, 2, 3, 5, 6, 9])
def test_local_thickness_of_plates(thickness):
    labels = np.zeros((24, 20, 20), dtype=np.uint8)
    labels[4 : 4 + thickness] = 1
    expected = thickness if thickness % 2 else thickness - 1
    result = local_thickness(labels, 1)
    np.testing.assert_array_equal(result[labels == 1], expected)
    assert not result[labels == 0].any()
    sizes = size_distribution(labels, 1)
    assert sizes["mean_thickness"] == expected
    assert sizes["fraction"][expected - 1] == 1


def test_local_thickness_of_a_cylinder_is_its_diameter_everywhere():
    disk = ball((41, 41), (20, 20), 8)
    labels = np.zeros((10, 41, 41), dtype=np.uint8)
    labels[:, disk] = 1
    thickness = local_thickness(labels, 1)[labels == 1]
    # One inscribed ball covers the whole cross-section; its diameter is that of the continuous
    # disk of the same area, to the one voxel that the half-voxel rounding allows.
    assert np.unique(thickness).size == 1
    assert abs(thickness[0] - 2 * np.sqrt(disk.sum() / np.pi)) <= 1


# comparison functions


def test_fraction_errors():
    reference = np.array([[0, 0, 1, 2]])
    candidate = np.array([[0, 1, 1, 1]])
    errors = fraction_errors(reference, candidate)
    assert errors["absolute_error"] == {0: 0.25, 1: 0.5, 2: 0.25}
    assert errors["relative_error"] == {0: 0.5, 1: 2.0, 2: 1.0}


def test_a_stack_of_the_original_matches_it_in_the_slices_that_contain_it():
    original = random_phases((32, 32), 2, seed=3)
    volume = np.repeat(original[None], 20, axis=0)  # every z slice is the original
    phi = np.mean(original == 1)
    s2 = s2_comparison(original, volume, 1, max_lag=8)
    assert s2["rms_error"]["radial"]["z"] == pytest.approx(0, abs=1e-12)
    # Along z nothing changes: S2(r) = phi at every lag.
    np.testing.assert_allclose(s2["reconstruction"]["axes"]["z"], phi)
    gaps = descriptor_gaps(original, volume, 1, s3_limit_to=4)
    assert gaps["z"] == pytest.approx(dict.fromkeys(gaps["z"], 0.0), abs=1e-12)
    assert set(gaps["z"]) == {"s3", "volume_fraction", "total_variation"}
    assert gaps["y"]["volume_fraction"] == pytest.approx(0, abs=1e-12)
    assert gaps["y"]["total_variation"] > 0.2  # no variation along z


def test_gram_gap_vanishes_for_the_same_slices(vgg19_weights):
    original = random_phases((24, 24), 2, seed=4)
    volume = np.repeat(original[None], 16, axis=0)
    gaps = descriptor_gaps(original, volume, 1, s3_limit_to=3, gram=True)
    assert gaps["z"]["gram"] == pytest.approx(0, abs=1e-6)
    assert gaps["y"]["gram"] > 0.01


def test_slice_statistics_of_one_image_are_its_2d_measures():
    image = random_phases((40, 36), 3, seed=5)
    stats = slice_statistics(image, 2, max_length=10)
    np.testing.assert_allclose(stats["lineal_path"], (lineal_path(image, 2, 10, 0) + lineal_path(image, 2, 10, 1)) / 2)
    euler = euler_characteristic_density(image, 2)
    assert stats["euler_characteristic_density"] == pytest.approx(euler)
    assert stats["specific_perimeter"] == pytest.approx(specific_surface_area(image, 2))
    assert stats["largest_cluster_fraction"] == connectivity(image, 2)["largest_cluster_fraction"]
    thickness = local_thickness(image, 2)[image == 2]
    assert stats["thickness"]["mean"] == pytest.approx(thickness.mean())


def test_evaluate_against_the_truth_itself_has_no_3d_error():
    truth = random_phases((24, 24, 24), 2, seed=6)
    result = evaluate(truth[12], truth, truth)
    for key, values in result["errors"][1].items():
        if key.startswith("truth/"):
            assert all(v == pytest.approx(0, abs=1e-12) for v in values.values()), key


def test_smoothed_berea_keeps_its_porosity_and_loses_surface(shared_data):
    berea = np.load(shared_data / "berea_dpm_pore_110.npy")[:40, 35:75, 35:75]
    smoothed = gaussian_smooth(berea, 1.0)
    result = evaluate(berea[20], smoothed, berea, phases=[1], max_lag=8)
    errors = result["errors"][1]
    assert errors["truth/volume_fraction_abs"]["all"] == 0
    truth_morphology = result["phases"][1]["truth"]["morphology"]
    assert (
        truth_morphology["candidate"]["specific_surface_area"] < truth_morphology["reference"]["specific_surface_area"]
    )
    assert max(errors["truth/s2_rms_axis"].values()) < 0.01


def test_report_of_a_three_phase_volume(tmp_path):
    truth = random_phases((24, 24, 24), 3, seed=7)
    reconstruction = random_phases((24, 24, 24), 3, seed=8)
    np.save(tmp_path / "slice.npy", truth[12])
    np.save(tmp_path / "recon.npy", reconstruction)
    np.save(tmp_path / "truth.npy", truth)
    out = tmp_path / "report" / "evaluation.json"
    code = main(
        [
            "evaluate",
            "--original", str(tmp_path / "slice.npy"),
            "--recon", str(tmp_path / "recon.npy"),
            "--truth", str(tmp_path / "truth.npy"),
            "--out", str(out),
            "--s3-limit-to", "4",
        ]
    )  # fmt: skip
    assert code == 0
    written = json.loads(out.read_text())
    assert sorted(written["phases"]) == ["0", "1", "2"]
    for phase in range(3):
        expected = abs(np.mean(reconstruction == phase) - np.mean(truth[12] == phase))
        assert written["fractions"]["absolute_error"][str(phase)] == pytest.approx(expected)
        png = out.with_name(f"evaluation_phase{phase}.png")
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The same numbers drive the napari widget's figure.
    from matplotlib.figure import Figure

    figure = Figure()
    assert draw_report(evaluate(truth[12], reconstruction, phases=[2]), figure, phase=2) is figure
    assert len(figure.axes) == 7  # six plots and the error table


def test_the_report_shows_the_mid_slices_beside_the_truth_or_the_original():
    truth = random_phases((24, 24, 24), 3, seed=7)
    reconstruction = random_phases((16, 20, 24), 3, seed=8) * 2  # labels 0, 2, 4
    results = evaluate(truth[12], reconstruction, truth, phases=[2])
    figure = draw_report(results, phase=2, original=truth[12], reconstruction=reconstruction, truth=truth)
    images = [ax for ax in figure.axes if ax.images]
    assert len(figure.axes) == 7 + 6 and len(images) == 6
    expected = [
        truth[12],
        reconstruction[8],
        truth[:, 12],
        reconstruction[:, 10],
        truth[:, :, 12],
        reconstruction[:, :, 12],
    ]
    labels = [0, 1, 2, 4]  # every label of every image, one colour each
    colours = {}
    for ax, image in zip(images, expected, strict=True):
        shown = ax.images[0]
        assert np.array_equal(np.take(labels, shown.get_array()), image)
        for index, label in enumerate(labels):
            colours.setdefault(label, []).append(shown.cmap(shown.norm(index)))
        assert ax.get_xlim() == (-0.5, 23.5) and ax.get_ylim() == (23.5, -0.5)  # one voxel scale
    assert all(len(set(found)) == 1 for found in colours.values())
    assert len({found[0] for found in colours.values()}) == len(labels)
    assert [ax.get_title().split(",")[0] for ax in images] == ["truth", "reconstruction"] * 3
    assert "(this phase)" in images[-1].get_legend().get_texts()[2].get_text()

    alone = draw_report(results, phase=2, original=truth[12], reconstruction=reconstruction)
    titles = [ax.get_title().split("\n")[0] for ax in alone.axes if ax.images]
    assert titles == ["original slice", "reconstruction, z = 8", "reconstruction, y = 10", "reconstruction, x = 12"]


def test_evaluate_rejects_mismatched_inputs():
    with pytest.raises(InputError, match="original slice: expected a non-empty 2D"):
        evaluate(np.zeros((4, 4, 4), dtype=np.uint8), np.zeros((4, 4, 4), dtype=np.uint8))
    with pytest.raises(InputError, match="3D reconstruction"):
        evaluate(stripes(), stripes(), np.zeros((8, 8, 8), dtype=np.uint8))


def test_full_connectivity_in_3d_is_full_connectivity_in_the_slices():
    truth = random_phases((20, 20, 20), 2, seed=9)
    result = evaluate(truth[10], truth, truth, phases=[1], max_lag=4, connectivity=3)
    diagonal = slice_statistics(truth[10], 1, max_length=4, connectivity=2)
    reference = result["phases"][1]["morphology"]["reference"]
    assert reference["largest_cluster_fraction"] == diagonal["largest_cluster_fraction"]
    assert reference["euler_characteristic_density"] == diagonal["euler_characteristic_density"]


def test_orthogonal_mid_slices_are_the_volume_s_middle_planes():
    from napari_dmcr.evaluation.views import orthogonal_mid_slices

    volume = np.random.default_rng(0).integers(1, 4, (6, 8, 10))
    montage = orthogonal_mid_slices(volume, gap=2)
    assert montage.shape == (8, 10 + 10 + 8 + 4)
    assert np.array_equal(montage[:8, :10], volume[3])
    assert np.array_equal(montage[:6, 12:22], volume[:, 4])
    assert np.array_equal(montage[:6, 24:32], volume[:, :, 5])
    assert not montage[:, 10:12].any() and not montage[6:, 12:].any()  # gaps and padding are label 0
