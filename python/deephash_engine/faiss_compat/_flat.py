"""IndexBinaryFlat: FAISS's exhaustive binary index, answered by our FlatIndex.

FAISS labels a flat index's items by storage position, and remove_ids shifts the items after a
removed one down. Our FlatIndex never renumbers, so after a removal this class keeps ``_slots``,
the engine id held at each position (increasing, since adds append and removal keeps the order),
and translates between the two; until the first removal positions and engine ids coincide and
nothing is translated.
"""

from __future__ import annotations

import os
import struct
import tempfile
from typing import Callable

import numpy as np
import numpy.typing as npt

from .._core import FlatIndex
from ._base import IndexBinary, missing_key
from ._errors import InvalidArgumentError

# Below this many codes reconstruct() is called once per code; above it the codes are exported in
# one piece through the engine's own file format (one write and one read instead of a call each).
BULK_EXPORT_MIN = 256


class IndexBinaryFlat(IndexBinary):
    """``faiss.IndexBinaryFlat(d)``: exact k-NN and range search over d-bit codes."""

    def __init__(self, d: int) -> None:
        try:
            self._flat = FlatIndex(d)
        except ValueError as e:
            raise InvalidArgumentError(f"d must be a positive multiple of 8, got {d}") from e
        super().__init__(int(d))
        self._slots: npt.NDArray[np.int64] | None = None
        self.use_heap = True  # FAISS's two selection algorithms give the same answers; ours has one

    def __repr__(self) -> str:
        return f"IndexBinaryFlat(d={self.d}, ntotal={self.ntotal})"

    @property
    def ntotal(self) -> int:
        return self._flat.ntotal

    def add(self, x: npt.NDArray[np.uint8]) -> None:
        """Append codes; they are numbered ntotal, ntotal + 1, ..."""
        self._add_codes(self._codes(x))

    def add_with_ids(self, x, ids) -> None:
        raise NotImplementedError(
            "add_with_ids not implemented for IndexBinaryFlat (it numbers items by position): "
            "wrap it in IndexBinaryIDMap or IndexBinaryIDMap2")

    def reset(self) -> None:
        self._flat.reset()
        self._slots = None

    # -- position-level operations, shared with the id maps --

    def _add_codes(self, x: npt.NDArray[np.uint8]) -> None:
        first = self._flat.next_id
        self._flat.add(x)
        if self._slots is not None:
            self._slots = np.concatenate([self._slots, np.arange(first, first + len(x), dtype=np.int64)])

    def _positions(self, ids: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Engine ids (-1 for none) to positions."""
        if self._slots is None:
            return ids
        return np.where(ids >= 0, np.searchsorted(self._slots, ids), -1)

    def _engine_ids(self, positions: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        return positions if self._slots is None else self._slots[positions]

    def _search(self, x, k):
        D, I = self._flat.search(x, k)
        return D, self._positions(I)

    def _range(self, x, radius):
        lims, D, I = self._flat.range_search(x, radius)
        # FAISS lists each query's hits in storage order; ours come sorted by (distance, id).
        query = np.repeat(np.arange(len(x)), np.diff(lims))
        order = np.lexsort((I, query))
        return lims, D[order], self._positions(I[order])

    def _remove(self, members: Callable[[npt.NDArray[np.int64]], npt.NDArray[np.bool_]]) -> int:
        n = self.ntotal
        positions = np.arange(n, dtype=np.int64)
        gone = np.asarray(members(positions), dtype=bool)
        count = int(gone.sum())
        if count:
            slots = self._engine_ids(positions)
            self._flat.remove_ids(slots[gone])
            self._slots = slots[~gone]
        return count

    def _reconstruct(self, keys: npt.NDArray[np.int64]) -> npt.NDArray[np.uint8]:
        n = self.ntotal
        bad = (keys < 0) | (keys >= n)
        if bad.any():
            raise missing_key(int(keys[bad][0]), n)
        if len(keys) < BULK_EXPORT_MIN:
            out = np.empty((len(keys), self.code_size), dtype=np.uint8)
            for row, id_ in enumerate(self._engine_ids(keys)):
                out[row] = self._flat.reconstruct(int(id_))
            return out
        return export_codes(self._flat)[keys]


def export_codes(flat: FlatIndex) -> npt.NDArray[np.uint8]:
    """Every code of a FlatIndex in storage order, read back from a temporary save() (the file
    format of docs/format.md keeps storage order: codes at payload_offset, ntotal x code_size)."""
    with tempfile.TemporaryDirectory(prefix="deephash-export-") as folder:
        path = os.path.join(folder, "index.dhi")
        flat.save(path)
        with open(path, "rb") as f:
            header = f.read(64)
        magic, = struct.unpack_from("<8s", header, 0)
        ntotal, = struct.unpack_from("<Q", header, 24)
        payload_offset, = struct.unpack_from("<Q", header, 48)
        if magic != b"DHASHIDX" or ntotal != flat.ntotal:
            raise RuntimeError("the engine's saved file did not have the expected layout")
        codes = np.fromfile(path, dtype=np.uint8, count=ntotal * flat.code_size, offset=payload_offset)
    return codes.reshape(ntotal, flat.code_size)
