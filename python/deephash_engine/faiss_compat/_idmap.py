"""IndexBinaryIDMap and IndexBinaryIDMap2: caller ids over a compat IndexBinaryFlat.

As in FAISS, the map is a plain array: position -> id. Ids may repeat and may be negative (FAISS
checks neither); results are the flat index's, by position, with each position replaced by its id,
so ties at equal distance come in storage order, exactly as FAISS gives them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from ._base import IndexBinary
from ._errors import InvalidArgumentError, UnknownIdError
from ._flat import IndexBinaryFlat
from ._selectors import as_id_array


class IndexBinaryIDMap(IndexBinary):
    """``faiss.IndexBinaryIDMap(index)``: add_with_ids over an empty IndexBinaryFlat."""

    def __init__(self, index: IndexBinaryFlat) -> None:
        if not isinstance(index, IndexBinaryFlat):
            raise TypeError(
                "IndexBinaryIDMap wraps a deephash_engine.faiss_compat.IndexBinaryFlat, "
                f"got {type(index).__module__}.{type(index).__name__}")
        if index.ntotal != 0:
            raise InvalidArgumentError(f"index must be empty on input, it holds {index.ntotal} items")
        super().__init__(index.d)
        self.index = index
        self.own_fields = False  # FAISS's flag; Python owns everything here
        self._id_map = np.zeros(0, dtype=np.int64)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(d={self.d}, ntotal={self.ntotal})"

    @property
    def ntotal(self) -> int:
        return len(self._id_map)

    @property
    def id_map(self) -> npt.NDArray[np.int64]:
        """The id at each position (a read-only array; FAISS gives a vector, read with
        faiss.vector_to_array)."""
        view = self._id_map.view()
        view.flags.writeable = False
        return view

    def add(self, x: Any) -> None:
        raise RuntimeError("add does not make sense with IndexBinaryIDMap, use add_with_ids")

    def add_with_ids(self, x: npt.NDArray[np.uint8], ids: Any) -> None:
        """Append codes under the caller's int64 ids (one per code)."""
        x = self._codes(x)
        ids = as_id_array(ids, "ids")
        if ids.shape != (len(x),):
            raise InvalidArgumentError(f"not same nb of vectors as ids: {len(x)} codes, {len(ids)} ids")
        self.index._add_codes(x)
        self._set_map(np.concatenate([self._id_map, ids]))

    def reset(self) -> None:
        self.index.reset()
        self._set_map(np.zeros(0, dtype=np.int64))

    def _set_map(self, id_map: npt.NDArray[np.int64]) -> None:
        self._id_map = id_map

    def _labels(self, positions: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        labels = np.full(positions.shape, -1, dtype=np.int64)
        hit = positions >= 0
        labels[hit] = self._id_map[positions[hit]]
        return labels

    def _search(self, x, k):
        D, P = self.index._search(x, k)
        return D, self._labels(P)

    def _range(self, x, radius):
        lims, D, P = self.index._range(x, radius)
        return lims, D, self._labels(P)

    def _remove(self, members) -> int:
        gone = np.asarray(members(self._id_map), dtype=bool)
        count = self.index._remove(lambda positions: gone[positions])
        self._set_map(self._id_map[~gone])
        return count

    def _reconstruct(self, keys):
        raise NotImplementedError(
            "reconstruct not implemented for IndexBinaryIDMap (as in FAISS): use IndexBinaryIDMap2")


class IndexBinaryIDMap2(IndexBinaryIDMap):
    """``faiss.IndexBinaryIDMap2(index)``: an id map that also reconstructs by id. Where an id
    repeats, reconstruct gives the code added last under it (as FAISS's reverse map)."""

    _reverse: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]] | None = None

    def _set_map(self, id_map: npt.NDArray[np.int64]) -> None:
        self._id_map = id_map
        self._reverse = None  # rebuilt on the next reconstruct

    def _reverse_map(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Sorted distinct ids and the last position holding each."""
        if self._reverse is None:
            keys, first_from_end = np.unique(self._id_map[::-1], return_index=True)
            self._reverse = keys, len(self._id_map) - 1 - first_from_end
        return self._reverse

    def _reconstruct(self, keys):
        ids, positions = self._reverse_map()
        at = np.minimum(np.searchsorted(ids, keys), max(len(ids) - 1, 0))
        found = ids[at] == keys if len(ids) else np.zeros(len(keys), dtype=bool)
        if not found.all():
            raise UnknownIdError(f"key {int(keys[~found][0])} not found")
        return self.index._reconstruct(positions[at])
