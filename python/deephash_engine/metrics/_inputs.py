"""Validation and conversion of the metrics' arguments.

Every check raises at once with a message naming the argument, what was expected and what came.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import pack_bits

TIES = ("index", "expected")
NORMALIZE = ("retrieved", "min")
EMPTY = ("zero", "skip")


def _as_array(x: Any, name: str) -> np.ndarray:
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor, without importing torch
        x = x.detach().cpu()
    try:
        return np.asarray(x)
    except Exception as exc:  # noqa: BLE001 - report what came, whatever failed
        raise TypeError(f"{name} must be a numpy array, got {type(x).__name__}") from exc


def as_codes(x: Any, name: str) -> tuple[np.ndarray, int]:
    """Packed uint8 codes (n, ceil(nbits/8)), C-contiguous, and nbits.

    A uint8 array is taken as packed codes of 8 bits per byte (codes of another length have zero
    padding bits, which change no distance). A floating or signed integer array of shape (n, nbits),
    any nbits >= 1, holding only -1 and +1 is packed with the engine's contract (x >= 0 -> bit 1, least
    significant bit first, padding bits 0). Anything else raises: a real-valued or {0, 1} array is
    never silently binarised.
    """
    a = _as_array(x, name)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array of codes (n, ceil(nbits/8)) or (n, nbits), got shape {a.shape}")
    if a.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one code, got 0 rows")
    if a.dtype == np.uint8:
        if a.shape[1] == 0:
            raise ValueError(f"{name} must have at least one byte per code, got 0")
        return np.ascontiguousarray(a), 8 * a.shape[1]
    if a.dtype.kind == "f" or a.dtype.kind == "i":
        nbits = a.shape[1]
        if nbits == 0:
            raise ValueError(f"{name} holds +-1 codes of 0 bits; nbits must be at least 1")
        if not np.all((a == 1) | (a == -1)):
            bad = a[(a != 1) & (a != -1)][0]
            raise ValueError(
                f"{name} has dtype {a.dtype}, so it must hold only -1 and +1 (+-1 codes), got the value {bad!r}; "
                "binarise real values first (np.where(x >= 0, 1, -1)) or pass packed uint8 codes"
            )
        return pack_bits(a), nbits
    raise TypeError(
        f"{name} must be packed uint8 codes or +-1 codes (float or signed int), got dtype {a.dtype}"
    )


def as_code_pair(query_codes: Any, db_codes: Any) -> tuple[np.ndarray, np.ndarray, int]:
    """Both sets packed, and nbits: that of +-1 codes when a set is given so, else 8 bits per byte.

    A packed set matches +-1 codes packed in as many bytes (their padding bits are zero)."""
    q, q_bits = as_codes(query_codes, "query_codes")
    db, db_bits = as_codes(db_codes, "db_codes")
    either_packed = q_bits == 8 * q.shape[1] or db_bits == 8 * db.shape[1]
    if q.shape[1] != db.shape[1] or (q_bits != db_bits and not either_packed):
        raise ValueError(f"query_codes must have the code width of db_codes ({db_bits} bits), got {q_bits} bits")
    return q, db, min(q_bits, db_bits)


def as_labels(x: Any, name: str, n: int, codes_name: str) -> np.ndarray:
    """int64 class ids (n,) or uint64 multi-hot bitsets (n, ceil(C/64)), C-contiguous."""
    a = _as_array(x, name)
    if a.ndim not in (1, 2):
        raise ValueError(f"{name} must be class ids (n,) or multi-hot (n, C), got shape {a.shape}")
    if a.shape[0] != n:
        raise ValueError(f"{name} must have one row per code of {codes_name} ({n}), got {a.shape[0]}")
    if a.ndim == 1:
        if a.dtype.kind not in "iu":
            raise TypeError(f"{name} (class ids, 1-D) must have an integer dtype, got {a.dtype}")
        if a.dtype == np.uint64 and a.size and a.max() > np.iinfo(np.int64).max:
            raise ValueError(f"{name} holds a class id above the int64 range")
        return np.ascontiguousarray(a, dtype=np.int64)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name} (multi-hot, 2-D) must be bool, integer or float, got dtype {a.dtype}")
    if a.shape[1] == 0:
        raise ValueError(f"{name} (multi-hot) must have at least one label column, got 0")
    if a.dtype.kind != "b" and not np.all((a == 0) | (a == 1)):
        raise ValueError(f"{name} (multi-hot, 2-D) must hold only 0 and 1")
    packed = np.packbits(a != 0, axis=1, bitorder="little")
    words = -(-packed.shape[1] // 8)
    padded = np.zeros((n, words * 8), dtype=np.uint8)
    padded[:, : packed.shape[1]] = packed
    return padded.view("<u8").astype(np.uint64, copy=False)


def as_label_pair(query_labels: Any, db_labels: Any, nq: int, ndb: int) -> tuple[np.ndarray, np.ndarray]:
    ql_raw = _as_array(query_labels, "query_labels")
    dl_raw = _as_array(db_labels, "db_labels")
    ql = as_labels(ql_raw, "query_labels", nq, "query_codes")
    dl = as_labels(dl_raw, "db_labels", ndb, "db_codes")
    if ql_raw.ndim != dl_raw.ndim:
        raise ValueError(
            f"query_labels and db_labels must both be class ids (1-D) or both multi-hot (2-D), "
            f"got {ql_raw.ndim}-D and {dl_raw.ndim}-D"
        )
    if ql_raw.ndim == 2 and ql_raw.shape[1] != dl_raw.shape[1]:
        raise ValueError(
            f"query_labels must have as many label columns as db_labels ({dl_raw.shape[1]}), got {ql_raw.shape[1]}"
        )
    return ql, dl


def choice(value: Any, name: str, allowed: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(repr(a) for a in allowed)}, got {value!r}")
    return value


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def as_topk(topk: Any, n_db: int) -> int:
    """0 (the whole database) for None, else an int >= 1, clamped to the database size."""
    if topk is None:
        return 0
    if not _is_int(topk):
        raise TypeError(f"topk must be an int or None (the whole database), got {type(topk).__name__}")
    if topk < 1:
        raise ValueError(f"topk must be >= 1, or None for the whole database, got {topk}")
    return min(int(topk), n_db)


def as_ranks(ks: Any, n_db: int, name: str = "ks") -> list[int]:
    """A non-empty list of ranks, each an int in [1, n_db]."""
    values = [ks] if _is_int(ks) else ks
    try:
        values = list(values)
    except TypeError:
        raise TypeError(f"{name} must be an int or a sequence of ints, got {type(ks).__name__}") from None
    if not values:
        raise ValueError(f"{name} must hold at least one rank, got none")
    for k in values:
        if not _is_int(k):
            raise TypeError(f"{name} must hold ints, got {k!r} ({type(k).__name__})")
        if not 1 <= k <= n_db:
            raise ValueError(f"{name} must lie in [1, {n_db}] (the database size), got {k}")
    return [int(k) for k in values]


def as_radii(radius: Any, nbits: int) -> np.ndarray:
    """Radii to report: every radius 0..nbits for None, else the given ones, each in [0, nbits]."""
    if radius is None:
        return np.arange(nbits + 1)
    values = [radius] if _is_int(radius) else list(radius)
    if not values:
        raise ValueError("radius must hold at least one radius, got none")
    for r in values:
        if not _is_int(r):
            raise TypeError(f"radius must hold ints, got {r!r} ({type(r).__name__})")
        if not 0 <= r <= nbits:
            raise ValueError(f"radius must lie in [0, {nbits}] (nbits), got {r}")
    return np.asarray(values, dtype=np.int64)


@dataclass(frozen=True)
class Prepared:
    """Validated, converted inputs shared by every metric."""

    query_codes: np.ndarray
    db_codes: np.ndarray
    query_labels: np.ndarray
    db_labels: np.ndarray
    nbits: int  # +-1 codes' length; 8 bits per byte of packed codes

    @property
    def n_db(self) -> int:
        return int(self.db_codes.shape[0])

    @property
    def n_queries(self) -> int:
        return int(self.query_codes.shape[0])


def prepare(query_codes: Any, db_codes: Any, query_labels: Any, db_labels: Any) -> Prepared:
    q, db, nbits = as_code_pair(query_codes, db_codes)
    ql, dl = as_label_pair(query_labels, db_labels, q.shape[0], db.shape[0])
    return Prepared(q, db, ql, dl, nbits)
