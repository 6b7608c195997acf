"""Datasets that yield ``(input, target, index)``; ``index`` is the position inside the dataset,
so losses with per-sample state (memory banks, discrete codes) can address it directly.

Array datasets (Fashion-MNIST, MNIST, CIFAR-10) and mosaic datasets (assembled per batch from
a tile table) also answer whole batches through ``__getitems__``; use :func:`make_loader` to get
a ``DataLoader`` that takes that fast path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from ...datasets.mosaic import MosaicPool, tile_2x2
from ...datasets.pools import NORMALIZATION, POOLS, ImageList, read_image_list
from .protocols import Split, get_protocol


def _as_nchw_float(images: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(images)).float().div_(255.0)
    x = x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2)
    m = torch.tensor(mean).view(1, -1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1)
    if x.shape[1] != m.shape[1]:
        raise ValueError(f"images: expected {m.shape[1]} channels, got {x.shape[1]}")
    return (x - m) / s


class _BatchedDataset(Dataset):
    """A dataset that answers whole batches: a subclass gives the normalised NCHW inputs of rows
    ``idx`` (:meth:`_inputs`), ``targets`` and ``flip``; with ``flip`` each image of a batch is
    mirrored left-right with probability 1/2 (drawn from torch's global generator)."""

    batched = True

    def _inputs(self, idx: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __getitem__(self, i):
        x, t, idx = self.__getitems__([i])
        return x[0], t[0], idx[0]

    def __getitems__(self, indices):
        idx = torch.as_tensor(indices, dtype=torch.int64)
        x = self._inputs(idx)
        if self.flip:
            mirror = torch.rand(idx.shape[0]) < 0.5
            x = torch.where(mirror.view(-1, 1, 1, 1), x.flip(3), x)
        return x, self.targets[idx], idx


class ArrayHashingDataset(_BatchedDataset):
    """In-memory images (uint8, (n, H, W) or (n, H, W, C)) with float multi-hot targets.

    ``flip=True`` mirrors each image left-right with probability 1/2 (drawn from torch's global
    generator, which the trainer seeds).
    """

    def __init__(self, images: np.ndarray, targets: np.ndarray, mean, std, flip: bool = False) -> None:
        if images.dtype != np.uint8:
            raise TypeError(f"images: expected uint8, got {images.dtype}")
        if targets.shape[0] != images.shape[0]:
            raise ValueError(f"targets: expected {images.shape[0]} rows, got {targets.shape[0]}")
        self.inputs = _as_nchw_float(images, mean, std)
        self.targets = torch.from_numpy(np.ascontiguousarray(targets, dtype=np.float32))
        self.flip = flip

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def subset(self, indices) -> "ArrayHashingDataset":
        """The rows ``indices`` as a dataset of their own (indices renumbered from 0)."""
        idx = torch.as_tensor(np.asarray(indices), dtype=torch.int64)
        out = ArrayHashingDataset.__new__(ArrayHashingDataset)
        out.inputs, out.targets, out.flip = self.inputs[idx], self.targets[idx], False
        return out

    def _inputs(self, idx: torch.Tensor) -> torch.Tensor:
        return self.inputs[idx]


class MosaicHashingDataset(_BatchedDataset):
    """The mosaics ``rows`` of a :class:`~deephash_engine.datasets.mosaic.MosaicPool`, assembled
    and normalised per batch: memory holds the source images once and four ints per mosaic.

    ``flip=True`` mirrors a whole mosaic left-right with probability 1/2 (its label set is
    unchanged).
    """

    def __init__(self, pool: MosaicPool, rows, mean, std, flip: bool = False) -> None:
        rows = np.asarray(rows, dtype=np.int64)
        self.source = pool.source
        self.tiles = np.ascontiguousarray(pool.tiles[rows])
        self.targets = torch.from_numpy(np.ascontiguousarray(pool.targets[rows], dtype=np.float32))
        self.mean, self.std, self.flip = tuple(mean), tuple(std), flip

    def __len__(self) -> int:
        return int(self.tiles.shape[0])

    def subset(self, indices) -> "MosaicHashingDataset":
        """The mosaics ``indices`` as a dataset of their own (indices renumbered from 0)."""
        idx = np.asarray(indices, dtype=np.int64)
        out = MosaicHashingDataset.__new__(MosaicHashingDataset)
        out.__dict__.update(self.__dict__)
        out.tiles, out.targets, out.flip = self.tiles[idx], self.targets[torch.from_numpy(idx)], False
        return out

    def _inputs(self, idx: torch.Tensor) -> torch.Tensor:
        return _as_nchw_float(tile_2x2(self.source, self.tiles[idx.numpy()]), self.mean, self.std)


class ImageListHashingDataset(Dataset):
    """Images read from disk by path (needs Pillow): resize the short side to ``resize``, then
    a centre crop of ``crop`` (or, with ``train=True``, a random crop and a random mirror)."""

    batched = False

    def __init__(self, image_list: ImageList, indices: np.ndarray, resize: int = 256,
                 crop: int = 224, train: bool = False) -> None:
        try:
            from PIL import Image  # noqa: F401
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("image-list datasets need Pillow: pip install pillow") from exc
        if crop > resize:
            raise ValueError(f"crop: expected <= resize ({resize}), got {crop}")
        self.root = Path(image_list.root)
        self.paths = [image_list.paths[i] for i in indices]
        self.targets = torch.from_numpy(image_list.targets[indices])
        self.resize, self.crop, self.train = resize, crop, train
        mean, std = NORMALIZATION["image-list"]
        self.mean = torch.tensor(mean).view(-1, 1, 1)
        self.std = torch.tensor(std).view(-1, 1, 1)

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, indices) -> "ImageListHashingDataset":
        """The items ``indices`` as a dataset of their own, read without augmentation."""
        out = ImageListHashingDataset.__new__(ImageListHashingDataset)
        out.__dict__.update(self.__dict__)
        out.paths = [self.paths[i] for i in indices]
        out.targets = self.targets[torch.as_tensor(np.asarray(indices), dtype=torch.int64)]
        out.train = False
        return out

    def __getitem__(self, i):
        from PIL import Image

        with Image.open(self.root / self.paths[i]) as img:
            img = img.convert("RGB")
            w, h = img.size
            scale = self.resize / min(w, h)
            img = img.resize((max(self.crop, round(w * scale)), max(self.crop, round(h * scale))))
            w, h = img.size
            if self.train:
                left = int(torch.randint(0, w - self.crop + 1, ()))
                top = int(torch.randint(0, h - self.crop + 1, ()))
            else:
                left, top = (w - self.crop) // 2, (h - self.crop) // 2
            img = img.crop((left, top, left + self.crop, top + self.crop))
            x = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).float() / 255.0
        if self.train and bool(torch.rand(()) < 0.5):
            x = x.flip(2)
        return (x - self.mean) / self.std, self.targets[i], torch.tensor(i, dtype=torch.int64)


def _identity_collate(batch):
    return batch


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool, seed: int = 0,
                num_workers: int = 0, drop_last: bool = False) -> DataLoader:
    """A DataLoader whose shuffling comes from its own seeded generator."""
    if batch_size <= 0:
        raise ValueError(f"batch_size: expected > 0, got {batch_size}")
    gen = torch.Generator().manual_seed(seed)
    inner = dataset.dataset if isinstance(dataset, Subset) else dataset  # Subset passes batches on
    if getattr(inner, "batched", False):
        return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=gen,
                          collate_fn=_identity_collate, drop_last=drop_last)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=gen,
                      num_workers=num_workers, drop_last=drop_last)


def as_evaluated(dataset: Dataset) -> Dataset:
    """``dataset`` reading its items as evaluation does, without augmentation (its ``subset`` of
    every row), or ``dataset`` itself where it has no ``subset``."""
    subset = getattr(dataset, "subset", None)
    return subset(np.arange(len(dataset))) if callable(subset) else dataset


def dataset_targets(dataset: Dataset) -> torch.Tensor:
    """(n, n_classes) float labels of every item of ``dataset``, in dataset order."""
    targets = getattr(dataset, "targets", None)
    if isinstance(targets, torch.Tensor) and targets.dim() == 2 and targets.shape[0] == len(dataset):
        return targets.float()
    return torch.cat([t for _, t, _ in make_loader(dataset, 512, shuffle=False)]).float()


@dataclass
class ProtocolData:
    """The four datasets of a protocol, the split that made them, and facts the model needs."""

    train: Dataset
    val: Dataset
    query: Dataset
    database: Dataset
    split: Split
    num_classes: int
    in_channels: int
    image_size: int
    source: str


def _load_pool(source: str, root):
    if source not in POOLS:
        raise ValueError(f"source: expected one of {sorted(POOLS)} or image-list, got {source!r}")
    return POOLS[source](root)


def _read_lists(protocol: str, root, lists: Optional[dict]) -> tuple[ImageList, np.ndarray]:
    """One list (``{"all": file}``, NUS-WIDE) or three (``train``, ``query``/``test``,
    ``database``); returns the concatenated list and the part of each row."""
    if not lists:
        raise ValueError(f"lists: protocol {protocol} needs list files, got {lists!r}")
    if "all" in lists:
        order = [("all", 0)]
    else:
        query_key = "query" if "query" in lists else "test"
        missing = [k for k in ("train", query_key, "database") if k not in lists]
        if missing:
            raise ValueError(f"lists: expected train, query (or test) and database files, missing {missing}")
        order = [("train", 0), (query_key, 1), ("database", 2)]
    paths, targets, part, list_root = [], [], [], None
    for key, p in order:
        il = read_image_list(lists[key], root)
        list_root = il.root
        paths += il.paths
        targets.append(il.targets)
        part.append(np.full(len(il.paths), p, dtype=np.int64))
    if len({t.shape[1] for t in targets}) != 1:
        raise ValueError(f"lists: expected the same label width in every file, got {[t.shape[1] for t in targets]}")
    return ImageList(list_root, paths, np.concatenate(targets)), np.concatenate(part)


def load_protocol(
    name: str,
    seed: int = 0,
    root: Optional[str | os.PathLike] = None,
    lists: Optional[dict] = None,
    split_path: Optional[str | os.PathLike] = None,
    flip: bool = False,
) -> ProtocolData:
    """Build the four datasets of protocol ``name``.

    With ``split_path`` pointing at an existing file, that split is reused (and validated against
    the pool); otherwise a fresh split is drawn with ``seed`` (and saved there when given). A
    derived protocol (mosaics) rebuilds its items with the seed of the split it uses.
    """
    protocol = get_protocol(name)
    reuse = split_path is not None and Path(split_path).is_file()
    if protocol.source == "image-list":
        image_list, part = _read_lists(name, root, lists)
        targets = image_list.targets
    else:
        pool = _load_pool(protocol.source, root)
        if protocol.derive is not None:
            pool = protocol.derive(pool, Split.load(split_path).seed if reuse else seed)
        targets = pool.targets
        part = pool.part if isinstance(pool, MosaicPool) else np.where(pool.official_train, 0, 1)
    if reuse:
        split = Split.load(split_path, pool_size=len(part))
        if split.protocol != name:
            raise ValueError(f"split_path: holds protocol {split.protocol!r}, expected {name!r}")
    else:
        split = protocol.split(targets, part, seed)
        if split_path is not None:
            split.save(split_path)
    if protocol.source == "image-list":
        make = lambda idx, train: ImageListHashingDataset(image_list, idx, train=train)  # noqa: E731
        channels, size = 3, 224
    elif isinstance(pool, MosaicPool):
        mean, std = NORMALIZATION[protocol.source]
        make = lambda idx, train: MosaicHashingDataset(pool, idx, mean, std, flip=flip and train)  # noqa: E731
        channels, size = 1, pool.image_size
    else:
        mean, std = NORMALIZATION[protocol.source]
        make = lambda idx, train: ArrayHashingDataset(  # noqa: E731
            pool.images[idx], pool.targets[idx], mean, std, flip=flip and train)
        channels = 1 if pool.images.ndim == 3 else pool.images.shape[3]
        size = pool.images.shape[1]
    return ProtocolData(
        train=make(split.train, True), val=make(split.val, False),
        query=make(split.query, False), database=make(split.database, False),
        split=split, num_classes=int(targets.shape[1]), in_channels=int(channels),
        image_size=int(size), source=protocol.source,
    )
