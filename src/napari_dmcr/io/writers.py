"""Write labeled volumes as ``.npy``, multi-page ``.tif`` or VTK image (``.vti``) files; read them.

Every write is atomic (a temporary file renamed onto the target). The voxel size travels in the
file where the format has a place for it (ImageJ ``spacing`` and resolution in TIFF, ``Spacing``
in VTK) and in the sidecar JSON (``vol.npy`` -> ``vol.npy.json``, one per file) that records the
run's parameters and the file's SHA-256, so that a volume and its record can be told apart from
another run's.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from xml.etree import ElementTree

import numpy as np

from napari_dmcr.checks import positive_number
from napari_dmcr.errors import InputError
from napari_dmcr.io.atomic import atomic_path, write_json
from napari_dmcr.labels import check_labels

VOLUME_FORMATS = {".npy": "npy", ".tif": "tif", ".tiff": "tif", ".vti": "vti"}

_VTK_TYPES = {
    "int8": "Int8",
    "uint8": "UInt8",
    "int16": "Int16",
    "uint16": "UInt16",
    "int32": "Int32",
    "uint32": "UInt32",
    "int64": "Int64",
    "uint64": "UInt64",
    "float32": "Float32",
    "float64": "Float64",
}
_BASE64_CHUNK = 3 * (1 << 20)  # a multiple of 3 bytes, so chunks encode without padding


def sidecar_path(path):
    """The sidecar JSON of an output file: its name with ``.json`` added (``core.npy.json``)."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def file_sha256(path):
    """SHA-256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_output_path(path, *, overwrite=True, what="output"):
    """Check, before any work, that a file can be written to ``path`` (not a folder, in a folder
    that exists or can be made and is writable; an existing file or sidecar only with
    ``overwrite``). Returns ``path`` as a :class:`~pathlib.Path`."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give a file name such as {path / ('core' + (path.suffix or '.npy'))}")
    _check_writable_folder(path.parent, path, what)
    if not overwrite:
        for taken in (path, sidecar_path(path)):
            if taken.exists():
                raise InputError(f"{taken} exists; choose another {what}, or pass --overwrite to replace it")
    return path


def make_output_folder(path, *, what="output folder"):
    """Make the folder ``path`` (and its parents) before any work, or say why it cannot be:
    a file of that name, a parent that is a file, a folder that cannot be written."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"{path}: is a file; give a folder (it is made if missing), or move the file away")
    _check_writable_folder(path, path, what)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(
            f"{path}: cannot make this folder ({error.strerror or error}); choose another {what}"
        ) from None
    return path


def _check_writable_folder(folder, path, what):
    """The nearest existing folder of ``folder`` (missing ones are made when a file is written)
    must be a folder that can be written; errors name ``path``."""
    existing = Path(folder).absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(f"{path}: {existing} is a file, not a folder; choose another {what}")
    if not os.access(existing, os.W_OK):
        raise InputError(f"{path}: the folder {existing} cannot be written; choose another {what}")


def check_volume_output(path, voxel_size=1.0, *, overwrite=True):
    """Check, before any work, that a volume can be written to ``path``.

    Returns ``(path, format, voxel_size)``; raises :class:`InputError` for a suffix that is not a
    volume format, a path that is a folder, a parent that is a file or a folder that cannot be
    written, an existing file (unless ``overwrite``) or a voxel size that is not a positive number.

    Examples
    --------
    >>> check_volume_output("core.npy", 0.5)[1:]
    ('npy', 0.5)
    """
    path = Path(path)
    fmt = VOLUME_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(
            f"{path}: cannot write a volume as {path.suffix or 'a file without suffix'}; "
            f"use one of {', '.join(VOLUME_FORMATS)}"
        )
    check_output_path(path, overwrite=overwrite)
    return path, fmt, positive_number("voxel size", voxel_size)


def write_volume(path, labels, *, voxel_size=1.0, parameters=None, overwrite=True):
    """Write a labeled volume; the format follows the suffix of ``path``.

    Parameters
    ----------
    path : str or Path
        Output file: ``.npy``, ``.tif``/``.tiff`` (ImageJ multi-page, one page per z slice) or
        ``.vti`` (VTK XML image data, one cell per voxel, opens in ParaView).
    labels : ndarray
        Label volume (z, y, x) of non-negative integers; a 2D slice is written as one page.
    voxel_size : float, optional
        Edge length of a voxel in model units (stored in the TIFF and VTK metadata and sidecar).
    parameters : dict, optional
        The run's parameters. When given, the sidecar :func:`sidecar_path` is written beside the
        volume with these parameters plus ``voxel_size``, ``format`` and ``sha256`` (of the file).
    overwrite : bool, optional
        Replace an existing volume and sidecar. When False, they are written only if their names
        are still free when written (not only when checked before a run): a volume or sidecar
        that appeared meanwhile is kept and :class:`FileExistsError` is raised.

    Returns
    -------
    path : Path
        The written volume.
    """
    path, fmt, voxel_size = check_volume_output(path, voxel_size)
    labels = check_labels(labels)
    # The volume and its sidecar are written to temporary files and renamed together: a failure
    # leaves the previous pair (or nothing) in place, never a volume with another run's record.
    sidecar_written = False
    try:
        with atomic_path(path, overwrite=overwrite) as tmp:
            _write_format(tmp, fmt, labels, voxel_size)
            if parameters is not None:
                record = {**parameters, "voxel_size": voxel_size, "format": fmt, "sha256": file_sha256(tmp)}
                write_json(sidecar_path(path), record, overwrite=overwrite)
                sidecar_written = True
    except FileExistsError:
        if sidecar_written:  # the volume's name was taken after the sidecar's: no record of ours beside it
            sidecar_path(path).unlink(missing_ok=True)
        raise
    return path


def _write_format(path, fmt, labels, voxel_size):
    if fmt == "npy":
        with open(path, "wb") as handle:
            np.save(handle, labels, allow_pickle=False)
    elif fmt == "tif":
        _write_tiff(path, labels, voxel_size)
    else:
        write_vti(path, labels, voxel_size=voxel_size)


def read_volume(path):
    """Read a volume written by :func:`write_volume` (``.npy``, ``.tif``/``.tiff`` or ``.vti``).

    The array comes back exactly as written (dtype and values); use
    :func:`napari_dmcr.io.readers.read_image` to read and validate arbitrary label images.
    """
    path = Path(path)
    fmt = VOLUME_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(f"{path}: not a volume file; use one of {', '.join(VOLUME_FORMATS)}")
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if fmt == "vti":
        return read_vti(path)
    try:
        if fmt == "npy":
            return np.load(path, allow_pickle=False)
        import tifffile

        volume = tifffile.imread(path)
    except (ValueError, OSError, EOFError) as error:  # tifffile.TiffFileError is a ValueError
        raise InputError(f"{path.name}: cannot read this {fmt} volume ({error})") from None
    if volume.size == 0:
        raise InputError(f"{path.name}: the TIFF file holds no image")
    return volume


def read_voxel_size(path):
    """Voxel size stored with a volume: its metadata, else its sidecar JSON, else ``None``.

    Parameters
    ----------
    path : str or Path
        A volume file (``.tif``/``.tiff`` and ``.vti`` carry it; any file can have a sidecar).

    Returns
    -------
    voxel_size : float or None
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff"):
        import tifffile

        with tifffile.TiffFile(path) as tif:
            spacing = (tif.imagej_metadata or {}).get("spacing")
        if spacing is not None:
            return float(spacing)
    elif suffix == ".vti":
        image_data = _vti_image_data(path)
        return float(image_data.get("Spacing").split()[0])
    return read_sidecar(path).get("voxel_size")


def read_sidecar(path):
    """Parameters recorded beside a volume (``vol.npy`` -> ``vol.npy.json``), or ``{}`` if none."""
    sidecar = sidecar_path(path)
    if not sidecar.is_file():
        return {}
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"{sidecar}: not valid JSON ({error}); fix or remove it") from None
    if not isinstance(data, dict):
        raise InputError(f"{sidecar}: expected a JSON object of parameters")
    return data


def write_vti(path, volume, *, voxel_size=1.0, origin=(0.0, 0.0, 0.0), name="labels"):
    """Write a volume as VTK XML image data (``.vti``), one cell per voxel.

    The array is stored inline, base64-encoded with a UInt64 byte-count header (VTK's "binary"
    format), so the file is valid XML that ParaView and VTK open directly.

    Parameters
    ----------
    path : str or Path
        Output ``.vti`` file.
    volume : ndarray
        Volume (z, y, x); a 2D array is written as a single slice.
    voxel_size : float, optional
        Cell edge length (``Spacing``) in model units.
    origin : tuple of 3 float, optional
        Position (x, y, z) of the volume's corner.
    name : str, optional
        Name of the cell data array.
    """
    volume = np.asarray(volume)
    if volume.ndim == 2:
        volume = volume[np.newaxis]
    vtk_type = _VTK_TYPES.get(volume.dtype.name)
    if vtk_type is None:
        raise InputError(f"cannot write {volume.dtype} to VTK; convert to an integer or float type")
    data = np.ascontiguousarray(volume, dtype=volume.dtype.newbyteorder("<"))
    nz, ny, nx = data.shape
    spacing = " ".join([repr(float(voxel_size))] * 3)
    corner = " ".join(repr(float(value)) for value in origin)
    header = (
        '<?xml version="1.0"?>\n'
        '<VTKFile type="ImageData" version="1.0" byte_order="LittleEndian" header_type="UInt64">\n'
        f'  <ImageData WholeExtent="0 {nx} 0 {ny} 0 {nz}" '
        f'Origin="{corner}" Spacing="{spacing}">\n'
        f'    <Piece Extent="0 {nx} 0 {ny} 0 {nz}">\n'
        f'      <CellData Scalars="{name}">\n'
        f'        <DataArray type="{vtk_type}" Name="{name}" format="binary">\n'
    )
    footer = "\n        </DataArray>\n      </CellData>\n    </Piece>\n  </ImageData>\n</VTKFile>\n"
    # VTK x varies fastest, then y, then z: exactly the C order of a (z, y, x) array.
    payload = memoryview(data.reshape(-1).view(np.uint8))
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        handle.write(header.encode())
        pending = np.uint64(payload.nbytes).tobytes()
        for start in range(0, payload.nbytes, _BASE64_CHUNK):
            pending += payload[start : start + _BASE64_CHUNK].tobytes()
            usable = len(pending) - len(pending) % 3
            handle.write(base64.b64encode(pending[:usable]))
            pending = pending[usable:]
        handle.write(base64.b64encode(pending))
        handle.write(footer.encode())
    return Path(path)


def read_vti(path):
    """Read the (z, y, x) cell array of a ``.vti`` file written by :func:`write_vti`."""
    path = Path(path)
    image_data = _vti_image_data(path)
    array = image_data.find("Piece/CellData/DataArray")
    if array is None or array.get("format") != "binary":
        raise InputError(
            f"{path.name}: only inline binary cell data (as napari-dmcr writes it) can be read; "
            "save the volume from ParaView as .vti without compression or as .tif"
        )
    dtype = {v: k for k, v in _VTK_TYPES.items()}.get(array.get("type"))
    if dtype is None:
        raise InputError(f"{path.name}: unsupported VTK data type {array.get('type')}")
    raw = base64.b64decode("".join((array.text or "").split()))
    values = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<"), offset=8)
    x0, x1, y0, y1, z0, z1 = (int(v) for v in image_data.get("WholeExtent").split())
    shape = (z1 - z0, y1 - y0, x1 - x0)
    if values.size != int(np.prod(shape)):
        raise InputError(f"{path.name}: the data size does not match the extent {shape}")
    return values.reshape(shape).astype(np.dtype(dtype), copy=True)


def _vti_image_data(path):
    try:
        root = ElementTree.parse(path).getroot()
    except ElementTree.ParseError as error:
        raise InputError(f"{Path(path).name}: not a valid VTK XML file ({error})") from None
    image_data = root.find("ImageData")
    if root.get("type") != "ImageData" or image_data is None:
        raise InputError(f"{Path(path).name}: not a VTK image data (.vti) file")
    if root.get("compressor"):
        raise InputError(f"{Path(path).name}: compressed .vti files are not supported")
    if root.get("header_type", "UInt32") != "UInt64" or root.get("byte_order") != "LittleEndian":
        raise InputError(f"{Path(path).name}: only little-endian files with UInt64 headers are supported")
    return image_data


def _write_tiff(path, labels, voxel_size):
    import tifffile

    if labels.dtype not in (np.uint8, np.uint16):
        if labels.max() > np.iinfo(np.uint16).max:
            raise InputError("labels above 65535 cannot be written as an ImageJ TIFF; use .npy")
        labels = labels.astype(np.uint16)
    axes = "ZYX" if labels.ndim == 3 else "YX"
    with atomic_path(path) as tmp:
        tifffile.imwrite(
            tmp,
            labels,
            imagej=True,
            resolution=(1.0 / voxel_size, 1.0 / voxel_size),
            metadata={"spacing": voxel_size, "axes": axes},
        )
