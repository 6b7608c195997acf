"""IndexBinaryFlat: FAISS's exhaustive binary index, answered by our FlatIndex.

FAISS labels a flat index's items by storage position, and remove_ids shifts the items after a
removed one down. Our FlatIndex never renumbers, so after a removal this class keeps ``_slots``,
the engine id held at each position (increasing, since adds append and removal keeps the order),
and translates between the two; until the first removal positions and engine ids coincide and
nothing is translated.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import numpy.typing as npt

from .._core import FlatIndex
from ._base import IndexBinary, missing_key
from ._errors import InvalidArgumentError


class IndexBinaryFlat(IndexBinary):
    """``faiss.IndexBinaryFlat(d)``: exact k-NN and range search over d-bit codes."""

    def __init__(self, d: int) -> None:
        # FAISS's binary indexes need d % 8 == 0; the engine's FlatIndex takes any d, the drop-in
        # refuses what FAISS refuses (docs/faiss_compat.md).
        if isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d % 8:
            raise InvalidArgumentError(f"d must be a positive multiple of 8, got {d}")
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
        return self._flat.reconstruct_batch(self._engine_ids(keys))
