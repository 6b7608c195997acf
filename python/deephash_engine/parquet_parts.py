"""Result rows written as a folder of Parquet parts, ``NAME.parquet/part-00000.parquet``, ...,
the layout Spark, DuckDB (``'NAME.parquet/*.parquet'``), pandas, PyArrow and Ray Data read as one
table. Every part is written under a temporary name, fsync'ed and renamed into place, so a job
that dies leaves only whole parts (and no ``job.json`` beside them: the job record is written
last, so a folder without it is an unfinished job). Starting a job in a folder removes the parts
a previous job left there.

Columns: the row's query number or item id (int64, named by the caller), ``id`` (int64) and
``distance`` (int32). Needs PyArrow (``pip install 'deephash-engine[distributed]'`` or
``pip install pyarrow``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import numpy as np

from ._atomic import _fsync_folder

PART_GLOB = "part-*.parquet"


def _pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ImportError("Parquet results need PyArrow: pip install pyarrow (or write .npy files with "
                          "format='npy', --format npy on the command line)") from exc
    return pa, pq


class ParquetParts:
    """Rows (first, id, distance) appended in batches, written as parts of about `rows_per_part`
    rows each; close() writes what is left (an empty part when nothing was appended, so that the
    folder always reads as a table with its columns)."""

    def __init__(self, folder: Union[str, os.PathLike], first: str, rows_per_part: int = 1 << 20):
        if rows_per_part <= 0:
            raise ValueError(f"rows_per_part must be > 0, got {rows_per_part}")
        self._pa, self._pq = _pyarrow()
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        for stale in self.folder.glob(PART_GLOB):
            stale.unlink()
        self.first = first
        self.schema = self._pa.schema([(first, self._pa.int64()), ("id", self._pa.int64()),
                                       ("distance", self._pa.int32())])
        self.rows_per_part = rows_per_part
        self._buffer: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._buffered = 0
        self.parts = 0
        self.rows = 0
        self._tmp: Path | None = None

    def append(self, first: np.ndarray, ids: np.ndarray, distances: np.ndarray) -> None:
        if len(first):
            self._buffer.append((np.asarray(first, np.int64), np.asarray(ids, np.int64),
                                 np.asarray(distances, np.int32)))
            self._buffered += len(first)
        if self._buffered >= self.rows_per_part:
            self._write_part()

    def _write_part(self) -> None:
        columns = [np.concatenate([b[c] for b in self._buffer]) if self._buffer else np.empty(0, dt)
                   for c, dt in enumerate((np.int64, np.int64, np.int32))]
        table = self._pa.Table.from_arrays([self._pa.array(c) for c in columns], schema=self.schema)
        final = self.folder / f"part-{self.parts:05d}.parquet"
        self._tmp = self.folder / f".{final.name}.partial-{os.getpid()}"
        self._pq.write_table(table, self._tmp)
        with open(self._tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(self._tmp, final)
        self._tmp = None
        self.parts += 1
        self.rows += len(columns[0])
        self._buffer, self._buffered = [], 0

    def close(self) -> int:
        """Writes the last part and makes the folder durable; returns the number of rows."""
        if self._buffered or self.parts == 0:
            self._write_part()
        _fsync_folder(str(self.folder))
        return self.rows

    def abandon(self) -> None:
        """After a failure: removes a part being written (the whole parts stay, without a job record)."""
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
