"""The id selectors remove_ids accepts: FAISS's IDSelectorBatch and IDSelectorRange shapes.

Every selector answers ``is_member(id)`` like FAISS's, and ``members(ids)``, a vectorised form that
returns a boolean array. remove_ids also takes any other object with an ``is_member`` method (a
FAISS selector, for instance), asking it one id at a time.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from ._errors import InvalidArgumentError


def as_id_array(ids: Any, name: str) -> npt.NDArray[np.int64]:
    """A 1-D int64 array from integer input (TypeError for floats: ids are never silently cast)."""
    a = np.asarray(ids)
    if a.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer array, got dtype {a.dtype}")
    if a.ndim != 1:
        raise InvalidArgumentError(f"{name} must be 1-D, got shape {a.shape}")
    if a.dtype == np.uint64 and a.size and int(a.max()) > np.iinfo(np.int64).max:
        raise InvalidArgumentError(f"{name} holds a value above the int64 range")
    return np.ascontiguousarray(a, dtype=np.int64)


class IDSelector:
    """Base of this module's selectors."""

    def members(self, ids: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        raise NotImplementedError

    def is_member(self, id: int) -> bool:
        return bool(self.members(np.array([id], dtype=np.int64))[0])


class IDSelectorBatch(IDSelector):
    """Selects the ids of a set: ``IDSelectorBatch(ids)``, or FAISS's ``IDSelectorBatch(n, ids)``."""

    def __init__(self, *args: Any) -> None:
        if len(args) == 1:
            ids = as_id_array(args[0], "ids")
        elif len(args) == 2:
            ids = as_id_array(args[1], "ids")
            if len(ids) != args[0]:
                raise InvalidArgumentError(f"IDSelectorBatch(n, ids): n={args[0]} but ids has {len(ids)} entries")
        else:
            raise TypeError(f"IDSelectorBatch takes ids or (n, ids), got {len(args)} arguments")
        self.ids = np.unique(ids)

    def members(self, ids: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        return np.isin(ids, self.ids)

    def __repr__(self) -> str:
        return f"IDSelectorBatch({len(self.ids)} ids)"


class IDSelectorRange(IDSelector):
    """Selects imin <= id < imax (FAISS's half-open range). ``assume_sorted`` is accepted for
    FAISS's signature; it changes nothing here."""

    def __init__(self, imin: int, imax: int, assume_sorted: bool = False) -> None:
        self.imin = int(imin)
        self.imax = int(imax)
        self.assume_sorted = bool(assume_sorted)

    def members(self, ids: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        return (ids >= self.imin) & (ids < self.imax)

    def __repr__(self) -> str:
        return f"IDSelectorRange({self.imin}, {self.imax})"


def selected(selector: Any, ids: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    """Which of ``ids`` the selector (ours or any object with is_member) selects."""
    if isinstance(selector, IDSelector):
        return selector.members(ids)
    is_member = getattr(selector, "is_member", None)
    if not callable(is_member):
        raise TypeError(f"remove_ids takes an id array or a selector, got {type(selector).__name__}")
    return np.fromiter((bool(is_member(int(i))) for i in ids), dtype=bool, count=len(ids))
