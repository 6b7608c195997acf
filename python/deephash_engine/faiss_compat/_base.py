"""What every compat index shares: FAISS's attributes, argument checks and the methods that are
defined from the others (assign, reconstruct_n, remove_ids, range_search's radius)."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import numpy.typing as npt

from ._errors import InvalidArgumentError, UnknownIdError
from ._selectors import as_id_array, selected

METRIC_L2 = 1  # the metric FAISS records for binary indexes (distances are Hamming all the same)


def as_int(v: Any, name: str) -> int:
    """A Python or NumPy integer as int (TypeError for anything else, bools and floats included)."""
    if type(v) is int:  # the common case, without the slower ABC check below
        return v
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(v).__name__}")
    return int(v)


def check_count(k: Any, name: str) -> int:
    k = as_int(k, name)
    if k <= 0:
        raise InvalidArgumentError(f"{name} must be > 0, got {k}")
    return k


class IndexBinary:
    """Base of the compat indexes: FAISS's ``IndexBinary`` surface over our engine.

    Subclasses implement ``ntotal`` and the operations the public methods are built on:
    ``_search``, ``_range`` (inclusive radius, FAISS's result order), ``_remove`` (given a
    membership test over what the selector sees: positions or ids) and ``_reconstruct``."""

    is_trained = True
    metric_type = METRIC_L2
    verbose = False
    thisown = True  # FAISS's SWIG ownership flag: Python always owns these objects

    def __init__(self, d: int) -> None:
        self.d = d
        self.code_size = d // 8

    @property
    def ntotal(self) -> int:
        raise NotImplementedError

    # -- argument checks (FAISS: TypeError for the dtype, AssertionError for shapes) --

    def _codes(self, x: Any, name: str = "x") -> npt.NDArray[np.uint8]:
        if not isinstance(x, np.ndarray):
            raise TypeError(f"{name} must be a numpy uint8 array, got {type(x).__name__}")
        if x.dtype != np.uint8:
            raise TypeError(f"{name} must be a uint8 array (packed codes), got dtype {x.dtype}")
        if x.ndim != 2 or x.shape[1] != self.code_size:
            raise InvalidArgumentError(
                f"{name} must have shape (n, {self.code_size}) for d={self.d}, got {x.shape}")
        return np.ascontiguousarray(x)

    # -- FAISS's methods --

    def train(self, x: npt.NDArray[np.uint8]) -> None:
        """Nothing to learn (is_trained is always True); checks x like FAISS does."""
        self._codes(x)

    def search(self, x: npt.NDArray[np.uint8], k: int, *, params: Any = None
               ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int64]]:
        """k nearest neighbours: (D int32, I int64), both (n, k), missing results -1 / 2147483647."""
        x = self._codes(x)
        k = check_count(k, "k")
        _no_params(params)
        return self._search(x, k)

    def assign(self, x: npt.NDArray[np.uint8], k: int, labels: npt.NDArray[np.int64] | None = None
               ) -> npt.NDArray[np.int64]:
        """search() without the distances; fills ``labels`` when given (shape (n, k), int64)."""
        x = self._codes(x)
        k = check_count(k, "k")
        if labels is not None:
            if not isinstance(labels, np.ndarray) or labels.dtype != np.int64:
                raise TypeError("labels must be an int64 numpy array")
            if labels.shape != (len(x), k):
                raise InvalidArgumentError(f"labels must have shape {(len(x), k)}, got {labels.shape}")
        _, I = self._search(x, k)
        if labels is None:
            return I
        labels[...] = I
        return labels

    def range_search(self, x: npt.NDArray[np.uint8], thresh: int, *, params: Any = None
                     ) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """Every item at distance < thresh (strict, as FAISS). Returns FAISS's (lims uint64 (n+1,),
        D float32, I int64); query i's results are [lims[i], lims[i+1]), in storage order."""
        x = self._codes(x)
        thresh = as_int(thresh, "thresh")
        _no_params(params)
        if thresh <= 0:
            return (np.zeros(len(x) + 1, dtype=np.uint64), np.zeros(0, dtype=np.float32),
                    np.zeros(0, dtype=np.int64))
        lims, D, I = self._range(x, min(thresh, self.d + 1) - 1)
        return lims.astype(np.uint64), D.astype(np.float32), I

    def reconstruct(self, key: int) -> npt.NDArray[np.uint8]:
        """The code stored under ``key``."""
        return self._reconstruct(np.array([as_int(key, "key")], dtype=np.int64))[0]

    def reconstruct_n(self, n0: int = 0, ni: int = -1, x: npt.NDArray[np.uint8] | None = None
                      ) -> npt.NDArray[np.uint8]:
        """Codes of keys n0 .. n0 + ni - 1 (ni = -1: up to ntotal), written into ``x`` if given."""
        n0, ni = as_int(n0, "n0"), as_int(ni, "ni")
        if ni == -1:
            ni = self.ntotal - n0
        if ni < 0:
            raise InvalidArgumentError(f"ni must be >= 0 (or -1), got {ni}")
        if x is not None:
            if not isinstance(x, np.ndarray) or x.dtype != np.uint8:
                raise TypeError("x must be a uint8 numpy array")
            if x.shape != (ni, self.code_size):
                raise InvalidArgumentError(f"x must have shape {(ni, self.code_size)}, got {x.shape}")
        codes = self._reconstruct(np.arange(n0, n0 + ni, dtype=np.int64))
        if x is None:
            return codes
        x[...] = codes
        return x

    def remove_ids(self, x: Any) -> int:
        """Remove the items an id array or a selector ``x`` names; returns how many went."""
        if isinstance(x, (np.ndarray, list, tuple)):
            ids = as_id_array(x, "ids")
            return self._remove(lambda held: np.isin(held, ids))
        return self._remove(lambda held: selected(x, held))

    # -- what subclasses provide --

    def _search(self, x, k):  # pragma: no cover - abstract
        raise NotImplementedError

    def _range(self, x, radius):  # pragma: no cover - abstract
        raise NotImplementedError

    def _remove(self, members) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def _reconstruct(self, keys):  # pragma: no cover - abstract
        raise NotImplementedError


def _no_params(params: Any) -> None:
    if params is not None:
        raise NotImplementedError("search parameters (params=) are not supported by the compat indexes")


def missing_key(key: int, ntotal: int) -> UnknownIdError:
    return UnknownIdError(f"key {key} not found (the index holds {ntotal} items)")
