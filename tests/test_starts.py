"""Overlapping spheres against closed forms, and the choice between the fitted start models."""

import numpy as np
import pytest
from scipy.ndimage import distance_transform_edt, gaussian_filter

from napari_dmcr.descriptors import s2_radial
from napari_dmcr.reconstruction import run_reconstruction
from napari_dmcr.reconstruction.boolean_spheres import boolean_spheres, fit_sphere_radii, union_volume
from napari_dmcr.reconstruction.starts import CHORD_QUANTILES, MIN_PACKED, fitted_start, slice_shapes
from napari_dmcr.samples import conglomerate_slice


def poisson_spheres(side, radius, grain_fraction, seed):
    """Brute force: a periodic Boolean model of spheres of one radius (True = in a sphere), by
    the exact distance transform to the centres and their periodic copies near the box."""
    rng = np.random.default_rng(seed)
    volume = 4 / 3 * np.pi * radius**3
    count = rng.poisson(-np.log(1 - grain_fraction) / volume * side**3)
    margin = int(np.ceil(radius)) + 1
    padded = np.ones((side + 2 * margin,) * 3, bool)
    for centre in rng.integers(0, side, (count, 3)):
        for shift in np.ndindex(3, 3, 3):
            where = centre + (np.array(shift) - 1) * side + margin
            if np.all((where >= 0) & (where < side + 2 * margin)):
                padded[tuple(where)] = False
    inner = (slice(margin, margin + side),) * 3
    return distance_transform_edt(padded)[inner] <= radius


def test_union_volume_is_that_of_two_digitized_spheres():
    radius = 15.0
    grid = np.mgrid[-20:56, -20:21, -20:21].astype(float)  # both spheres inside
    for distance in (0.0, 10.0, 22.0, 35.0):
        first = ((grid[0]) ** 2 + grid[1] ** 2 + grid[2] ** 2) <= radius**2
        second = ((grid[0] - distance) ** 2 + grid[1] ** 2 + grid[2] ** 2) <= radius**2
        assert (first | second).sum() == pytest.approx(union_volume(distance, radius), rel=0.01)


def test_fit_recovers_the_radius_and_the_generated_spheres_have_its_s2():
    truth = poisson_spheres(96, 6.0, 0.4, seed=0)
    images = [truth[k].astype(np.uint8) for k in (10, 40, 70)]  # grains are label 1
    radii, intensities, rms = fit_sphere_radii(images, 1, periodic=True)
    volumes = 4 / 3 * np.pi * radii**3
    mean_radius = np.sum(intensities * volumes * radii) / np.sum(intensities * volumes)
    assert mean_radius == pytest.approx(6.0, rel=0.15) and rms < 0.01
    grains = boolean_spheres(images, 1, (48, 48, 48), seed=2, periodic=True)
    assert grains.sum() == round(np.mean([image.mean() for image in images]) * grains.size)
    target = np.mean([s2_radial(np.asarray(image == 0, float), 12, periodic=True) for image in images], axis=0)
    made = np.mean([s2_radial(np.asarray(~grains[k], float), 12, periodic=True) for k in range(0, 48, 6)], axis=0)
    np.testing.assert_allclose(made, target, atol=0.03)


def test_the_start_is_spheres_for_grains_and_a_level_cut_for_blobs():
    grains = poisson_spheres(96, 5.0, 0.35, seed=1)[48].astype(np.uint8)  # label 1 = grains
    cut, choice = fitted_start([grains], 1, (24, 24, 24), seed=0)
    # Deposited grains are a candidate for a label that fills MIN_PACKED of the slice (the rest here).
    deposited = {"deposited of 0"} if np.mean(grains == 0) >= MIN_PACKED else set()
    assert np.mean(grains == 1) < MIN_PACKED
    assert (choice["model"], choice["grains"]) == ("spheres", 1)
    assert set(choice["distances"]) == {"gaussian", "spheres of 0", "spheres of 1"} | deposited
    # Asked for by name, deposited grains are built whatever the grains' fraction.
    cut, choice = fitted_start([grains], 1, (24, 24, 24), seed=0, models=("deposited",))
    assert choice["model"] == "deposited" and cut.sum() == round(grains.mean() * cut.size)
    noise = gaussian_filter(np.random.default_rng(2).standard_normal((96, 96)), 3.0, mode="wrap")
    blobs = (noise > np.quantile(noise, 0.7)).astype(np.uint8)
    cut, choice = fitted_start([blobs], 1, (32, 32, 32), seed=0)
    assert choice["model"] == "gaussian" and cut.sum() == round(blobs.mean() * cut.size)
    flat, choice = fitted_start([blobs], 1, (40, 40), seed=0)  # 2D: the level cut only
    assert flat.shape == (40, 40) and choice == {
        "model": "gaussian",
        "grains": None,
        "distances": {},
        "candidate": "gaussian",
    }


def test_slice_shapes_count_clusters_solidity_and_connectedness_by_hand():
    image = np.zeros((20, 20), np.uint8)
    image[2:6, 2:6] = 1  # a 4x4 square: solidity 1
    image[10:18, 10:13] = 1  # 8x3
    image[10:12, 13:15] = 1  # an L with it: 28 pixels, hull 8x5 less the missing corner triangle
    image[0, 19] = 1  # a speck, below MIN_AREA: counted in connectedness only
    rates, solidities, connectedness, counts = slice_shapes([image], 1)[:4]
    assert counts[0] == 2 and rates[0] == pytest.approx(2 / 400)
    hull = measure_hull_area(image[10:18, 10:15])
    assert solidities[0] == pytest.approx((1.0 + 28 / hull) / 2)
    assert connectedness[0] == pytest.approx((16**2 + 28**2 + 1) / 45**2)
    assert counts[1] == 1 and connectedness[1] == 1.0  # the rest is one cluster
    # Windows of 10 tile the image into four, each with one cluster of the phase or none (a window
    # without the phase has no connectedness).
    windowed = slice_shapes([image], 1, window=10)
    assert windowed[3][0] == pytest.approx(2 / 4) and windowed[2][0] == 1.0


def test_slice_shapes_chord_quantiles_by_hand():
    image = np.zeros((12, 12), np.uint8)
    image[:, 2:5] = 1  # along rows: chords of 3 and 4; along columns every chord meets the border
    image[:, 7:11] = 1
    quantiles = slice_shapes([image], 1)[4:]
    np.testing.assert_allclose(quantiles[:, 0], np.percentile([3] * 12 + [4] * 12, CHORD_QUANTILES))
    np.testing.assert_allclose(quantiles[:, 1], 2.0)  # the rest's only inner chords: columns 5-6


def measure_hull_area(mask):
    from skimage.morphology import convex_hull_image

    return convex_hull_image(mask).sum()


def test_the_engine_records_the_start_it_chose():
    grains = poisson_spheres(64, 4.0, 0.35, seed=3)[32].astype(np.uint8)
    result = run_reconstruction(grains, (16, 16, 16), device="cpu", descriptors="cpu", target_residual=10.0)
    assert result.parameters["start"] == "auto"
    assert result.parameters["start_model"]["model"] in ("gaussian", "spheres")
    result = run_reconstruction(
        grains, (16, 16, 16), device="cpu", descriptors="cpu", target_residual=10.0, start="spheres"
    )
    assert result.parameters["start_model"]["model"] == "spheres"


def test_a_polish_that_breaks_the_start_s_network_gives_way_to_the_start():
    from types import SimpleNamespace

    from napari_dmcr.reconstruction.result import keep_the_network

    # Target slices of single pixels: every speck is one the material shows, none is removed.
    images = [(np.indices((12, 12)).sum(0) % 2).astype(np.uint8)]
    tube = np.zeros((12, 12, 12), bool)
    tube[:, 4:8, 4:8] = True  # the phase joins the faces normal to z
    record = SimpleNamespace(start_cut=tube, notes=[])
    phases = SimpleNamespace(order=[1, 0])
    cut = tube.astype(np.uint8)
    cut[6] = 0  # the polish pinched the throat...
    cut[6, 0, 0:4] = 1  # ...and put its voxels elsewhere
    parameters = {}
    labels, field = keep_the_network(phases, record, cut, np.zeros(tube.shape, np.float32), images, parameters)
    assert np.array_equal(labels, tube.astype(np.uint8)) and np.array_equal(field, tube)
    assert parameters["polish_kept"] is False and "along z" in record.notes[0]
    assert parameters["polish_network"]["start"]["euler"] == 1
    kept = tube.astype(np.uint8)
    kept[0, 5, 5], kept[0, 0, 0] = 0, 1  # a polish that keeps the tube through (a speck: 1 / 192)
    parameters = {}
    labels, _ = keep_the_network(
        phases, SimpleNamespace(start_cut=tube, notes=[]), kept, np.zeros(tube.shape, np.float32), images, parameters
    )
    assert np.array_equal(labels, kept) and parameters["polish_kept"] is True
    assert parameters["polish_network"]["polished"]["euler"] == 2
    # A side arm (16 voxels of 208) that the polish cuts off the tube: still percolating, but
    # more than LARGEST_CLUSTER_DROP of the phase leaves the network.
    armed = tube.copy()
    armed[6, 4:8, 8:12] = True
    split = armed.astype(np.uint8)
    split[6, 4:8, 8] = 0  # 4 voxels of the arm's root...
    split[0, 8, 4:8] = 1  # ...moved onto the tube
    notes = []
    parameters = {}
    zeros = np.zeros(tube.shape, np.float32)
    labels, _ = keep_the_network(
        phases, SimpleNamespace(start_cut=armed, notes=notes), split, zeros, images, parameters
    )
    assert np.array_equal(labels, armed.astype(np.uint8)) and parameters["polish_kept"] is False
    assert "split 5.8% of phase 1 off its largest cluster" in notes[0]
    # Twelve isolated voxels (Euler characteristic 1 -> 13, a rise over MIN_EULER = 10).
    specked = tube.astype(np.uint8)
    specked[0:11, 0, 0] = 0
    specked[0:11:2, 0, 0] = 1
    specked[1:12:2, 11, 11] = 1
    notes = []
    parameters = {}
    labels, _ = keep_the_network(
        phases, SimpleNamespace(start_cut=tube, notes=notes), specked, zeros, images, parameters
    )
    assert parameters["polish_network"]["polished"]["euler"] == 13
    assert np.array_equal(labels, tube.astype(np.uint8)) and "Euler characteristic from 1 to 13" in notes[0]


def test_a_start_that_meets_the_target_residual_is_not_polished():
    """The polish would stop at once; the core is the fitted start, and the run says so."""
    image = conglomerate_slice((64, 64), seed=0)
    options = {"seed": 0, "device": "cpu", "descriptors": "cpu"}
    met = run_reconstruction(image, (24, 24, 24), target_residual=1.0, **options)
    cut, _ = fitted_start([image], 1, (24, 24, 24), 0)
    # The fitted start, but for the specks the slice does not show.
    changed = np.count_nonzero((met.labels == 1) != cut)
    assert met.history == [] and changed == met.parameters["speck_voxels_changed"] < 0.02 * cut.size
    assert any("met the target residual" in note for note in met.notes)
    polished = run_reconstruction(image, (24, 24, 24), target_residual=0.0, max_iter=3, **options)
    assert polished.history and not any("met the target residual" in note for note in polished.notes)


def test_the_start_is_deposited_grains_for_a_real_sandstone(shared_data):
    """DeePore's sandstone (pores label 1): its slices' angular pores joined by throats are told
    from blobs and from overlapping spheres, and the deposited start's pores percolate as the
    sandstone's do."""
    from napari_dmcr.evaluation.structure import percolation

    volume = np.load(shared_data / "deepore_sample_300.npy")
    image = volume[6, 86:214, 86:214]  # the benchmark's slice (fidelity3d.py)
    for seed in (1, 0):
        cut, choice = fitted_start([image], 1, (48, 48, 48), seed=seed)
        assert (choice["model"], choice["grains"]) == ("deposited", 0)
        assert choice["distances"]["gaussian"] > 1.5 * choice["distances"]["deposited of 0"]
    assert cut.sum() == round(np.mean(image == 1) * cut.size)
    assert all(percolation(cut.astype(np.uint8), 1))
