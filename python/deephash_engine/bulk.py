"""Bulk jobs, file in and file out: build an index from a file of codes, search files of queries
against an index (in this process, or a sharded one on Ray), and find every pair of near-duplicate
codes.

Query inputs are ``.npy`` files (a path, a glob or a list) read memory-mapped, or a Ray Dataset,
and stream through in batches, so inputs larger than memory pass; results are written as the
batches come back. Nothing that looks finished is left by a job that stops half-way: ``.npy``
results are written under temporary names and renamed into place at the end, Parquet parts are
each written whole and renamed, and ``job.json`` (what was run: index, sizes, k or radius,
seconds) is written last. Progress goes to stderr (tqdm) when asked for.

- k-NN: ``D.npy`` (int32, nq x k) and ``I.npy`` (int64, nq x k), rows in query order, each sorted
  by (distance, id), padded with 2147483647 / -1 exactly as ``search`` pads.
- range, format 'parquet' (the default): ``hits.parquet/part-NNNNN.parquet``, columns ``query``
  (int64, the query's row number over all inputs), ``id`` (int64), ``distance`` (int32), rows
  sorted by (query, distance, id). Format 'npy': ``lims.npy`` (int64, nq + 1), ``D.npy`` and
  ``I.npy`` (flat), query i's hits at ``lims[i]:lims[i + 1]``, as ``range_search`` returns them.
- near duplicates, format 'parquet': ``pairs.parquet/part-NNNNN.parquet``, columns ``item``,
  ``id`` (int64, item < id) and ``distance`` (int32); format 'npy': ``pairs.npy`` (int64, m x 2)
  and ``distances.npy`` (int32), sorted by (item, id).

Parquet needs PyArrow (see parquet_parts.py).
"""

from __future__ import annotations

import glob
import json
import os
import sys
import time
from collections import deque
from pathlib import Path
from typing import Iterator, Optional, Union

import numpy as np
import numpy.typing as npt

from ._atomic import _fsync_folder, atomic_write_text
from ._codes import nbits_of
from ._core import BinaryIndex, FlatIndex, MIHIndex, load_index
from .parquet_parts import ParquetParts

ArrayOrPath = Union[str, os.PathLike, npt.NDArray[np.uint8]]


def read_codes(source: ArrayOrPath, what: str = "codes") -> npt.NDArray[np.uint8]:
    """A (n, code_size) uint8 array: the array itself, or a ``.npy`` file mapped read-only."""
    if isinstance(source, np.ndarray):
        codes = source
    else:
        path = Path(source)
        try:
            codes = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{what}: cannot read {path} as a .npy array: {exc}") from exc
    if codes.dtype != np.uint8 or codes.ndim != 2:
        raise ValueError(f"{what}: expected a 2-D uint8 array of packed codes, got {codes.dtype} with shape "
                         f"{codes.shape} (pack real values with deephash_engine.pack_bits)")
    return codes


def _batches(n: int, batch: int, progress: bool, desc: str) -> Iterator[tuple[int, int]]:
    if batch <= 0:
        raise ValueError(f"batch must be > 0, got {batch}")
    starts = range(0, n, batch)
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n, desc=desc, unit="row", file=sys.stderr, leave=False)
        for b0 in starts:
            b1 = min(n, b0 + batch)
            yield b0, b1
            bar.update(b1 - b0)
        bar.close()
    else:
        for b0 in starts:
            yield b0, min(n, b0 + batch)


class _Outputs:
    """Result files created under temporary names in `folder`, renamed into place by commit()."""

    def __init__(self, folder: Union[str, os.PathLike]):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.pending: list[tuple[Path, Path]] = []

    def array(self, name: str, dtype, shape) -> np.memmap:
        final = self.folder / name
        tmp = self.folder / f".{name}.partial-{os.getpid()}"
        self.pending.append((tmp, final))
        return np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)

    def commit(self, job: dict) -> None:
        for tmp, final in self.pending:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        _fsync_folder(str(self.folder))
        atomic_write_text(self.folder / "job.json", json.dumps(job, indent=2) + "\n")

    def abandon(self) -> None:
        for tmp, _ in self.pending:
            tmp.unlink(missing_ok=True)


def build_index(codes: ArrayOrPath, out: Union[str, os.PathLike], kind: str = "flat", m: Optional[int] = None,
                batch: int = 1 << 20, progress: bool = False, nbits: Optional[int] = None) -> BinaryIndex:
    """An index of `kind` ('flat' or 'mih') over the codes (ids = row numbers), saved to `out`.
    nbits: the code length (default 8 bits per byte of the codes; a shorter one leaves padding bits,
    which must be zero)."""
    data = read_codes(codes)
    nbits = nbits_of(data, nbits)
    if kind == "flat":
        index: BinaryIndex = FlatIndex(nbits)
    elif kind == "mih":
        index = MIHIndex(nbits, m)
    else:
        raise ValueError(f"index kind must be 'flat' or 'mih', got {kind!r}")
    for b0, b1 in _batches(data.shape[0], batch, progress, "adding"):
        index.add(np.ascontiguousarray(data[b0:b1]))
    if isinstance(index, MIHIndex):
        index.compact()  # every code in the tables before the file is written
    index.save(out)
    return index


def write_arrays(out: Union[str, os.PathLike], arrays: dict, job: dict, start: float) -> None:
    """Writes whole arrays as result files (temporary names, renamed when all are written) and
    the job record with its duration since `start` (time.perf_counter())."""
    outputs = _Outputs(out)
    try:
        for name, value in arrays.items():
            target = outputs.array(name, value.dtype, value.shape)
            target[...] = value
            target.flush()
        job["seconds"] = round(time.perf_counter() - start, 3)
        outputs.commit(job)
    except BaseException:
        outputs.abandon()
        raise


def _is_dataset(queries) -> bool:
    """A Ray Dataset (duck-typed: Ray is imported only by the distributed part)."""
    return hasattr(queries, "iter_batches") and hasattr(queries, "map_batches")


def query_files(queries) -> list:
    """The query arrays to search, in order: an array, a ``.npy`` path, a glob pattern of ``.npy``
    paths (sorted by name) or a list of arrays and paths; files are mapped read-only."""
    if isinstance(queries, np.ndarray):
        return [read_codes(queries, "queries")]
    if isinstance(queries, (str, os.PathLike)):
        text = os.fspath(queries)
        if glob.has_magic(text):
            paths = sorted(glob.glob(text))
            if not paths:
                raise ValueError(f"queries: no file matches {text!r}")
            return [read_codes(p, f"queries ({p})") for p in paths]
        return [read_codes(text, "queries")]
    if isinstance(queries, (list, tuple)) and queries:
        return [part for q in queries for part in query_files(q)]
    raise ValueError(f"queries: expected an array, a .npy path, a glob, a list of them or a Ray Dataset, "
                     f"got {type(queries).__name__}")


def dataset_codes(batch: dict) -> np.ndarray:
    """The codes of a Ray Data batch (numpy format): its column 'codes', else its only column."""
    if "codes" in batch:
        codes = batch["codes"]
    elif len(batch) == 1:
        codes = next(iter(batch.values()))
    else:
        raise ValueError(f"queries: a Ray Dataset of codes needs a column 'codes' or a single column, "
                         f"got {sorted(batch)}")
    return read_codes(np.ascontiguousarray(codes), "queries")


def query_stream(queries, batch: int, code_size: Optional[int] = None) -> tuple[Optional[int], Iterator[np.ndarray]]:
    """How many queries there are (None for a Ray Dataset) and their batches (C-contiguous uint8),
    in query order; never more than one batch of a file in memory at a time. code_size: the width
    every file must have."""
    if batch <= 0:
        raise ValueError(f"batch must be > 0, got {batch}")
    if _is_dataset(queries):  # its length is not counted: that would run it twice

        def from_dataset():
            for b in queries.iter_batches(batch_size=batch, batch_format="numpy"):
                yield dataset_codes(b)

        return None, from_dataset()
    arrays = query_files(queries)
    widths = {a.shape[1] for a in arrays}
    if len(widths) > 1:
        raise ValueError(f"queries: the files have different code widths {sorted(widths)} (bytes)")
    if code_size is not None and widths != {code_size}:
        raise ValueError(f"queries have {widths.pop() * 8} bits, the index {code_size * 8}")

    def from_arrays():
        for a in arrays:
            for b0 in range(0, a.shape[0], batch):
                yield np.ascontiguousarray(a[b0:b0 + batch])

    return sum(a.shape[0] for a in arrays), from_arrays()


def _searched(index, batches: Iterator[np.ndarray], k: Optional[int], radius: Optional[int]):
    """(rows, result) for each batch in order. An index that can start a search without waiting
    for it (ShardedIndex.submit) gets the next batch before the last one is collected, so its
    shards never wait for the driver's merge and writes."""
    if hasattr(index, "submit"):
        pending: deque = deque()
        for q in batches:
            pending.append((q, index.submit(q, k=k, radius=radius)))
            if len(pending) > 1:
                q0, handle = pending.popleft()
                yield q0.shape[0], index.collect(handle)
        while pending:
            q0, handle = pending.popleft()
            yield q0.shape[0], index.collect(handle)
    else:
        for q in batches:
            yield q.shape[0], (index.search(q, k) if k is not None else index.range_search(q, radius))


class _RowFile:
    """Rows of a result array, written as they come: straight into the .npy file when the row
    count is known at the start, else appended to a raw temporary file and copied into the .npy
    file at the end (a Ray Dataset's length is not known without running it, which would read
    its queries twice)."""

    def __init__(self, outputs: _Outputs, name: str, dtype, width: int, nrows: Optional[int]):
        self.outputs, self.name, self.dtype, self.width, self.n = outputs, name, np.dtype(dtype), width, 0
        self.raw_path = outputs.folder / f".{name}.rows-{os.getpid()}"
        self.raw = open(self.raw_path, "wb") if nrows is None else None
        self.array = outputs.array(name, dtype, (nrows, width)) if nrows is not None else None

    def append(self, rows: np.ndarray) -> None:
        if self.raw is not None:
            self.raw.write(np.ascontiguousarray(rows, dtype=self.dtype).tobytes())
        else:
            self.array[self.n:self.n + len(rows)] = rows
        self.n += len(rows)

    def finish(self) -> None:
        if self.raw is not None:
            self.raw.close()
            self.raw = None
            self.array = self.outputs.array(self.name, self.dtype, (self.n, self.width))
            if self.n:
                rows = np.memmap(self.raw_path, dtype=self.dtype, mode="r", shape=(self.n, self.width))
                for r0 in range(0, self.n, 1 << 20):
                    self.array[r0:r0 + (1 << 20)] = rows[r0:r0 + (1 << 20)]
                del rows
            self.raw_path.unlink()
        self.array.flush()

    def abandon(self) -> None:
        if self.raw is not None:
            self.raw.close()
            self.raw = None
        self.raw_path.unlink(missing_ok=True)


def _progress(total: Optional[int], progress: bool, desc: str):
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="query", file=sys.stderr, leave=False)


def bulk_search(index, queries, out: Union[str, os.PathLike], k: Optional[int] = None,
                radius: Optional[int] = None, batch: int = 10_000, mmap: bool = False, progress: bool = False,
                format: str = "parquet", executor: str = "driver") -> dict:
    """Searches every query (k-NN with `k`, or range with `radius`) and writes the result files
    described in the module docstring into folder `out`, batch after batch; returns the job record.

    index: an index file's path, or any index object (FlatIndex, MIHIndex, distributed.ShardedIndex).
    queries: an array, a ``.npy`` path, a glob of them, a list of arrays and paths (read
    memory-mapped, one batch at a time) or a Ray Dataset of codes. format: range results as
    'parquet' (hits.parquet/part-*.parquet) or 'npy' (lims.npy, D.npy, I.npy); k-NN results are
    always D.npy and I.npy. executor: 'driver' (this process cuts the batches and sends them to
    the index) or 'ray-data' (a ShardedIndex only: Ray Data streams the batches through a pool of
    actors that fan out to the shards; docs/scale.md compares the two)."""
    if (k is None) == (radius is None):
        raise ValueError("give exactly one of k and radius")
    if format not in ("parquet", "npy"):
        raise ValueError(f"format must be 'parquet' or 'npy', got {format!r}")
    if executor not in ("driver", "ray-data"):
        raise ValueError(f"executor must be 'driver' or 'ray-data', got {executor!r}")
    if k is not None and (isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0):
        raise ValueError(f"k must be > 0, got {k!r}")
    if radius is not None and (isinstance(radius, bool) or not isinstance(radius, (int, np.integer)) or radius < 0):
        raise ValueError(f"radius must be an int >= 0, got {radius!r}")
    index_name = None
    if isinstance(index, (str, os.PathLike)):
        index_name = str(index)
        index = load_index(index, mmap=mmap)
    if executor == "ray-data":
        if not hasattr(index, "submit"):
            raise ValueError("executor='ray-data' needs a distributed.ShardedIndex")
        from .distributed.ray_data import ray_data_stream

        nq, results = ray_data_stream(index, queries, batch, k, radius)
    else:
        nq, batches = query_stream(queries, batch, index.code_size)
        results = _searched(index, batches, k, radius)
    start = time.perf_counter()
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "job.json").unlink(missing_ok=True)  # the folder looks finished again only when this job is
    outputs = _Outputs(folder)
    hits = ParquetParts(folder / "hits.parquet", "query") if radius is not None and format == "parquet" else None
    bar = _progress(nq, progress, "searching")
    done = 0
    try:
        if k is not None:
            D = _RowFile(outputs, "D.npy", np.int32, k, nq)
            I = _RowFile(outputs, "I.npy", np.int64, k, nq)
        else:
            counts, parts_d, parts_i = [], [], []
        for rows, result in results:
            b0, b1 = done, done + rows
            if nq is not None and b1 > nq:
                raise ValueError(f"queries: more than the {nq} queries counted at the start")
            if k is not None:
                D.append(result[0])
                I.append(result[1])
            else:
                bl, bd, bi = result
                counts.append(np.diff(bl))
                if hits is not None:
                    hits.append(np.repeat(np.arange(b0, b1, dtype=np.int64), np.diff(bl)), bi, bd)
                else:
                    parts_d.append(bd)
                    parts_i.append(bi)
            done = b1
            if bar is not None:
                bar.update(b1 - b0)
        if nq is not None and done != nq:
            raise ValueError(f"queries: {done} searched, {nq} counted at the start")
        nq = done
        if k is not None:
            D.finish()
            I.finish()
        elif hits is not None:
            hits.close()
        else:
            lims = np.zeros(nq + 1, np.int64)
            np.cumsum(np.concatenate([np.zeros(0, np.int64), *counts]), out=lims[1:])
            for name, value in (("lims.npy", lims), ("D.npy", np.concatenate(parts_d) if parts_d else
                                 np.empty(0, np.int32)), ("I.npy", np.concatenate(parts_i) if parts_i else
                                 np.empty(0, np.int64))):
                target = outputs.array(name, value.dtype, value.shape)
                target[...] = value
                target.flush()
        job = {"job": "search", "index": index_name, "index_type": type(index).__name__, "nbits": index.nbits,
               "ntotal": index.ntotal, "queries": nq, "k": k, "radius": radius, "executor": executor,
               "format": "npy" if k is not None else format, "seconds": round(time.perf_counter() - start, 3)}
        if hits is not None:
            job["hits"] = hits.rows
        outputs.commit(job)
    except BaseException:
        if k is not None:
            D.abandon()
            I.abandon()
        outputs.abandon()
        if hits is not None:
            hits.abandon()
        raise
    finally:
        if bar is not None:
            bar.close()
    return job


class PairWriter:
    """Near-duplicate pairs (item, id, distance) as they are found: Parquet parts
    (pairs.parquet/part-*.parquet, in the order found) or, with format 'npy', pairs.npy (int64,
    m x 2) and distances.npy (int32) sorted by (item, id), written at the end."""

    def __init__(self, out: Union[str, os.PathLike], format: str):
        if format not in ("parquet", "npy"):
            raise ValueError(f"format must be 'parquet' or 'npy', got {format!r}")
        self.folder = Path(out)
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "job.json").unlink(missing_ok=True)
        self.parts = ParquetParts(self.folder / "pairs.parquet", "item") if format == "parquet" else None
        self.found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.count = 0

    def add(self, items: np.ndarray, ids: np.ndarray, distances: np.ndarray) -> None:
        """Range hits of items: keeps each pair once (item < id, never an item with itself)."""
        later = ids > items
        items, ids, distances = items[later], ids[later], distances[later]
        order = np.lexsort((ids, items))
        items, ids, distances = items[order], ids[order], distances[order]
        self.count += len(items)
        if self.parts is not None:
            self.parts.append(items, ids, distances)
        else:
            self.found.append((items, ids, distances))

    def finish(self, job: dict, start: float) -> dict:
        job["pairs"] = self.count
        job["format"] = "parquet" if self.parts is not None else "npy"
        try:
            if self.parts is not None:
                self.parts.close()
                job["seconds"] = round(time.perf_counter() - start, 3)
                atomic_write_text(self.folder / "job.json", json.dumps(job, indent=2) + "\n")
                return job
            items, ids, dists = (np.concatenate([f[c] for f in self.found]) if self.found else np.empty(0, dt)
                                 for c, dt in enumerate((np.int64, np.int64, np.int32)))
            order = np.lexsort((ids, items))
            write_arrays(self.folder, {"pairs.npy": np.stack([items[order], ids[order]], axis=1),
                                       "distances.npy": dists[order]}, job, start)
            return job
        except BaseException:
            self.abandon()
            raise

    def abandon(self) -> None:
        if self.parts is not None:
            self.parts.abandon()


def near_duplicates(codes: ArrayOrPath, radius: int, out: Union[str, os.PathLike], batch: int = 10_000,
                    progress: bool = False, format: str = "parquet") -> dict:
    """Every pair of rows (i < j) of the codes within Hamming `radius` (inclusive): a self-join by
    multi-index range search. Writes pairs.parquet (or, with format 'npy', pairs.npy and
    distances.npy) into folder `out`, sorted by (i, j)."""
    data = read_codes(codes)
    if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)) or radius < 0:
        raise ValueError(f"radius must be an int >= 0, got {radius!r}")
    start = time.perf_counter()
    writer = PairWriter(out, format)
    index = MIHIndex(data.shape[1] * 8)
    for b0, b1 in _batches(data.shape[0], 1 << 20, False, "indexing"):
        index.add(np.ascontiguousarray(data[b0:b1]))
    index.compact()
    try:
        for b0, b1 in _batches(data.shape[0], batch, progress, "joining"):
            lims, D, I = index.range_search(np.ascontiguousarray(data[b0:b1]), radius)
            writer.add(np.repeat(np.arange(b0, b1, dtype=np.int64), np.diff(lims)), I, D)
    except BaseException:
        writer.abandon()
        raise
    job = {"job": "near_duplicates", "codes": data.shape[0], "nbits": data.shape[1] * 8, "radius": int(radius)}
    return writer.finish(job, start)
