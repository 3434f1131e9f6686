import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
DATA = SHARED / "data"
VGG19_WEIGHTS = SHARED / "weights" / "vgg19_normalized.npz"

# The project never depends on ../shared at run time; the tests point the weight loader at it.
if "NAPARI_DMCR_VGG19_WEIGHTS" not in os.environ and VGG19_WEIGHTS.exists():
    os.environ["NAPARI_DMCR_VGG19_WEIGHTS"] = str(VGG19_WEIGHTS)


@pytest.fixture
def shared_data():
    """Folder of the real microstructure images (see ../shared/data/README.md)."""
    if not DATA.exists():
        pytest.skip("../shared/data is not present")
    return DATA


@pytest.fixture
def vgg19_weights():
    if not VGG19_WEIGHTS.exists():
        pytest.skip("../shared/weights/vgg19_normalized.npz is not present")
    return VGG19_WEIGHTS
