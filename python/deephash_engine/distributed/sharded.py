"""ShardedIndex: codes split into shards by id hash or id range, each shard a FlatIndex or
MIHIndex held by one Ray actor and loaded memory-mapped from its shard file; searches fan out to
every shard and the answers are merged exactly by (distance, id), so the result equals one
FlatIndex over all codes, ties included.

Writes (add, add_with_ids, remove_ids) are routed to the owning shard (``id % nshards``, or the
shard whose id range holds the id: manifest.py) and made durable by :meth:`ShardedIndex.save`,
which writes new shard files and then the manifest (docs/scale.md). A shard actor that dies is restarted by Ray and reloads its shard file after
checking it against the manifest's checksum; a read-only job (search, bulk search, near
duplicates) therefore finishes with the same answer. Unsaved writes of a shard that dies are lost
(save first); a shard file that fails its checksum stops the job with ShardChecksumError naming the
shard. One process writes at a time (the driver that opened the index); searches may run from
several threads.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import numpy.typing as npt

from .. import bulk
from .._codes import check_padding, code_size_for, nbits_of
from .._core import FlatIndex, MIHIndex, load_index, set_num_threads
from .manifest import Manifest, ShardChecksumError, ShardEntry, file_sha256, range_starts, shard_file_name

MISSING_DISTANCE = np.iinfo(np.int32).max


def _ray():
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - ray is a dependency of the distributed extra
        raise ImportError("deephash_engine.distributed needs Ray: pip install 'deephash-engine[distributed]'") from exc
    return ray


class _Shard:
    """One shard in one Ray actor. Ray runs __init__ again when it restarts a dead actor."""

    def __init__(self, path: str, sha256: str, name: str, mmap: bool = True, threads: int = 0):
        if threads > 0:
            set_num_threads(threads)
        if not os.path.isfile(path):
            raise ShardChecksumError(f"shard {name}: file {path} is missing")
        if file_sha256(path) != sha256:
            raise ShardChecksumError(f"shard {name}: {path} does not match its checksum in the manifest")
        self.index = load_index(path, mmap=mmap)

    def ping(self) -> int:
        return os.getpid()

    def ntotal(self) -> int:
        return self.index.ntotal

    def search(self, queries, k):
        return self.index.search(queries, k)

    def range_search(self, queries, radius):
        return self.index.range_search(queries, radius)

    def any_present(self, ids) -> int:
        """One of these ids that the shard holds, or -1 (a filtered search does the lookup)."""
        if self.index.ntotal == 0 or len(ids) == 0:
            return -1
        _, found = self.index.search(np.zeros((1, self.index.code_size), np.uint8), 1, allow=ids)
        return int(found[0, 0])

    def add_with_ids(self, codes, ids) -> int:
        self.index.add_with_ids(codes, ids)
        return self.index.ntotal

    def remove_ids(self, ids) -> int:
        return self.index.remove_ids(ids)

    def contents(self, start: int, count: int):
        """Ids and codes of storage positions [start, start + count) (for near-duplicate joins)."""
        ids = self.index.ids()[start:start + count]
        return ids, self.index.reconstruct_batch(ids)

    def save(self, path: str) -> tuple[str, int, int, int]:
        """Writes the shard file; returns its sha256, item count and smallest and largest id."""
        self.index.save(path)
        ids = self.index.ids()
        return file_sha256(path), self.index.ntotal, int(ids.min()) if len(ids) else -1, \
            int(ids.max()) if len(ids) else -1


def merge_knn(parts: Sequence[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k smallest (distance, id) pairs of each row over several shards' k-NN answers."""
    D = np.concatenate([p[0] for p in parts], axis=1)
    I = np.concatenate([p[1] for p in parts], axis=1)
    order = np.lexsort((I, D), axis=1)[:, :k]  # padding (2147483647, -1) sorts after every real hit
    return np.take_along_axis(D, order, axis=1), np.take_along_axis(I, order, axis=1)


def merge_range(parts: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], nq: int):
    """One range result (lims, D, I), each query's hits sorted by (distance, id), from the shards'."""
    rows, dists, ids = [], [], []
    for lims, D, I in parts:
        rows.append(np.repeat(np.arange(nq, dtype=np.int64), np.diff(lims)))
        dists.append(D)
        ids.append(I)
    row = np.concatenate(rows)
    D = np.concatenate(dists)
    I = np.concatenate(ids)
    order = np.lexsort((I, D, row))
    lims = np.zeros(nq + 1, dtype=np.int64)
    np.cumsum(np.bincount(row, minlength=nq), out=lims[1:])
    return lims, D[order], I[order]


def _start_shard(folder: Path, i: int, entry: ShardEntry, mmap: bool, threads: int):
    """An actor holding shard i, restarted by Ray (reloading the same file) whenever it dies."""
    ray = _ray()
    remote = ray.remote(max_restarts=-1, max_task_retries=-1)(_Shard)
    return remote.options(num_cpus=0).remote(str(folder / entry.file), entry.sha256, f"{i} ({entry.file})", mmap,
                                             threads)


def _gather(refs: list, actors: list) -> list:
    """ray.get of calls to shard actors. A shard that cannot load its file (checksum, missing file:
    when it starts, or when Ray restarts it after its process died) stops everything with
    ShardChecksumError naming it; the actors are stopped."""
    ray = _ray()
    try:
        return ray.get(refs)
    except ray.exceptions.RayActorError as exc:
        text = str(exc.cause if getattr(exc, "cause", None) is not None else exc)
        named = [line for line in text.splitlines() if "ShardChecksumError" in line or line.startswith("shard ")]
        if not named:
            raise
        for a in actors:
            ray.kill(a)
        message = named[-1].split("ShardChecksumError:", 1)[-1].strip()
        raise ShardChecksumError(message) from exc


def _wait_loaded(actors: list) -> None:
    """Waits until every actor has loaded its shard (see _gather for a shard that cannot)."""
    _gather([a.ping.remote() for a in actors], actors)


class ShardedIndex:
    """A sharded index opened from its manifest, its shards held by Ray actors (see module doc)."""

    def __init__(self, manifest_path: Union[str, os.PathLike], manifest: Manifest, actors: list):
        self.manifest_path = Path(manifest_path)
        self.manifest = manifest
        self._actors = actors
        self._dirty: set[int] = set()
        self._mmap, self._threads = True, 0

    # ---- creation and opening ------------------------------------------------------------------

    @staticmethod
    def build(codes, manifest_path: Union[str, os.PathLike], nshards: int, index: str = "flat",
              ids: Optional[npt.ArrayLike] = None, sharding: str = "hash",
              nbits: Optional[int] = None) -> Manifest:
        """Writes shard files and the manifest for these codes (ids: row numbers unless given),
        without Ray. sharding 'hash': items go to shard id % nshards; 'range': the ids are cut into
        nshards contiguous ranges holding (nearly) equal counts, the last range open-ended.
        nbits: the code length (default 8 bits per byte; a shorter one leaves padding bits, which
        must be zero)."""
        data = bulk.read_codes(codes)
        nbits = nbits_of(data, nbits)
        if nshards < 1:
            raise ValueError(f"nshards must be >= 1, got {nshards}")
        if index not in ("flat", "mih"):
            raise ValueError(f"index must be 'flat' or 'mih', got {index!r}")
        if sharding not in ("hash", "range"):
            raise ValueError(f"sharding must be 'hash' or 'range', got {sharding!r}")
        n = data.shape[0]
        ids = np.arange(n, dtype=np.int64) if ids is None else np.asarray(ids, dtype=np.int64)
        if ids.shape != (n,):
            raise ValueError(f"ids must have one entry per code ({n}), got shape {ids.shape}")
        folder = Path(manifest_path).parent
        folder.mkdir(parents=True, exist_ok=True)
        if n and ((ids < 0).any() or len(np.unique(ids)) != n):
            raise ValueError("ids must be unique and >= 0")
        manifest = Manifest(nbits=nbits, index=index, next_id=int(ids.max()) + 1 if n else 0, save_version=1,
                            sharding=sharding)
        if sharding == "range":
            starts = range_starts(ids, nshards)
            manifest.shards = [ShardEntry(file="", sha256="", ntotal=0, range_start=starts[s],
                                          range_end=starts[s + 1] if s + 1 < nshards else None)
                               for s in range(nshards)]
        else:
            manifest.shards = [ShardEntry(file="", sha256="", ntotal=0) for _ in range(nshards)]
        owner = manifest.shard_of(ids)
        for s in range(nshards):
            mine = np.flatnonzero(owner == s)
            shard = FlatIndex(nbits) if index == "flat" else MIHIndex(nbits)
            if len(mine):
                shard.add_with_ids(np.ascontiguousarray(data[mine]), ids[mine])
            if isinstance(shard, MIHIndex):
                shard.compact()
            name = shard_file_name(s, 1)
            shard.save(folder / name)
            manifest.shards[s] = dataclasses.replace(
                manifest.shards[s], file=name, sha256=file_sha256(folder / name), ntotal=len(mine),
                id_min=int(ids[mine].min()) if len(mine) else -1, id_max=int(ids[mine].max()) if len(mine) else -1)
        manifest.save(manifest_path)
        return manifest

    @classmethod
    def open(cls, manifest_path: Union[str, os.PathLike], mmap: bool = True, threads: int = 0) -> "ShardedIndex":
        """Starts one actor per shard (in the Ray cluster this process is connected to; call
        ray.init first) and waits until every shard has loaded and passed its checksum.
        threads: the core's threads in each shard actor (0: all cores of its node)."""
        manifest = Manifest.load(manifest_path)
        folder = Path(manifest_path).resolve().parent
        actors = [_start_shard(folder, i, s, mmap, threads) for i, s in enumerate(manifest.shards)]
        _wait_loaded(actors)
        index = cls(manifest_path, manifest, actors)
        index._mmap, index._threads = mmap, threads
        return index

    def close(self) -> None:
        """Stops the shard actors (unsaved writes are lost)."""
        ray = _ray()
        for a in self._actors:
            ray.kill(a)
        self._actors = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- properties ------------------------------------------------------------------------------

    @property
    def nbits(self) -> int:
        return self.manifest.nbits

    @property
    def code_size(self) -> int:
        return code_size_for(self.manifest.nbits)

    @property
    def nshards(self) -> int:
        return len(self._actors)

    @property
    def ntotal(self) -> int:
        ray = _ray()
        return sum(ray.get([a.ntotal.remote() for a in self._actors]))

    @property
    def next_id(self) -> int:
        return self.manifest.next_id

    @property
    def sharding(self) -> str:
        return self.manifest.sharding

    def actors(self) -> list:
        """The shard actors' handles (for operations and tests)."""
        return list(self._actors)

    # ---- search ----------------------------------------------------------------------------------

    def _queries(self, queries, name: str = "queries") -> np.ndarray:
        q = np.ascontiguousarray(queries)
        if q.dtype != np.uint8 or q.ndim != 2 or q.shape[1] != self.code_size:
            raise ValueError(f"{name} must be uint8 of shape (n, {self.code_size}), got {q.dtype} {q.shape}")
        check_padding(q, self.nbits, name)
        return q

    def search(self, queries, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact k-NN over every shard: (D int32, I int64), (nq, k), as FlatIndex.search."""
        return self.collect(self.submit(queries, k=k))

    def range_search(self, queries, radius: int):
        """Every item within radius (inclusive) over every shard: (lims, D, I), as FlatIndex."""
        return self.collect(self.submit(queries, radius=radius))

    def submit(self, queries, k: Optional[int] = None, radius: Optional[int] = None):
        """Starts a k-NN (k) or range (radius) search on every shard without waiting; collect()
        gives its answer. The queries go into Ray's object store once, read by every shard."""
        ray = _ray()
        q = self._queries(queries)
        ref = ray.put(q)
        if k is not None:
            if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0:
                raise ValueError(f"k must be an int > 0, got {k!r}")
            return "knn", int(k), [a.search.remote(ref, int(k)) for a in self._actors]
        if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)) or radius < 0:
            raise ValueError(f"radius must be an int >= 0, got {radius!r}")
        return "range", q.shape[0], [a.range_search.remote(ref, int(radius)) for a in self._actors]

    def collect(self, handle):
        """The merged answer of a search started by submit()."""
        kind, size, refs = handle
        parts = _gather(refs, self._actors)
        if len(parts) == 1:  # one shard's answer is already in (distance, id) order: copied (Ray's are read-only)
            return tuple(np.array(a) for a in parts[0])
        return merge_knn(parts, size) if kind == "knn" else merge_range(parts, size)

    # ---- writes ----------------------------------------------------------------------------------

    def add(self, codes) -> np.ndarray:
        """Appends codes with ids next_id, next_id + 1, ...; returns the ids."""
        data = self._queries(codes, "codes")
        ids = np.arange(self.manifest.next_id, self.manifest.next_id + len(data), dtype=np.int64)
        self.add_with_ids(data, ids)
        return ids

    def add_with_ids(self, codes, ids) -> None:
        """Appends codes with caller ids (unique, >= 0, none already held): all or nothing."""
        ray = _ray()
        data = self._queries(codes, "codes")
        ids = np.asarray(ids)
        if ids.ndim != 1 or ids.shape[0] != data.shape[0] or (ids.size and ids.dtype.kind not in "iu"):
            raise ValueError(f"ids must be {data.shape[0]} integers, got shape {ids.shape} dtype {ids.dtype}")
        ids = ids.astype(np.int64)
        if ids.size == 0:
            return
        if (ids < 0).any():
            raise ValueError(f"ids must be >= 0, got {int(ids[ids < 0][0])}")
        uniq, counts = np.unique(ids, return_counts=True)
        if (counts > 1).any():
            raise ValueError(f"ids must be unique, got {int(uniq[counts > 1][0])} more than once")
        routed = self._route(ids)
        present = _gather([self._actors[s].any_present.remote(ids[rows]) for s, rows in routed], self._actors)
        for found in present:
            if found >= 0:
                raise ValueError(f"ids: id {found} is already in the index")
        ray.get([self._actors[s].add_with_ids.remote(np.ascontiguousarray(data[rows]), ids[rows])
                 for s, rows in routed])
        self._dirty.update(s for s, _ in routed)
        self.manifest.next_id = max(self.manifest.next_id, int(ids.max()) + 1)

    def remove_ids(self, ids) -> int:
        """Removes the items with these ids (absent ids are ignored); returns how many."""
        ray = _ray()
        ids = np.asarray(ids, dtype=np.int64).ravel()
        routed = self._route(ids)
        removed = ray.get([self._actors[s].remove_ids.remote(ids[rows]) for s, rows in routed])
        self._dirty.update(s for (s, _), r in zip(routed, removed) if r)
        return int(sum(removed))

    def _route(self, ids: np.ndarray) -> list[tuple[int, np.ndarray]]:
        shard = self.manifest.shard_of(ids)
        return [(s, np.flatnonzero(shard == s)) for s in range(self.nshards) if (shard == s).any()]

    def save(self) -> Manifest:
        """Makes the writes durable: each changed shard writes a new file, then the manifest is
        replaced atomically, then the old files are removed."""
        ray = _ray()
        folder = self.manifest_path.resolve().parent
        version = self.manifest.save_version + 1
        changed = sorted(self._dirty)
        results = ray.get([self._actors[s].save.remote(str(folder / shard_file_name(s, version))) for s in changed])
        old_files = []
        for s, (sha, ntotal, id_min, id_max) in zip(changed, results):
            old_files.append(self.manifest.shards[s].file)
            self.manifest.shards[s] = dataclasses.replace(self.manifest.shards[s], file=shard_file_name(s, version),
                                                          sha256=sha, ntotal=ntotal, id_min=id_min, id_max=id_max)
        self.manifest.save_version = version
        self.manifest.save(self.manifest_path)
        # The changed shards' actors would reload the old files if restarted: new actors load
        # the new files (the same contents), then the old actors and files go.
        fresh = {s: _start_shard(folder, s, self.manifest.shards[s], self._mmap, self._threads) for s in changed}
        _wait_loaded(list(fresh.values()))
        for s, actor in fresh.items():
            ray.kill(self._actors[s])
            self._actors[s] = actor
        for name in old_files:
            (folder / name).unlink(missing_ok=True)
        self._dirty.clear()
        return self.manifest


def near_duplicates(index: ShardedIndex, radius: int, out: Union[str, os.PathLike], batch: int = 10_000,
                    progress: bool = False, format: str = "parquet") -> dict:
    """Every pair of ids (i < j) within Hamming `radius` (inclusive) across all shards: each
    shard's items, read in batches from its actor, are range-searched against every shard.
    Writes pairs.parquet (pairs in the order found: shard by shard, each batch sorted by (i, j))
    or, with format 'npy', pairs.npy and distances.npy sorted by (i, j), into folder `out`."""
    if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)) or radius < 0:
        raise ValueError(f"radius must be an int >= 0, got {radius!r}")
    start = time.perf_counter()
    sizes = _gather([a.ntotal.remote() for a in index.actors()], index.actors())
    writer = bulk.PairWriter(out, format)
    try:
        for actor, size in zip(index.actors(), sizes):
            for b0, b1 in bulk._batches(size, batch, progress, "joining"):
                ids, codes = _gather([actor.contents.remote(b0, b1 - b0)], index.actors())[0]
                lims, D, I = index.range_search(codes, int(radius))
                writer.add(np.repeat(ids, np.diff(lims)), I, D)
    except BaseException:
        writer.abandon()
        raise
    job = {"job": "near_duplicates", "index": str(index.manifest_path), "codes": int(sum(sizes)),
           "nbits": index.nbits, "radius": int(radius)}
    return writer.finish(job, start)
