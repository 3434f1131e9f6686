"""Transport and elastic properties against closed forms and a direct sparse solve."""

import numpy as np
import pytest
from scipy import ndimage as ndi
from scipy import sparse
from scipy.sparse import linalg as sparse_linalg

from napari_dmcr.errors import InputError
from napari_dmcr.properties import diffusion, elastic_properties, relative_differences, volume_properties
from napari_dmcr.properties.elasticity import lame


def random_volume(shape, fraction, seed, sigma=1.5):
    noise = ndi.gaussian_filter(np.random.default_rng(seed).standard_normal(shape), sigma, mode="wrap")
    return (noise < np.quantile(noise, fraction)).astype(np.uint8)


def test_straight_channels_have_tortuosity_one_and_diffusivity_equal_to_fraction():
    volume = np.zeros((10, 7, 9), np.uint8)
    volume[:, 1::3, 2::4] = 1  # channels along z
    result = diffusion(volume, 1, axis=0)
    assert result["tortuosity"] == pytest.approx(1.0, abs=1e-6)
    assert result["diffusivity"] == pytest.approx(volume.mean(), abs=1e-7)
    across = diffusion(volume, 1, axis=2)
    assert across == {**across, "diffusivity": 0.0, "tortuosity": None, "percolates": False}


def test_a_homogeneous_block_conducts_fully():
    volume = np.ones((6, 5, 4), np.uint8)
    for axis in range(3):
        assert diffusion(volume, 1, axis)["diffusivity"] == pytest.approx(1.0, abs=1e-5)  # single precision
        result = diffusion(volume, 1, axis, tolerance=1e-10)  # double precision
        assert result["diffusivity"] == pytest.approx(1.0, abs=1e-9)
        assert result["tortuosity"] == pytest.approx(1.0, abs=1e-9)


def _direct_flux(mask, axis):
    """Flux through ``mask`` along ``axis`` from a sparse direct solve of the same equations,
    assembled voxel by voxel (held faces half a voxel outside, conductance 2)."""
    mask = np.moveaxis(mask, axis, 0)
    index = -np.ones(mask.shape, int)
    index[mask] = np.arange(mask.sum())
    rows, cols, values, rhs = [], [], [], np.zeros(mask.sum())
    for voxel in zip(*np.nonzero(mask)):
        i = index[voxel]
        diagonal = 0.0
        for a in range(3):
            for step in (-1, 1):
                other = list(voxel)
                other[a] += step
                if 0 <= other[a] < mask.shape[a]:
                    if mask[tuple(other)]:
                        rows.append(i), cols.append(index[tuple(other)]), values.append(-1.0)
                        diagonal += 1.0
                elif a == 0:
                    diagonal += 2.0  # a held face
                    rhs[i] += 2.0 if other[0] < 0 else 0.0
        rows.append(i), cols.append(i), values.append(diagonal)
    matrix = sparse.csr_matrix((values, (rows, cols)), shape=(rhs.size,) * 2)
    concentration = np.zeros(mask.shape)
    concentration[mask] = sparse_linalg.spsolve(matrix, rhs)
    inlet = mask[0]
    return np.sum(2.0 * (1.0 - concentration[0][inlet]))


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_diffusivity_matches_a_direct_sparse_solve(axis):
    volume = random_volume((12, 10, 11), 0.55, seed=3)
    mask = volume == 1
    clusters, _ = ndi.label(mask)
    ends = np.moveaxis(clusters, axis, 0)
    both = np.intersect1d(np.unique(ends[0]), np.unique(ends[-1]))
    crossing = np.isin(clusters, both[both > 0])
    assert crossing.any() and (crossing != mask).any()  # isolated clusters are left out
    flux = _direct_flux(crossing, axis)
    length = volume.shape[axis]
    section = volume.size // length
    exact = flux * length / section
    assert diffusion(volume, 1, axis)["diffusivity"] == pytest.approx(exact, rel=1e-4)  # the default tolerance
    result = diffusion(volume, 1, axis, tolerance=1e-9)
    assert result["diffusivity"] == pytest.approx(exact, rel=1e-7)
    assert result["tortuosity"] == pytest.approx(mask.mean() / result["diffusivity"], rel=1e-12)
    assert result["converged"] and result["flux_mismatch"] < 1e-4


@pytest.mark.parametrize("thickness", [1, 3, 4])
def test_laminates_have_voigt_moduli_along_and_reuss_across(thickness):
    volume = np.zeros((3 * thickness + 2, 4, 5), np.uint8)
    volume[:thickness] = 1
    volume[2 * thickness : 2 * thickness + 1] = 2
    young = (2.0, 7.0, 3.0)
    fractions = np.array([np.mean(volume == label) for label in range(3)])
    result = elastic_properties(volume, young, (0.0, 0.0, 0.0))
    reuss = 1.0 / np.sum(fractions / np.array(young))
    voigt = np.sum(fractions * np.array(young))
    assert result["young_modulus"] == pytest.approx([reuss, voigt, voigt], rel=1e-6)
    assert np.array(result["poisson_ratio"]) == pytest.approx(np.zeros((3, 3)), abs=1e-8)
    assert result["converged"]


def test_a_homogeneous_block_keeps_its_moduli():
    volume = np.zeros((6, 6, 6), np.uint8)
    volume[2, 3, 1] = 1
    result = elastic_properties(volume, (30.0, 30.0), (0.2, 0.2))
    assert result["young_modulus"] == pytest.approx([30.0] * 3)
    assert np.array(result["poisson_ratio"])[~np.eye(3, dtype=bool)] == pytest.approx([0.2] * 6)
    assert result["iterations"] == [0] * 6


def _hashin_shtrikman(fractions, bulk, shear):
    """Lower and upper bounds of the bulk and shear moduli; the first phase the softer in both."""
    (f1, f2), (k1, k2), (g1, g2) = fractions, bulk, shear
    k_low = k1 + f2 / (1 / (k2 - k1) + 3 * f1 / (3 * k1 + 4 * g1))
    k_high = k2 + f1 / (1 / (k1 - k2) + 3 * f2 / (3 * k2 + 4 * g2))
    g_low = g1 + f2 / (1 / (g2 - g1) + 6 * f1 * (k1 + 2 * g1) / (5 * g1 * (3 * k1 + 4 * g1)))
    g_high = g2 + f1 / (1 / (g1 - g2) + 6 * f2 * (k2 + 2 * g2) / (5 * g2 * (3 * k2 + 4 * g2)))
    return (k_low, k_high), (g_low, g_high)


def test_a_random_volume_lies_within_the_hashin_shtrikman_bounds_and_its_stiffness_is_symmetric():
    volume = random_volume((20, 20, 20), 0.4, seed=5, sigma=2.0)
    young, poisson = (5.0, 60.0), (0.3, 0.2)
    result = elastic_properties(volume, young, poisson, tolerance=1e-5)
    stiffness = np.array(result["stiffness"])
    assert result["symmetry_error"] < 1e-5 and result["converged"]
    assert np.all(np.linalg.eigvalsh(0.5 * (stiffness + stiffness.T)) > 0)
    compliance = np.linalg.inv(stiffness)
    c, s = stiffness, compliance
    bulk_voigt = (np.trace(c[:3, :3]) + 2 * (c[0, 1] + c[0, 2] + c[1, 2])) / 9
    shear_voigt = (np.trace(c[:3, :3]) - (c[0, 1] + c[0, 2] + c[1, 2]) + 3 * np.trace(c[3:, 3:])) / 15
    bulk_reuss = 1 / (np.trace(s[:3, :3]) + 2 * (s[0, 1] + s[0, 2] + s[1, 2]))
    shear_reuss = 15 / (4 * np.trace(s[:3, :3]) - 4 * (s[0, 1] + s[0, 2] + s[1, 2]) + 3 * np.trace(s[3:, 3:]))
    fractions = [np.mean(volume == 0), np.mean(volume == 1)]
    lam, mu = lame(np.array(young), np.array(poisson))
    (k_low, k_high), (g_low, g_high) = _hashin_shtrikman(fractions, lam + 2 * mu / 3, mu)
    assert k_low <= bulk_reuss <= bulk_voigt <= k_high
    assert g_low <= shear_reuss <= shear_voigt <= g_high


def test_volume_properties_reports_per_axis_values_notes_and_parameters():
    volume = np.zeros((8, 6, 6), np.uint8)
    volume[:, :, :3] = 1  # label 1 crosses along z and y, not x
    result = volume_properties(volume, 1, young=(1.0, 2.0), poisson=(0.0, 0.0))
    assert result["axes"] == ["z", "y", "x"]
    assert result["diffusivity"] == pytest.approx([0.5, 0.5, 0.0], rel=1e-5)
    assert result["tortuosity"][:2] == pytest.approx([1.0, 1.0], rel=1e-5) and result["tortuosity"][2] is None
    assert result["percolates"] == [True, True, False]
    assert result["young_modulus"] == pytest.approx([1.5, 1.5, 4 / 3])
    assert any("along x" in note for note in result["notes"])
    assert result["parameters"]["young_modulus"] == [1.0, 2.0]
    assert len(result["solver"]["diffusion"]) == 3 and result["solver"]["elasticity"]["converged"]
    differences = relative_differences(result, {**result, "young_modulus": [1.0, 1.5, 4 / 3]})
    assert differences["young_modulus"] == pytest.approx([0.5, 0.0, 0.0], abs=1e-6)
    assert differences["tortuosity"][2] is None


@pytest.mark.parametrize("pore", [0, 1])
def test_a_pore_image_gets_empty_pores_and_quartz_grains_by_default(pore):
    volume = np.zeros((8, 6, 6), np.uint8) + (1 - pore)
    volume[:, :, :2] = pore  # sheets of pore normal to x, a third of the volume
    auto = volume_properties(volume, pore)
    quartz, void = (95.8, 0.064), (0.0, 0.0)
    moduli = [void if label == pore else quartz for label in (0, 1)]
    given = volume_properties(volume, pore, young=[m[0] for m in moduli], poisson=[m[1] for m in moduli])
    assert auto["young_modulus"] == pytest.approx(given["young_modulus"], rel=1e-6)
    assert auto["young_modulus"][0] == pytest.approx(95.8 * 2 / 3, rel=1e-3)  # along the sheets: Voigt
    assert auto["parameters"]["young_modulus"] == [m[0] for m in moduli]
    assert f"label {pore} = empty pores, label {1 - pore} = quartz grains" in auto["parameters"]["moduli"]
    assert any("empty pores" in note for note in auto["notes"])


def test_named_materials_keep_their_label_order_and_three_labels_need_moduli():
    volume = random_volume((6, 6, 6), 0.4, seed=1)
    sample = volume_properties(volume, 1, material="conglomerate")
    assert sample["parameters"]["young_modulus"] == [50.0, 10.0]
    assert "label 0 = gravel, label 1 = matrix" in sample["parameters"]["moduli"]
    three = volume.copy()
    three[0] = 2
    with pytest.raises(InputError, match=r"3 labels .* no material is assumed"):
        volume_properties(three, 1)
    assert volume_properties(three, 1, elastic=False)["diffusivity"][0] >= 0.0


def test_label_names_from_the_sample_choose_its_material_from_the_sample_to_the_properties(tmp_path, capsys):
    import json

    from napari_dmcr.cli import main

    volume = random_volume((6, 6, 6), 0.4, seed=2)
    named = volume_properties(volume, 1, label_names={0: "Gravel", "1": "matrix"})
    assert named["parameters"]["young_modulus"] == [50.0, 10.0] and "conglomerate" in named["parameters"]["moduli"]
    assert main(["sample", "--out", str(tmp_path / "sample"), "--size", "16"]) == 0
    out = tmp_path / "properties.json"
    assert main(["properties", str(tmp_path / "sample" / "truth.npy"), "--phase", "1", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["parameters"]["young_modulus"] == [50.0, 10.0] and result["parameters"]["material"] == "auto"
    assert "the labels are named conglomerate" in capsys.readouterr().out
    core = tmp_path / "core.npy"  # a core keeps its slice's label names
    slice_path = str(tmp_path / "sample" / "slice.npy")
    assert main(["reconstruct", slice_path, "--shape", "8", "8", "8", "--max-iter", "2", "--out", str(core)]) == 0
    assert json.loads((tmp_path / "core.npy.json").read_text())["label_names"] == {"0": "gravel", "1": "matrix"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"young": (1.0,), "poisson": (0.1,)}, "for each label 0..1"),
        ({"young": (1.0, 2.0), "poisson": (0.1, 0.5)}, "Poisson ratios must lie"),
        ({"young": (1.0, -2.0), "poisson": (0.1, 0.2)}, "Young's moduli must be finite"),
        ({"young": (1.0, 2.0), "poisson": (0.1,)}, "one Poisson ratio per Young's modulus"),
        ({"material": "granite"}, "unknown material"),
        ({"phase": 3}, "phase 3 does not occur"),
    ],
)
def test_bad_settings_fail_before_any_solve(kwargs, message):
    volume = random_volume((6, 6, 6), 0.5, seed=1)
    with pytest.raises(InputError, match=message):
        volume_properties(volume, **{"phase": 1, **kwargs})


def test_the_properties_command_writes_the_documented_json(tmp_path, capsys):
    import json

    from napari_dmcr.cli import main

    volume = np.zeros((8, 6, 6), np.uint8)
    volume[:, :, :3] = 1
    np.save(tmp_path / "core.npy", volume)
    out = tmp_path / "props.json"
    argv = ["properties", str(tmp_path / "core.npy"), "--phase", "1", "--young", "1", "2", "--poisson", "0", "0"]
    assert main([*argv, "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["axes"] == ["z", "y", "x"]
    assert result["diffusivity"] == pytest.approx([0.5, 0.5, 0.0], rel=1e-5) and result["tortuosity"][2] is None
    assert result["young_modulus"] == pytest.approx([1.5, 1.5, 4 / 3])
    assert len(result["stiffness"]) == 6 and result["parameters"]["poisson_ratio"] == [0.0, 0.0]
    assert "does not percolate" in capsys.readouterr().out
    # Bad moduli: a one-line error before any solve, and the earlier result stays.
    before = out.read_text()
    assert main([*argv[:-2], "0.6", "0", "--out", str(out), "--overwrite"]) == 2
    assert "Poisson ratios must lie" in capsys.readouterr().err and out.read_text() == before


def test_evaluate_puts_the_properties_beside_the_truths(tmp_path):
    from napari_dmcr.evaluation import evaluate

    truth = random_volume((12, 12, 12), 0.45, seed=2)
    recon = random_volume((12, 12, 12), 0.45, seed=3)
    results = evaluate(truth[6], recon, truth, properties={"phase": 1, "young": (1.0, 3.0), "poisson": (0.2, 0.2)})
    compared = results["properties"]
    expected = (np.array(compared["reconstruction"]["young_modulus"]) / compared["truth"]["young_modulus"]) - 1
    assert compared["differences"]["young_modulus"] == pytest.approx(expected)
    with pytest.raises(InputError, match="3D reconstruction"):
        evaluate(truth[6], recon[6], properties={})


def test_a_single_straight_channel_is_solved_exactly_without_dividing_by_zero():
    assert diffusion(np.ones((1, 1, 1), np.uint8), 1, 0)["tortuosity"] == pytest.approx(1.0)
    channels = np.zeros((5, 6, 6), np.uint8)
    channels[:, ::2, ::2] = 1  # isolated straight channels along z
    assert diffusion(channels, 1, 0)["diffusivity"] == pytest.approx(channels.mean())
    with pytest.raises(InputError, match=r"axis must be one of 0\.\.2"):
        diffusion(channels, 1, 3)


def test_a_stiff_phase_without_a_load_path_has_modulus_zero_along_it():
    sheets = np.zeros((8, 8, 8), np.uint8)
    sheets[:, :, 3:5] = 1  # solid sheets normal to x, pores between: no load path along x
    result = elastic_properties(sheets, (0.0, 1.0), (0.0, 0.2))
    assert result["young_modulus"] == pytest.approx([0.25, 0.25, 0.0], abs=1e-6)
    assert result["poisson_ratio"][2] == [None] * 3 and result["poisson_ratio"][0][2] is None
    assert any("no load path along xx" in note for note in result["notes"])
    grains = np.zeros((8, 8, 8), np.uint8)
    grains[2:5, 2:5, 2:5] = 1  # one grain in an empty cell
    assert elastic_properties(grains, (0.0, 1.0), (0.0, 0.2))["young_modulus"] == [0.0] * 3


def test_a_truth_that_cannot_be_solved_fails_before_the_reconstruction_is():
    from napari_dmcr.properties import compare_properties

    recon = random_volume((8, 8, 8), 0.5, seed=1)
    truth = recon.copy()
    truth[0, 0, 0] = 2  # a label without moduli
    with pytest.raises(InputError, match=r"for each label 0\.\.2"):
        compare_properties(recon, truth, phase=1, young=(1.0, 2.0), poisson=(0.1, 0.1), device="cpu")
