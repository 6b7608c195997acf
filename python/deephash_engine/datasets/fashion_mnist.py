"""Fashion-MNIST as NumPy arrays, from a local folder of the four IDX files.

The folder is, in order of precedence: the ``root`` argument, the ``DEEPHASH_FASHION_MNIST``
environment variable, then the Debian package location (``apt-get install dataset-fashion-mnist``).
Nothing is ever downloaded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .idx import read_idx

ENV_VAR = "DEEPHASH_FASHION_MNIST"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


@dataclass(frozen=True)
class FashionMNIST:
    """The four arrays: images are uint8 (n, 28, 28), labels int64 (n,)."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


def fashion_mnist_dir(root: str | os.PathLike | None = None) -> Path | None:
    """The folder that holds Fashion-MNIST, or None when no candidate has the files."""
    candidates = [Path(root)] if root is not None else []
    if root is None and os.environ.get(ENV_VAR):
        candidates.append(Path(os.environ[ENV_VAR]))
    if root is None:
        candidates.append(DEBIAN_DIR)
    for folder in candidates:
        if all(_find(folder, name) is not None for name in _FILES.values()):
            return folder
    return None


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def load_fashion_mnist(root: str | os.PathLike | None = None) -> FashionMNIST:
    """Load Fashion-MNIST; raises ``FileNotFoundError`` naming the folders tried when absent."""
    folder = fashion_mnist_dir(root)
    if folder is None:
        tried = [str(root)] if root is not None else [f"${ENV_VAR}", str(DEBIAN_DIR)]
        raise FileNotFoundError(
            "Fashion-MNIST not found (looked in " + ", ".join(tried) + "); install it with "
            "'apt-get install dataset-fashion-mnist' or pass root=/path/to/the/idx/files"
        )
    arrays = {key: read_idx(_find(folder, stem)) for key, stem in _FILES.items()}
    for key in ("train_labels", "test_labels"):
        arrays[key] = arrays[key].astype(np.int64)
    return FashionMNIST(**arrays)
