"""Named retrieval protocols: which samples train, validate, query and form the database.

Every split is drawn from a seeded ``numpy.random.Generator``, checked against the protocol's
exact counts, and saved next to the run (:meth:`Split.save`) so the same split can be reused.
The validation split is always carved out of the training samples; the query set is never used
to choose a checkpoint.

=================  =======  =====  ======  ========  ====  =========================================
protocol           query    train  val     database  mAP@  source of each part
=================  =======  =====  ======  ========  ====  =========================================
fashion-mnist      1,000    59,000 1,000   60,000    all   query 100/class from test; val 100/class
                                                            from train; database = all 60k train
fashion-mnist-mini 500      2,000  500     5,000     all   query 50/class from test; train 200 and
                                                            val 50/class, database 500/class, train
mnist              1,000    59,000 1,000   60,000    all   as fashion-mnist
cifar10            1,000    4,500  500     59,000    all   "59k": query 100/class, train 500/class
                                                            (val 50/class of it) from all 60k;
                                                            database = all but query
cifar10-1          1,000    4,500  500     54,000    all   "54k": as cifar10, database excludes
                                                            query and train
cifar10-2          10,000   49,000 1,000   50,000    1000  "50k database": query = test set,
                                                            database = train set, val 100/class
nus-wide-21        2,100    9,450  1,050   n - 2,100 5000  one list; query 100/class, train
                                                            500/class by first open label quota
imagenet-100       5,000    12,000 1,000   128,503   1000  lists train/test/database (HashNet);
                                                            val 10/class of train
coco               5,000    9,500  500     listed    5000  lists train/test/database; val random
fashion-mnist-     1,000    4,500  500     20,000    all   2 x 2 mosaics (docs/protocols.md): query
mosaic                                                      from test items, database from train
                                                            items; train + val 5,000 of database
=================  =======  =====  ======  ========  ====  =========================================

A derived protocol (``derive`` set) first turns its source pool into a new one, seeded with the
run's seed: ``fashion-mnist-mosaic`` builds multi-label mosaics of Fashion-MNIST images.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..._atomic import atomic_write, atomic_write_text
from ...datasets.mosaic import build_mosaic_pool

SPLIT_FORMAT_VERSION = 1
PARTS = ("train", "val", "query", "database")


@dataclass
class Split:
    """Index arrays into a pool for each part, plus where they came from."""

    protocol: str
    seed: int
    pool_size: int
    train: np.ndarray
    val: np.ndarray
    query: np.ndarray
    database: np.ndarray
    topk: Optional[int] = None

    def counts(self) -> dict[str, int]:
        return {name: int(getattr(self, name).shape[0]) for name in PARTS}

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``path`` (.npz); a readable ``.json`` summary is written beside it."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {
            "format_version": SPLIT_FORMAT_VERSION, "protocol": self.protocol, "seed": self.seed,
            "pool_size": self.pool_size, "topk": self.topk, "counts": self.counts(),
        }
        with atomic_write(path) as fh:
            np.savez(fh, meta=np.array(json.dumps(meta)), **{n: getattr(self, n) for n in PARTS})
        atomic_write_text(path.with_suffix(".json"), json.dumps(meta, indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, pool_size: Optional[int] = None) -> "Split":
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("format_version") != SPLIT_FORMAT_VERSION:
                raise ValueError(
                    f"{path}: expected split format {SPLIT_FORMAT_VERSION}, got {meta.get('format_version')}"
                )
            arrays = {n: z[n].astype(np.int64) for n in PARTS}
        if pool_size is not None and meta["pool_size"] != pool_size:
            raise ValueError(
                f"{path}: split made for a pool of {meta['pool_size']} samples, this pool has {pool_size}"
            )
        return cls(meta["protocol"], meta["seed"], meta["pool_size"], topk=meta["topk"], **arrays)


@dataclass(frozen=True)
class Protocol:
    name: str
    source: str  # fashion-mnist | mnist | cifar10 | image-list
    counts: dict  # expected counts per part; None where the data decides
    topk: Optional[int]
    make: Callable[[np.ndarray, np.ndarray, np.random.Generator], dict] = field(repr=False)
    #: ``derive(pool, seed) -> pool``: builds the items the split indexes from the source pool
    #: (the mosaics of ``fashion-mnist-mosaic``); None for protocols over the source itself.
    derive: Optional[Callable] = field(default=None, repr=False)

    def split(self, targets: np.ndarray, part: np.ndarray, seed: int) -> Split:
        """Draw the split for a pool with ``targets`` (n, C) and ``part`` labels (n,)."""
        rng = np.random.default_rng(seed)
        parts = self.make(np.asarray(targets), np.asarray(part), rng)
        split = Split(self.name, int(seed), int(len(part)), topk=self.topk, **parts)
        for name, expected in self.counts.items():
            got = split.counts()[name]
            if expected is not None and got != expected:
                raise ValueError(
                    f"protocol {self.name}: expected {expected} {name} samples, got {got} "
                    f"(is the pool the full dataset?)"
                )
        return split


def stratified_pick(
    labels: np.ndarray, candidates: np.ndarray, per_class: int, rng: np.random.Generator,
    taken: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Pick ``per_class`` rows of ``candidates`` for each class, each row counted for the first
    of its labels whose quota is still open (the NUS-WIDE rule; plain per-class sampling for
    single-label data). Raises when a class has too few rows."""
    order = candidates[rng.permutation(candidates.shape[0])]
    if taken is not None:
        order = order[~taken[order]]
    quota = np.full(labels.shape[1], per_class, dtype=np.int64)
    picked = []
    for row in order:
        classes = np.flatnonzero(labels[row] > 0)
        open_classes = classes[quota[classes] > 0]
        if open_classes.size:
            quota[open_classes[0]] -= 1
            picked.append(row)
            if not quota.any():
                break
    if quota.any():
        short = int(np.flatnonzero(quota)[0])
        raise ValueError(
            f"per_class: expected {per_class} samples of class {short}, only "
            f"{per_class - int(quota[short])} available"
        )
    return np.sort(np.asarray(picked, dtype=np.int64))


def _official(query_per_class: Optional[int], val_per_class: int, db_per_class=None, train_per_class=None):
    """Query from the official test part (per class, or all of it); train, val and database
    from the official train part."""

    def make(targets, part, rng):
        train_pool = np.flatnonzero(part == 0)
        test_pool = np.flatnonzero(part == 1)
        query = test_pool if query_per_class is None else stratified_pick(targets, test_pool, query_per_class, rng)
        if db_per_class is None:
            database = train_pool
        else:
            database = stratified_pick(targets, train_pool, db_per_class, rng)
        source = database if train_per_class is not None else train_pool
        taken = np.zeros(len(part), dtype=bool)
        val = stratified_pick(targets, source, val_per_class, rng)
        taken[val] = True
        if train_per_class is None:
            train = source[~taken[source]]
        else:
            train = stratified_pick(targets, source, train_per_class, rng, taken=taken)
        return {"train": train, "val": val, "query": query, "database": database}

    return make


def _from_all(query_per_class: int, train_per_class: int, val_per_class: int, exclude_train: bool):
    """Query and train drawn per class from the whole pool (CIFAR-10 59k/54k, NUS-WIDE-21);
    the database is everything but the query (and but the train samples with exclude_train)."""

    def make(targets, part, rng):
        everything = np.arange(len(part))
        query = stratified_pick(targets, everything, query_per_class, rng)
        taken = np.zeros(len(part), dtype=bool)
        taken[query] = True
        train_all = stratified_pick(targets, everything, train_per_class, rng, taken=taken)
        val = stratified_pick(targets, train_all, val_per_class, rng)
        in_val = np.zeros(len(part), dtype=bool)
        in_val[val] = True
        if exclude_train:
            taken[train_all] = True
        return {"train": train_all[~in_val[train_all]], "val": val, "query": query,
                "database": everything[~taken]}

    return make


def _lists(val_per_class: Optional[int], val_random: int):
    """Parts from three list files: 0 = train, 1 = query (test), 2 = database."""

    def make(targets, part, rng):
        train_all = np.flatnonzero(part == 0)
        if val_per_class is not None:
            val = stratified_pick(targets, train_all, val_per_class, rng)
        else:
            val = np.sort(rng.choice(train_all, size=val_random, replace=False))
        in_val = np.zeros(len(part), dtype=bool)
        in_val[val] = True
        return {"train": train_all[~in_val[train_all]], "val": val,
                "query": np.flatnonzero(part == 1), "database": np.flatnonzero(part == 2)}

    return make


def _database_and_queries(train_total: int, val: int):
    """Part 0 is the database, part 1 the queries; train (with val carved out at random) is a
    random subset of the database, as the training images of NUS-WIDE are."""

    def make(targets, part, rng):
        database = np.flatnonzero(part == 0)
        train_all = np.sort(rng.choice(database, size=train_total, replace=False))
        val_rows = np.sort(rng.choice(train_all, size=val, replace=False))
        return {"train": np.setdiff1d(train_all, val_rows), "val": val_rows,
                "query": np.flatnonzero(part == 1), "database": database}

    return make


#: Protocol name -> protocol, filled by :func:`register_protocol` (the built-in ones below; a
#: protocol defined in another module is registered when that module is imported).
PROTOCOLS: dict[str, Protocol] = {}


def register_protocol(protocol: Protocol) -> Protocol:
    """Make ``protocol`` available by name (run configs, ``deephash train --dataset``)."""
    PROTOCOLS[protocol.name] = protocol
    return protocol


for _protocol in [
    Protocol("fashion-mnist", "fashion-mnist",
             {"query": 1000, "train": 59000, "val": 1000, "database": 60000}, None,
             _official(100, 100)),
    Protocol("fashion-mnist-mini", "fashion-mnist",
             {"query": 500, "train": 2000, "val": 500, "database": 5000}, None,
             _official(50, 50, db_per_class=500, train_per_class=200)),
    Protocol("mnist", "mnist",
             {"query": 1000, "train": 59000, "val": 1000, "database": 60000}, None,
             _official(100, 100)),
    Protocol("cifar10", "cifar10",
             {"query": 1000, "train": 4500, "val": 500, "database": 59000}, None,
             _from_all(100, 500, 50, False)),
    Protocol("cifar10-1", "cifar10",
             {"query": 1000, "train": 4500, "val": 500, "database": 54000}, None,
             _from_all(100, 500, 50, True)),
    Protocol("cifar10-2", "cifar10",
             {"query": 10000, "train": 49000, "val": 1000, "database": 50000}, 1000,
             _official(None, 100)),
    Protocol("nus-wide-21", "image-list",
             {"query": 2100, "train": 9450, "val": 1050, "database": None}, 5000,
             _from_all(100, 500, 50, False)),
    Protocol("imagenet-100", "image-list",
             {"query": 5000, "train": 12000, "val": 1000, "database": 128503}, 1000,
             _lists(10, 0)),
    Protocol("coco", "image-list",
             {"query": 5000, "train": 9500, "val": 500, "database": None}, 5000,
             _lists(None, 500)),
    Protocol("fashion-mnist-mosaic", "fashion-mnist",
             {"query": 1000, "train": 4500, "val": 500, "database": 20000}, None,
             _database_and_queries(5000, 500), derive=build_mosaic_pool),
]:
    register_protocol(_protocol)


def get_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise KeyError(f"protocol: expected one of {sorted(PROTOCOLS)}, got {name!r}")
    return PROTOCOLS[name]
