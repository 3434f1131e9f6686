"""FLAC3D grid export, checked by an independent parser written here and by meshio."""

import itertools
import time
import tracemalloc

import numpy as np
import pytest

from napari_dmcr.errors import InputError
from napari_dmcr.io import f3grid_records
from napari_dmcr.io.f3dat import write_f3dat
from napari_dmcr.io.flac3d import coarsen_labels, write_f3grid


def parse_f3grid(path):
    """Minimal reader of the ASCII .f3grid records (independent of the writer)."""
    points, zones, faces = {}, {}, {}
    groups = {"ZGROUP": {}, "FGROUP": {}}
    current = None
    for line in path.read_text().splitlines():
        fields = line.split()
        if not fields:
            continue
        if fields[0].startswith("*"):
            current = None
        elif fields[0] == "G":
            assert int(fields[1]) not in points, "gridpoint id written twice"
            points[int(fields[1])] = tuple(float(v) for v in fields[2:5])
        elif fields[0] == "Z":
            assert fields[1] == "B8" and len(fields) == 11
            zones[int(fields[2])] = [int(v) for v in fields[3:]]
        elif fields[0] == "F":
            assert fields[1] == "Q4" and len(fields) == 7
            faces[int(fields[2])] = [int(v) for v in fields[3:]]
        elif fields[0] in groups:
            name = line.split('"')[1]
            assert 'SLOT "Default"' in line
            current = groups[fields[0]].setdefault(name, [])
        else:
            current.extend(int(v) for v in fields)
    return points, zones, faces, groups["ZGROUP"], groups["FGROUP"]


# Offsets of FLAC3D's B8 nodes p0..p7 in a unit brick (docs/export.md, Itasca's brick primitive).
B8_OFFSETS = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 1, 1], [1, 0, 1], [1, 1, 1]], float)


def hexahedron_volume(corners):
    """Volume of a FLAC3D-ordered brick (6 tetrahedra around p0-p7) and its p0..p3 frame."""
    p = np.asarray(corners)
    # The two node rings around the p0 -> p7 diagonal, in FLAC3D numbering.
    ring = [1, 4, 2, 5, 3, 6]
    volume = 0.0
    for a, b in zip(ring, ring[1:] + ring[:1], strict=True):
        volume += np.linalg.det(np.array([p[a] - p[0], p[b] - p[0], p[7] - p[0]])) / 6
    return abs(volume), np.linalg.det(np.array([p[1] - p[0], p[2] - p[0], p[3] - p[0]]))


@pytest.fixture
def small_volume():
    rng = np.random.default_rng(3)
    return rng.integers(0, 3, size=(4, 5, 6)).astype(np.uint8)  # (z, y, x)


def zone_voxels(points, zones, voxel_size, origin):
    """Voxel index (k, j, i) of every zone, from its centroid."""
    result = {}
    for zone_id, nodes in zones.items():
        centre = np.mean([points[n] for n in nodes], axis=0)
        i, j, k = np.floor((centre - origin) / voxel_size).astype(int)
        result[zone_id] = (k, j, i)
    return result


def test_grid_geometry_groups_and_counts(tmp_path, small_volume):
    path = tmp_path / "core.f3grid"
    voxel_size, origin = 0.5, np.array([10.0, -2.0, 3.0])
    counts = write_f3grid(path, small_volume, voxel_size=voxel_size, origin=origin)
    points, zones, _, zgroups, _ = parse_f3grid(path)
    nz, ny, nx = small_volume.shape
    assert len(zones) == counts["zones"] == nx * ny * nz
    assert len(points) == counts["gridpoints"] == (nx + 1) * (ny + 1) * (nz + 1)
    # Shared gridpoints are written once: no two ids at the same position.
    assert len(set(points.values())) == len(points)
    for nodes in zones.values():
        corners = np.array([points[n] for n in nodes])
        assert np.allclose(corners - corners[0], B8_OFFSETS * voxel_size)
        volume, frame = hexahedron_volume(corners)
        assert frame > 0  # p0..p3 right-handed: positive FLAC3D volume
        assert volume == pytest.approx(voxel_size**3)
    voxels = zone_voxels(points, zones, voxel_size, origin)
    names = {0: "gravel", 1: "matrix", 2: "phase2"}
    assert set(zgroups) == set(names.values())
    assert sorted(itertools.chain(*zgroups.values())) == sorted(zones)  # every zone in exactly one group
    for label, name in names.items():
        members = {voxels[z] for z in zgroups[name]}
        assert members == {tuple(v) for v in np.argwhere(small_volume == label)}
        assert counts["groups"][name] == np.count_nonzero(small_volume == label)
    lowest = np.min(list(points.values()), axis=0)
    assert np.allclose(lowest, origin)


def boundary_faces(zones):
    """Faces (as sets of gridpoint ids) that belong to exactly one zone."""
    seen = {}
    # The 6 faces of a B8 brick, in FLAC3D node numbers.
    brick_faces = [
        (0, 1, 4, 2),
        (3, 6, 7, 5),
        (0, 2, 5, 3),
        (1, 4, 7, 6),
        (0, 1, 6, 3),
        (2, 4, 7, 5),
    ]
    for zone_id, nodes in zones.items():
        for face in brick_faces:
            key = frozenset(nodes[n] for n in face)
            seen.setdefault(key, []).append(zone_id)
    return {key: owners[0] for key, owners in seen.items() if len(owners) == 1}


@pytest.mark.parametrize("cylinder", [False, True])
def test_face_groups_cover_exactly_the_boundary(tmp_path, cylinder):
    labels = np.random.default_rng(0).integers(0, 2, size=(3, 8, 7)).astype(np.uint8)
    path = tmp_path / "faces.f3grid"
    counts = write_f3grid(path, labels, cylinder=cylinder)
    points, zones, faces, _, fgroups = parse_f3grid(path)
    expected = boundary_faces(zones)
    assert {frozenset(nodes) for nodes in faces.values()} == set(expected)
    assert len(faces) == len(expected) == counts["faces"]
    assert sorted(itertools.chain(*fgroups.values())) == sorted(faces)
    normals = {"bottom": (0, 0, -1), "top": (0, 0, 1)}
    for group, members in fgroups.items():
        assert counts["face_groups"][group] == len(members)
        for face_id in members:
            corners = np.array([points[n] for n in faces[face_id]])
            normal = np.cross(corners[1] - corners[0], corners[3] - corners[0])
            owner = expected[frozenset(faces[face_id])]
            outward = corners.mean(axis=0) - np.mean([points[n] for n in zones[owner]], axis=0)
            assert np.dot(normal, outward) > 0  # nodes counter-clockwise seen from outside
            if group in normals:
                assert np.allclose(normal / np.linalg.norm(normal), normals[group])
            else:
                assert normal[2] == 0
    assert counts["face_groups"]["top"] == counts["face_groups"]["bottom"] == counts["zones"] // 3


def test_cylinder_keeps_the_zones_whose_centre_is_inside(tmp_path):
    labels = np.zeros((10, 12, 16), dtype=np.uint8)
    labels[:, :, ::2] = 1
    voxel_size = 0.005  # 12 x 16 voxels of 5 mm; cylinder 50 mm x 40 mm
    path = tmp_path / "cyl.f3grid"
    counts = write_f3grid(path, labels, voxel_size=voxel_size, cylinder=(0.05, 0.04))
    points, zones, _, zgroups, _ = parse_f3grid(path)
    k, j, i = np.meshgrid(np.arange(10), np.arange(12), np.arange(16), indexing="ij")
    inside = ((i + 0.5) * voxel_size - 0.04) ** 2 + ((j + 0.5) * voxel_size - 0.03) ** 2 <= 0.025**2
    inside &= np.abs((k + 0.5) * voxel_size - 0.025) <= 0.02
    assert len(zones) == counts["zones"] == np.count_nonzero(inside)
    kept = set(zone_voxels(points, zones, voxel_size, np.zeros(3)).values())
    assert kept == {tuple(v) for v in np.argwhere(inside)}
    assert counts["height"] == pytest.approx(0.04)
    # Only gridpoints of kept zones are written.
    assert set(points) == {n for nodes in zones.values() for n in nodes}
    assert len(zgroups["matrix"]) == np.count_nonzero(inside & (labels == 1))


def test_largest_cylinder_of_the_block(tmp_path):
    labels = np.ones((4, 20, 20), dtype=np.uint8)
    labels[0, 0, 0] = 0
    counts = write_f3grid(tmp_path / "c.f3grid", labels, cylinder=True)
    # Zone centres within radius 10 of the axis: close to the disc area pi * 10^2 per layer.
    per_layer = counts["zones"] // 4
    assert per_layer == sum(1 for j in range(20) for i in range(20) if (i + 0.5 - 10) ** 2 + (j + 0.5 - 10) ** 2 <= 100)
    assert abs(per_layer - np.pi * 100) < 0.05 * np.pi * 100
    assert counts["groups"] == {"gravel": 0, "matrix": counts["zones"]}
    _, _, _, zgroups, _ = parse_f3grid(tmp_path / "c.f3grid")
    assert set(zgroups) == {"matrix"}  # no empty group block


def brute_force_majority(labels, factor):
    nz, ny, nx = (n // factor for n in labels.shape)
    out = np.empty((nz, ny, nx), dtype=labels.dtype)
    for k in range(nz):
        for j in range(ny):
            for i in range(nx):
                block = labels[
                    k * factor : (k + 1) * factor,
                    j * factor : (j + 1) * factor,
                    i * factor : (i + 1) * factor,
                ]
                out[k, j, i] = np.argmax(np.bincount(block.ravel()))  # argmax: ties to the smaller label
    return out


def test_coarsening_is_a_majority_vote(tmp_path):
    labels = np.random.default_rng(1).integers(0, 3, size=(7, 9, 8)).astype(np.uint8)
    for factor in (2, 3):
        assert np.array_equal(coarsen_labels(labels, factor), brute_force_majority(labels, factor))
    tie = np.zeros((2, 2, 2), dtype=np.uint8)
    tie[0] = 1
    assert coarsen_labels(tie, 2)[0, 0, 0] == 0
    counts = write_f3grid(tmp_path / "coarse.f3grid", labels, voxel_size=0.1, coarsen=2)
    points, zones, _, zgroups, _ = parse_f3grid(tmp_path / "coarse.f3grid")
    coarse = brute_force_majority(labels, 2)
    assert counts["shape"] == coarse.shape and counts["zone_size"] == pytest.approx(0.2)
    voxels = zone_voxels(points, zones, 0.2, np.zeros(3))
    assert {voxels[z] for z in zgroups["gravel"]} == {tuple(v) for v in np.argwhere(coarse == 0)}


def test_meshio_reads_the_grid(tmp_path, small_volume):
    meshio = pytest.importorskip("meshio")
    path = tmp_path / "m.f3grid"
    write_f3grid(path, small_volume, voxel_size=2.0, face_groups=False, group_names={0: "clast"})
    mesh = meshio.read(path)
    nz, ny, nx = small_volume.shape
    assert len(mesh.points) == (nx + 1) * (ny + 1) * (nz + 1)
    hexahedra = mesh.cells_dict["hexahedron"]
    assert len(hexahedra) == small_volume.size
    # meshio converts to VTK order: bottom ring counter-clockwise seen from above, then the top.
    vtk_offsets = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]])
    corners = mesh.points[hexahedra]
    assert np.allclose(corners - corners[:, :1], vtk_offsets * 2.0)
    # Zones are written in C order of the (z, y, x) volume.
    for name, label in (("clast", 0), ("matrix", 1), ("phase2", 2)):
        (members,) = [v for key, v in mesh.cell_sets.items() if key.startswith(f"zone:{name}:")]
        assert np.array_equal(np.sort(np.concatenate(members)), np.flatnonzero(small_volume.ravel() == label))
    write_f3grid(tmp_path / "f.f3grid", small_volume)
    with_faces = meshio.read(tmp_path / "f.f3grid")
    assert len(with_faces.cells_dict["hexahedron"]) == small_volume.size
    assert len(with_faces.cells_dict["quad"]) == 2 * (nx * ny + ny * nz + nx * nz)


def test_a_failed_write_leaves_no_file(tmp_path, small_volume, monkeypatch):
    target = tmp_path / "keep.f3grid"
    target.write_text("previous")

    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(f3grid_records.SpecimenGrid, "write_zone_group", fail)
    with pytest.raises(RuntimeError):
        write_f3grid(target, small_volume)
    assert target.read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.f3grid"]


def test_128_cube_in_bounded_memory(tmp_path):
    labels = (np.random.default_rng(0).random((128, 128, 128)) < 0.6).astype(np.uint8)
    path = tmp_path / "big.f3grid"
    tracemalloc.start()
    start = time.perf_counter()
    counts = write_f3grid(path, labels)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert counts["zones"] == 128**3
    size = path.stat().st_size
    assert size > 200e6
    assert peak < 16e6 and peak < size / 10  # streamed: memory far below the file size
    assert seconds < 60


def test_f3dat_template(tmp_path):
    grid = tmp_path / "core.f3grid"
    write_f3grid(grid, np.array([[[0, 1], [1, 0]]] * 2, dtype=np.uint8))
    path = write_f3dat(tmp_path / "core.f3dat", grid, group_names={0: "clast", 1: "cement"})
    text = path.read_text()
    assert text.startswith(";") and "TEMPLATE" in text.splitlines()[0]
    assert "zone import 'core.f3grid' use-given-ids" in text
    assert "zone cmodel assign strain-softening" in text
    for name in ("clast", "cement"):
        assert f"[global {name}_cohesion = " in text.split("END OF EDIT BLOCK")[0]
        assert f"range group '{name}'" in text
    assert text.count("model restore 'triaxial-initial'") == 4
    for stress in ("-100000", "-200000", "-300000", "-400000"):
        assert f"zone face apply stress-normal {stress} range group 'lateral'" in text
    assert "zone face apply velocity-z 0 range group 'bottom'" in text
    assert "zone face apply velocity-z [-platen_velocity] range group 'top'" in text
    assert "fish history name 'axial-stress' axial_stress" in text
    custom = write_f3dat(tmp_path / "one.f3dat", grid, group_names=["a"], confining_pressures_mpa=[1.5])
    assert "stress-normal -1.5e+06 range group 'lateral'" in custom.read_text()


@pytest.mark.parametrize(
    "labels, kwargs, message",
    [
        (np.zeros((4, 4), np.uint8), {}, "3D"),
        (np.full((2, 2, 2), 0.5, np.float32), {}, "grey image"),
        (-np.ones((2, 2, 2), np.int16), {}, "non-negative"),
        (np.zeros((0, 2, 2), np.uint8), {}, "empty"),
        (np.zeros((2, 2, 2), np.uint8), {"voxel_size": 0}, "positive"),
        (np.zeros((2, 2, 2), np.uint8), {"origin": (0, 0)}, "origin"),
        (np.zeros((2, 2, 2), np.uint8), {"coarsen": 0}, "positive integer"),
        (np.zeros((2, 2, 2), np.uint8), {"coarsen": 3}, "at most 2"),
        (np.zeros((2, 2, 2), np.uint8), {"cylinder": (3.0, 1.0)}, "does not fit"),
        (np.zeros((2, 2, 2), np.uint8), {"cylinder": "big"}, "diameter, height"),
        (np.arange(8, dtype=np.uint8).reshape(2, 2, 2) % 2, {"group_names": ["a", "a"]}, "differ"),
        (np.zeros((2, 2, 2), np.uint8), {"group_names": ['my "gravel"']}, "quotes"),
    ],
)
def test_bad_input_is_refused(tmp_path, labels, kwargs, message):
    with pytest.raises(InputError, match=message):
        write_f3grid(tmp_path / "bad.f3grid", labels, **kwargs)
    assert not any(tmp_path.iterdir())


def test_bad_f3dat_settings(tmp_path):
    with pytest.raises(InputError, match="MPa"):
        write_f3dat(
            tmp_path / "x.f3dat",
            tmp_path / "x.f3grid",
            group_names=["a"],
            confining_pressures_mpa=[-1],
        )
    with pytest.raises(InputError, match="group name"):
        write_f3dat(tmp_path / "x.f3dat", tmp_path / "x.f3grid", group_names=[])


def test_the_export_checks_the_pressures_before_the_grid(tmp_path):
    """The Export widget's and File > Save's writer: bad confining pressures leave no file behind."""
    from napari_dmcr.widgets._writers import export_layer_data

    labels = np.zeros((4, 4, 4), np.uint8)
    labels[:2] = 1
    with pytest.raises(InputError, match="MPa"):
        export_layer_data(
            tmp_path / "core.f3grid", labels, voxel_size=1.0, parameters={}, flac3d={"confining_pressures_mpa": [-1]}
        )
    assert not any(tmp_path.iterdir())
