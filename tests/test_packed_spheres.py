"""The consolidated sphere packing: its overlap rule by counting, its fraction, and the start."""

import numpy as np
import pytest
from scipy import ndimage

from napari_dmcr.errors import InputError
from napari_dmcr.reconstruction import run_reconstruction
from napari_dmcr.reconstruction.packed_spheres import packed_spheres, sphere_packing
from napari_dmcr.reconstruction.schedule import STARTS, resolved_start
from napari_dmcr.reconstruction.starts import fitted_start
from napari_dmcr.reconstruction.targets import make_target
from napari_dmcr.samples import conglomerate_slice


def test_spheres_that_may_not_overlap_cover_each_voxel_at_most_once():
    depth, cover = sphere_packing([4.0], [1.0], (40, 40, 40), 0.6, seed=0, max_overlap=0.0)
    assert cover.max() == 1
    assert np.array_equal(cover > 0, depth >= 0)  # depth = radius - distance to the deepest centre
    # A random packing of equal spheres without overlap stalls far below 0.6 (random sequential
    # addition jams near 0.38).
    assert 0.25 < np.mean(cover > 0) < 0.45
    _, looser = sphere_packing([4.0], [1.0], (40, 40, 40), 0.6, seed=0, max_overlap=0.3)
    assert looser.max() > 1 and np.mean(looser > 0) > np.mean(cover > 0)


def test_the_packing_stops_at_the_fraction_and_is_seeded():
    # Spheres that mostly hold no voxel end the packing (they stall it); a radius without
    # weight is never drawn (one sphere of 3 would cover a fifth of the box).
    _, cover = sphere_packing([0.1, 3.0], [1.0, 0.0], (8, 8, 8), 0.5, seed=0)
    assert cover.sum() <= 5
    depth, cover = sphere_packing([3.0, 5.0], [2.0, 1.0], (32, 32, 32), 0.2, seed=1)
    assert 0.2 <= np.mean(cover > 0) < 0.2 + 4 / 3 * np.pi * 5.0**3 / 32**3  # one sphere past it at most
    again, _ = sphere_packing([3.0, 5.0], [2.0, 1.0], (32, 32, 32), 0.2, seed=1)
    assert np.array_equal(depth, again)


def test_packed_grains_hold_the_fraction_and_trap_fewer_matrix_specks_than_overlapping_spheres():
    image = conglomerate_slice((48, 48), seed=0)  # gravel 0, matrix 1
    grains = packed_spheres([image], 0, (32, 32, 32), seed=0)
    assert grains.sum() == round(np.mean(image == 0) * grains.size)
    assert np.array_equal(grains, packed_spheres([image], 0, (32, 32, 32), seed=0))
    packed, choice = fitted_start([image], 1, (32, 32, 32), seed=0, models=("packed",))
    assert choice["model"] == "packed" and choice["grains"] == 0
    assert set(choice["distances"]) == {"packed of 0", "packed of 1"}
    overlapping, _ = fitted_start([image], 1, (32, 32, 32), seed=0, models=("spheres",))
    specks = []  # matrix clusters of at most 8 voxels: trapped where spheres interpenetrate
    for cut in (packed, overlapping):
        labels, _ = ndimage.label(cut)
        specks.append(np.count_nonzero(np.bincount(labels.ravel())[1:] <= 8))
    assert specks[0] < 0.9 * specks[1]  # 23 against 31


def test_the_packing_is_asked_for_by_name_and_is_3d_only():
    image = conglomerate_slice((48, 48), seed=0)
    assert resolved_start("packed", make_target(image, 3), (16, 16, 16)) == "packed"
    with pytest.raises(InputError, match="3D model"):
        resolved_start("packed", make_target(image, 2), (32, 32))
    result = run_reconstruction(
        image, (16, 16, 16), device="cpu", descriptors="cpu", target_residual=10.0, start="packed"
    )
    assert result.parameters["start_model"]["model"] == "packed"
    auto = run_reconstruction(image, (16, 16, 16), device="cpu", descriptors="cpu", target_residual=10.0)
    assert auto.parameters["start_model"]["model"] in ("gaussian", "spheres")  # auto never packs


def test_the_command_line_offers_every_start():
    """The command line lists the starts by hand (its help loads without torch): kept in step."""
    from napari_dmcr.cli import build_parser

    reconstruct = build_parser()._subparsers._group_actions[0].choices["reconstruct"]
    (start,) = [action for action in reconstruct._actions if action.dest == "start"]
    assert tuple(start.choices) == STARTS
