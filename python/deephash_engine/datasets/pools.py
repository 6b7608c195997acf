"""Readers for the raw labelled datasets, each returning a :class:`LabelledArrays` pool (never
downloads), and the registry of pool readers the deep-hashing protocols draw from.

- Fashion-MNIST: through :func:`.fashion_mnist.load_fashion_mnist` (root argument,
  ``DEEPHASH_FASHION_MNIST``, or the Debian package folder).
- MNIST: the four IDX files (``.gz`` or plain) in a folder, or ``DEEPHASH_MNIST``.
- CIFAR-10: the python pickle folder ``cifar-10-batches-py`` (``data_batch_1..5``, ``test_batch``).
- Image lists: ``relative/path.jpg 0 1 0 ...`` lines (HashNet / DeepHash-pytorch format).

A pool holds the images of the train part first and the test part after, so protocols can refer
to "the official training set" as ``pool.official_train``.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from .fashion_mnist import load_fashion_mnist
from .idx import read_idx

#: Source name -> ``reader(root) -> LabelledArrays``; a protocol names its source here.
POOLS: dict[str, Callable[..., "LabelledArrays"]] = {}

#: Per-channel mean and std of each source's training images (inputs are scaled to [0, 1] first);
#: ``image-list`` (files read by path) uses the ImageNet statistics.
NORMALIZATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "image-list": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


def register_pool(name: str, mean: tuple[float, ...], std: tuple[float, ...]):
    """Decorator: register ``reader(root)`` as the pool reader of source ``name``, whose images
    have per-channel ``mean`` and ``std`` (after scaling to [0, 1])."""

    def register(reader):
        POOLS[name] = reader
        NORMALIZATION[name] = (tuple(mean), tuple(std))
        return reader

    return register


@dataclass
class LabelledArrays:
    """Images as uint8 (n, H, W) or (n, H, W, C), targets as float32 (n, classes) multi-hot.

    ``official_train`` marks the rows that came from the source's training part.
    """

    images: np.ndarray
    targets: np.ndarray
    official_train: np.ndarray

    def __post_init__(self) -> None:
        n = self.images.shape[0]
        if self.targets.shape[0] != n or self.official_train.shape != (n,):
            raise ValueError(
                f"targets/official_train: expected {n} rows, got {self.targets.shape[0]} "
                f"and {self.official_train.shape}"
            )

    @property
    def num_classes(self) -> int:
        return int(self.targets.shape[1])

    def __len__(self) -> int:
        return int(self.images.shape[0])


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"labels: expected values in [0, {num_classes}), got [{labels.min()}, {labels.max()}]"
        )
    out = np.zeros((labels.shape[0], num_classes), dtype=np.float32)
    out[np.arange(labels.shape[0]), labels] = 1.0
    return out


def _pool(train_x, train_y, test_x, test_y, num_classes: int) -> LabelledArrays:
    images = np.concatenate([train_x, test_x])
    targets = one_hot(np.concatenate([train_y, test_y]), num_classes)
    official = np.zeros(images.shape[0], dtype=bool)
    official[: train_x.shape[0]] = True
    return LabelledArrays(images, targets, official)


@register_pool("fashion-mnist", (0.2860,), (0.3530,))
def load_fashion_mnist_pool(root: Optional[str | os.PathLike] = None) -> LabelledArrays:
    d = load_fashion_mnist(root)
    return _pool(d.train_images, d.train_labels, d.test_images, d.test_labels, 10)


MNIST_ENV_VAR = "DEEPHASH_MNIST"
_MNIST_FILES = (
    "train-images-idx3-ubyte", "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
)


@register_pool("mnist", (0.1307,), (0.3081,))
def load_mnist_pool(root: Optional[str | os.PathLike] = None) -> LabelledArrays:
    folder = root if root is not None else os.environ.get(MNIST_ENV_VAR)
    if folder is None:
        raise FileNotFoundError(f"root: expected the MNIST IDX folder (or ${MNIST_ENV_VAR}), got None")
    arrays = []
    for stem in _MNIST_FILES:
        for name in (stem + ".gz", stem):
            if (Path(folder) / name).is_file():
                arrays.append(read_idx(Path(folder) / name))
                break
        else:
            raise FileNotFoundError(f"root: expected {stem}[.gz] in {folder}, not found")
    return _pool(arrays[0], arrays[1], arrays[2], arrays[3], 10)


@register_pool("cifar10", (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
def load_cifar10_pool(root: Optional[str | os.PathLike]) -> LabelledArrays:
    """CIFAR-10 from the python pickle folder; images as uint8 (n, 32, 32, 3)."""
    if root is None:
        raise FileNotFoundError("root: expected the cifar-10-batches-py folder, got None")
    folder = Path(root)

    def read(name):
        path = folder / name
        if not path.is_file():
            raise FileNotFoundError(f"root: expected {name} in {folder} (cifar-10-batches-py), not found")
        with open(path, "rb") as fh:
            batch = pickle.load(fh, encoding="bytes")
        x = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        return np.ascontiguousarray(x), np.asarray(batch[b"labels"], dtype=np.int64)

    parts = [read(f"data_batch_{i}") for i in range(1, 6)]
    tx, ty = read("test_batch")
    return _pool(
        np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), tx, ty, 10
    )


@dataclass
class ImageList:
    """Paths (relative to ``root``) and their multi-hot label vectors from a list file."""

    root: Path
    paths: list[str]
    targets: np.ndarray


def read_image_list(list_file: str | os.PathLike, root: Optional[str | os.PathLike] = None) -> ImageList:
    """Parse ``path l1 l2 ... lC`` lines; every line must have the same number of labels."""
    list_file = Path(list_file)
    paths, rows = [], []
    with open(list_file, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) < 2:
                raise ValueError(f"{list_file}:{lineno}: expected 'path label...', got {line.strip()!r}")
            try:
                labels = [float(v) for v in fields[1:]]
            except ValueError:
                raise ValueError(
                    f"{list_file}:{lineno}: expected numeric labels, got {fields[1:]!r}"
                ) from None
            if rows and len(labels) != len(rows[0]):
                raise ValueError(
                    f"{list_file}:{lineno}: expected {len(rows[0])} labels, got {len(labels)}"
                )
            paths.append(fields[0])
            rows.append(labels)
    if not paths:
        raise ValueError(f"list_file: {list_file} holds no entries")
    root = Path(root) if root is not None else list_file.parent
    return ImageList(root, paths, np.asarray(rows, dtype=np.float32))
