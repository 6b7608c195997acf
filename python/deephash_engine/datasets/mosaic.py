"""Multi-label data from a single-label pool: seeded 2 x 2 mosaics of its images.

A mosaic is four source images tiled two by two (slot 0 top left, 1 top right, 2 bottom left,
3 bottom right); its labels are the set of classes of the four tiles, as a multi-hot row. Only
the tile table is stored, (m, 4) rows of the source pool; the pixels are assembled on demand
(:meth:`MosaicPool.mosaics`), so 20,000 mosaics cost 640 KB besides the source images.

Construction of ``n`` mosaics from the candidate rows of one part of the pool, vectorised, with
one NumPy generator:

1. the number of distinct classes ``k`` of each mosaic, drawn from ``class_count_probs``
   (P(k = 1), ..., P(k = 4));
2. the ``k`` classes, a uniform random subset of the classes (the first ``k`` of a random
   permutation per mosaic);
3. the class of each slot: slots 0 .. k-1 take the ``k`` classes, the others a uniform pick among
   them (so every chosen class is shown), then the four slots are shuffled;
4. the source image of each tile: the candidates of each class in a seeded random order, handed
   out in turn, round robin, to the tiles of that class in mosaic order. Every candidate is used
   before any is used again, and two tiles of one mosaic are different images whenever the class
   has two or more candidates.

The protocol built on it (``fashion-mnist-mosaic``) is described in docs/protocols.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from .pools import LabelledArrays

#: P(k distinct classes in a mosaic) for k = 1, 2, 3, 4: 2.0 classes per mosaic on average.
CLASS_COUNT_PROBS = (0.4, 0.3, 0.2, 0.1)
#: The part of the pool a mosaic's tiles come from (``MosaicPool.part``).
DATABASE_PART, QUERY_PART = 0, 1
#: Added to the seed so the mosaics and the protocol split (seeded with ``seed`` alone) come
#: from different generator streams.
_STREAM = 1


@dataclass
class MosaicPool:
    """Mosaics as a tile table over ``source`` images, with multi-hot ``targets``.

    ``source`` is uint8 (n, h, w); ``tiles`` int64 (m, 4) rows of ``source``; ``targets`` float32
    (m, C); ``part`` int64 (m,): :data:`DATABASE_PART` for mosaics built from the source's
    training images, :data:`QUERY_PART` for those built from its test images.
    """

    source: np.ndarray
    tiles: np.ndarray
    targets: np.ndarray
    part: np.ndarray

    @property
    def image_size(self) -> int:
        return 2 * int(self.source.shape[1])

    def __len__(self) -> int:
        return int(self.tiles.shape[0])

    def mosaics(self, rows: Optional[np.ndarray] = None) -> np.ndarray:
        """uint8 (len(rows), 2h, 2w): the mosaics ``rows`` (all when None), assembled now."""
        tiles = self.tiles if rows is None else self.tiles[np.asarray(rows, dtype=np.int64)]
        return tile_2x2(self.source, tiles)


def tile_2x2(source: np.ndarray, tiles: np.ndarray) -> np.ndarray:
    """(n, 2h, 2w) images: row i tiles ``source[tiles[i]]`` in the order TL, TR, BL, BR."""
    if tiles.ndim != 2 or tiles.shape[1] != 4:
        raise ValueError(f"tiles: expected (n, 4), got {tiles.shape}")
    if source.ndim != 3:
        raise ValueError(f"source: expected grey images (n, h, w), got {source.shape}")
    n, (h, w) = tiles.shape[0], source.shape[1:]
    grid = source[tiles].reshape(n, 2, 2, h, w)  # (mosaic, tile row, tile column, y, x)
    return np.ascontiguousarray(grid.transpose(0, 1, 3, 2, 4).reshape(n, 2 * h, 2 * w))


def single_labels(targets: np.ndarray) -> np.ndarray:
    """int64 class of each one-hot row; raises when a row has not exactly one label."""
    per_row = (targets > 0).sum(axis=1)
    if (per_row != 1).any():
        bad = int(np.flatnonzero(per_row != 1)[0])
        raise ValueError(
            f"targets: expected one label per source image, got {int(per_row[bad])} in row {bad}"
        )
    return targets.argmax(axis=1).astype(np.int64)


def draw_slot_classes(n: int, num_classes: int, rng: np.random.Generator,
                      class_count_probs: Sequence[float] = CLASS_COUNT_PROBS) -> np.ndarray:
    """int64 (n, 4): the class shown in each slot of ``n`` mosaics (steps 1-3 above)."""
    probs = np.asarray(class_count_probs, dtype=np.float64)
    if probs.shape != (4,) or (probs < 0).any() or not np.isclose(probs.sum(), 1.0):
        raise ValueError(f"class_count_probs: expected 4 probabilities summing to 1, got {list(probs)}")
    most = int(np.flatnonzero(probs)[-1]) + 1
    if num_classes < most:
        raise ValueError(f"num_classes: expected >= {most} (mosaics with {most} classes), got {num_classes}")
    k = rng.choice(4, size=n, p=probs) + 1
    chosen = np.argsort(rng.random((n, num_classes)), axis=1)[:, :4]
    slot = np.arange(4)[None, :]
    repeat = np.floor(rng.random((n, 4)) * k[:, None]).astype(np.int64)
    pick = np.where(slot < k[:, None], slot, repeat)
    classes = np.take_along_axis(chosen, pick, axis=1)
    shuffle = np.argsort(rng.random((n, 4)), axis=1)
    return np.take_along_axis(classes, shuffle, axis=1)


def assign_items(slot_classes: np.ndarray, labels: np.ndarray, candidates: np.ndarray,
                 rng: np.random.Generator) -> np.ndarray:
    """int64 rows of the pool for each slot (step 4 above): per class, the candidates in a seeded
    order, dealt round robin to that class's tiles in mosaic order."""
    num_classes = int(max(labels.max(initial=0), slot_classes.max(initial=0))) + 1
    shuffled = candidates[rng.permutation(candidates.shape[0])]
    grouped = shuffled[np.argsort(labels[shuffled], kind="stable")]
    count = np.bincount(labels[grouped], minlength=num_classes)
    shown = np.unique(slot_classes)
    if (count[shown] == 0).any():
        raise ValueError(f"candidates: expected images of class {int(shown[count[shown] == 0][0])}, got none")
    start = np.concatenate([[0], np.cumsum(count)[:-1]])
    flat = slot_classes.ravel()
    order = np.argsort(flat, kind="stable")
    tiles_per_class = np.bincount(flat, minlength=num_classes)
    first_tile = np.concatenate([[0], np.cumsum(tiles_per_class)[:-1]])
    turn = np.empty_like(flat)
    turn[order] = np.arange(flat.shape[0]) - first_tile[flat[order]]
    return grouped[start[flat] + turn % count[flat]].reshape(slot_classes.shape)


def multi_hot(slot_classes: np.ndarray, num_classes: int) -> np.ndarray:
    """float32 (n, num_classes): 1 for each class shown in a mosaic."""
    out = np.zeros((slot_classes.shape[0], num_classes), dtype=np.float32)
    out[np.arange(slot_classes.shape[0])[:, None], slot_classes] = 1.0
    return out


def build_mosaic_pool(pool: LabelledArrays, seed: int, database: int = 20_000, query: int = 1_000,
                      class_count_probs: Sequence[float] = CLASS_COUNT_PROBS) -> MosaicPool:
    """``database`` mosaics from the pool's training images, then ``query`` mosaics from its test
    images, drawn from ``numpy.random.default_rng([seed, 1])``: the same arrays for the same seed
    and pool. No source image is in both a query and a database mosaic."""
    if pool.images.ndim != 3:
        raise ValueError(f"pool.images: expected grey images (n, h, w), got {pool.images.shape}")
    for name, value in (("database", database), ("query", query)):
        if type(value) is not int or value < 1:
            raise ValueError(f"{name}: expected an int >= 1, got {value!r}")
    labels = single_labels(pool.targets)
    rng = np.random.default_rng([int(seed), _STREAM])
    tiles, classes = [], []
    for n, from_train in ((database, True), (query, False)):
        candidates = np.flatnonzero(pool.official_train == from_train)
        slot_classes = draw_slot_classes(n, pool.num_classes, rng, class_count_probs)
        tiles.append(assign_items(slot_classes, labels, candidates, rng))
        classes.append(slot_classes)
    part = np.repeat(np.array([DATABASE_PART, QUERY_PART], dtype=np.int64), [database, query])
    targets = multi_hot(np.concatenate(classes), pool.num_classes)
    return MosaicPool(pool.images, np.concatenate(tiles), targets, part)
