"""Gravity deposition, the deposited-grain start and speck removal, against brute force."""

import numpy as np
import pytest
from scipy import stats

from napari_dmcr.postprocessing.specks import SPECK, remove_specks, speck_density
from napari_dmcr.reconstruction.deposited_grains import deposited_grains, deposited_pack, grain_size_law
from napari_dmcr.reconstruction.deposition import deposit

SIDES = (20.0, 24.0)


def _pairs(centres, radii, sides):
    """Every pair's centre distance minus the sum of radii, periodic across (y, x) (brute force)."""
    gaps = {}
    for i in range(len(centres)):
        for j in range(i + 1, len(centres)):
            d = centres[i] - centres[j]
            d[:2] -= np.asarray(sides) * np.round(d[:2] / np.asarray(sides))
            gaps[i, j] = np.linalg.norm(d) - radii[i] - radii[j]
    return gaps


@pytest.fixture(scope="module")
def pile():
    rng = np.random.default_rng(3)
    radii = np.exp(np.log(2.0) + 0.2 * rng.standard_normal(400))
    centres = deposit(radii, SIDES, 8.0, seed=5)
    return centres, radii[: len(centres)]


def test_deposited_grains_rest_on_the_floor_or_on_grains_below(pile):
    centres, radii = pile
    assert len(centres) > 30
    gaps = _pairs(centres, radii, SIDES)
    assert min(gaps.values()) > -1e-3  # no two grains overlap
    for k in range(len(centres)):
        on_floor = abs(centres[k, 2] - radii[k]) < 1e-3
        below = [
            j for (a, b), gap in gaps.items() if k in (a, b) and abs(gap) < 1e-3
            for j in ((b,) if a == k else (a,)) if centres[j, 2] < centres[k, 2]
        ]  # fmt: skip
        assert on_floor or below, f"grain {k} floats"
        assert centres[k, 2] >= radii[k] - 1e-6


def test_deposition_is_reproducible_by_seed(pile):
    centres, radii = pile
    again = deposit(np.concatenate([radii, np.full(400 - len(radii), 2.0)]), SIDES, 8.0, seed=5)
    np.testing.assert_array_equal(again, centres)
    other = deposit(np.full(400, 2.0), SIDES, 8.0, seed=6)
    assert not np.allclose(other[:10], deposit(np.full(400, 2.0), SIDES, 8.0, seed=5)[:10])


def test_pack_grain_sizes_follow_the_law_by_count():
    median, sigma = 3.0, 0.2
    _, _, radii = deposited_pack(median, sigma, (48, 48, 48), seed=1)
    assert radii.size > 100
    # Log-normal by count, clipped at three spreads: Kolmogorov-Smirnov against the clipped normal.
    logs = (np.log(radii) - np.log(median)) / sigma
    clipped = stats.truncnorm(-np.inf, 3.0)
    assert stats.kstest(logs, clipped.cdf).pvalue > 0.01
    assert np.median(radii) == pytest.approx(median, rel=0.1)


def test_size_law_is_read_back_from_sections_of_a_pack():
    median, sigma = 4.0, 0.15
    depth, _, _ = deposited_pack(median, sigma, (64, 64, 64), seed=2)
    grains = depth > 0
    images = [grains[z].astype(np.uint8) for z in range(8, 64, 8)]
    read_median, read_sigma = grain_size_law(images, 1)
    # Touching sections merge and split in the watershed: a loose but telling tolerance.
    assert read_median == pytest.approx(median, rel=0.2)
    assert read_sigma < 0.4


@pytest.mark.parametrize("seed", [0, 1])
def test_deposited_start_has_the_images_exact_fraction(seed):
    rng = np.random.default_rng(seed)
    depth, _, _ = deposited_pack(3.0, 0.1, (64, 64, 64), seed=seed)
    image = (depth[32] > 0.5).astype(np.uint8)
    image[rng.random(image.shape) < 0.002] ^= 1
    shape = (24, 32, 32)
    volume = deposited_grains([image], 1, shape, seed=seed)
    assert volume.dtype == bool and volume.shape == shape
    assert np.count_nonzero(volume) == round(np.mean(image == 1) * np.prod(shape))
    np.testing.assert_array_equal(volume, deposited_grains([image], 1, shape, seed=seed))


def _small_clusters_brute_force(image, label):
    """4-connected clusters of ``label`` under SPECK pixels, by flood fill."""
    seen = np.zeros(image.shape, bool)
    small = 0
    for start in zip(*np.nonzero(image == label)):
        if seen[start]:
            continue
        stack, size = [start], 0
        seen[start] = True
        while stack:
            y, x = stack.pop()
            size += 1
            for ny, nx in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):
                if (
                    0 <= ny < image.shape[0]
                    and 0 <= nx < image.shape[1]
                    and not seen[ny, nx]
                    and image[ny, nx] == label
                ):
                    seen[ny, nx] = True
                    stack.append((ny, nx))
        small += size < SPECK
    return small


def test_speck_density_matches_a_flood_fill():
    rng = np.random.default_rng(0)
    images = [(rng.random((30, 40)) < p).astype(np.uint8) for p in (0.3, 0.55)]
    for label in (0, 1):
        expected = sum(_small_clusters_brute_force(image, label) for image in images) / (2 * 30 * 40)
        assert speck_density(images, label) == pytest.approx(expected)


def test_remove_specks_keeps_counts_and_meets_the_density():
    rng = np.random.default_rng(1)
    core = (rng.random((20, 24, 24)) < 0.45).astype(np.uint8)
    targets = {0: 0.0, 1: 0.0}
    clean = remove_specks(core, 1, targets)
    assert np.count_nonzero(clean == 1) == np.count_nonzero(core == 1)
    from scipy import ndimage as ndi

    for label in (0, 1):
        clusters, _ = ndi.label(clean == label)
        sizes = np.bincount(clusters.ravel())[1:]
        before = np.bincount(ndi.label(core == label)[0].ravel())[1:]
        assert np.count_nonzero(sizes < SPECK) < np.count_nonzero(before < SPECK)
    # A target at or above the core's own density leaves it as it is.
    loose = {label: speck_density(core, label) for label in (0, 1)}
    np.testing.assert_array_equal(remove_specks(core, 1, loose), core)
