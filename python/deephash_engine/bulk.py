"""Bulk jobs on one machine, file in and file out: build an index from a file of codes, search a
file of queries against an index, and find every pair of near-duplicate codes.

Inputs are ``.npy`` files read memory-mapped, so a query file larger than memory streams through
in batches. Outputs are ``.npy`` files written under a temporary name and renamed into place when
complete, so a job that stops half-way leaves no file that looks finished. Progress goes to
stderr (tqdm) when asked for.

- k-NN: ``D.npy`` (int32, nq x k) and ``I.npy`` (int64, nq x k), rows in query order, each sorted
  by (distance, id), padded with 2147483647 / -1 exactly as ``search`` pads.
- range: ``lims.npy`` (int64, nq + 1), ``D.npy`` and ``I.npy`` (flat), query i's hits at
  ``lims[i]:lims[i + 1]``, as ``range_search`` returns them.
- near duplicates: ``pairs.npy`` (int64, m x 2, row numbers i < j of the codes file) and
  ``distances.npy`` (int32, m), sorted by (i, j).

A ``job.json`` beside them records what was run (index, sizes, k or radius, seconds).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Iterator, Optional, Union

import numpy as np
import numpy.typing as npt

from ._atomic import _fsync_folder, atomic_write_text
from ._codes import nbits_of
from ._core import BinaryIndex, FlatIndex, MIHIndex, load_index

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


def bulk_search(index, queries: ArrayOrPath, out: Union[str, os.PathLike],
                k: Optional[int] = None, radius: Optional[int] = None, batch: int = 10_000,
                mmap: bool = False, progress: bool = False) -> dict:
    """Searches every query (k-NN with `k`, or range with `radius`) and writes the result files
    described in the module docstring into folder `out`; returns the job record. `index`: an
    index file's path, or any index object (FlatIndex, MIHIndex, distributed.ShardedIndex)."""
    if (k is None) == (radius is None):
        raise ValueError("give exactly one of k and radius")
    index_name = None
    if isinstance(index, (str, os.PathLike)):
        index_name = str(index)
        index = load_index(index, mmap=mmap)
    q = read_codes(queries, "queries")
    if q.shape[1] != index.code_size:
        raise ValueError(f"queries have {q.shape[1]} bytes per code, the index's codes {index.code_size} "
                         f"({index.nbits} bits)")
    nq = q.shape[0]
    start = time.perf_counter()
    outputs = _Outputs(out)
    try:
        if k is not None:
            D = outputs.array("D.npy", np.int32, (nq, k))
            I = outputs.array("I.npy", np.int64, (nq, k))
            for b0, b1 in _batches(nq, batch, progress, "searching"):
                D[b0:b1], I[b0:b1] = index.search(np.ascontiguousarray(q[b0:b1]), k)
            D.flush(), I.flush()
        else:
            lims = outputs.array("lims.npy", np.int64, (nq + 1,))
            lims[0] = 0
            parts_d, parts_i = [], []
            for b0, b1 in _batches(nq, batch, progress, "searching"):
                bl, bd, bi = index.range_search(np.ascontiguousarray(q[b0:b1]), radius)
                lims[b0 + 1:b1 + 1] = bl[1:] + lims[b0]
                parts_d.append(bd)
                parts_i.append(bi)
            total = int(lims[nq])
            D = outputs.array("D.npy", np.int32, (total,))
            I = outputs.array("I.npy", np.int64, (total,))
            at = 0
            for bd, bi in zip(parts_d, parts_i):
                D[at:at + len(bd)], I[at:at + len(bi)] = bd, bi
                at += len(bd)
            lims.flush(), D.flush(), I.flush()
        job = {"job": "search", "index": index_name, "index_type": type(index).__name__, "nbits": index.nbits,
               "ntotal": index.ntotal, "queries": nq, "k": k, "radius": radius,
               "seconds": round(time.perf_counter() - start, 3)}
        outputs.commit(job)
    except BaseException:
        outputs.abandon()
        raise
    return job


def near_duplicates(codes: ArrayOrPath, radius: int, out: Union[str, os.PathLike], batch: int = 10_000,
                    progress: bool = False) -> dict:
    """Every pair of rows (i < j) of the codes within Hamming `radius` (inclusive): a self-join by
    multi-index range search. Writes pairs.npy and distances.npy into folder `out`."""
    data = read_codes(codes)
    if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)) or radius < 0:
        raise ValueError(f"radius must be an int >= 0, got {radius!r}")
    start = time.perf_counter()
    index = MIHIndex(data.shape[1] * 8)
    for b0, b1 in _batches(data.shape[0], 1 << 20, False, "indexing"):
        index.add(np.ascontiguousarray(data[b0:b1]))
    index.compact()
    pairs, dists = [], []
    for b0, b1 in _batches(data.shape[0], batch, progress, "joining"):
        lims, D, I = index.range_search(np.ascontiguousarray(data[b0:b1]), radius)
        rows = np.repeat(np.arange(b0, b1, dtype=np.int64), np.diff(lims))
        later = I > rows  # each pair once, never a row with itself
        order = np.lexsort((I[later], rows[later]))
        pairs.append(np.stack([rows[later][order], I[later][order]], axis=1))
        dists.append(D[later][order])
    all_pairs = np.concatenate(pairs) if pairs else np.empty((0, 2), np.int64)
    all_dists = np.concatenate(dists) if dists else np.empty(0, np.int32)
    job = {"job": "near_duplicates", "codes": data.shape[0], "nbits": data.shape[1] * 8, "radius": int(radius),
           "pairs": int(all_pairs.shape[0])}
    write_arrays(out, {"pairs.npy": all_pairs, "distances.npy": all_dists}, job, start)
    return job
