"""Retrieval metrics of ranked lists from any index: product-quantization ADC, a float index, an
external engine. The Hamming functions of :mod:`.ranking` rank codes themselves; these take the
ranking as given, either as database ids per query (best first) or as a distance matrix.

- ``ranked_ids``: int (nq, L), row q the database ids retrieved for query q, best first, each id
  at most once per row. L may be the whole database or a prefix of the ranking (top L).
- ``distances``: (nq, N) float, smaller is closer (pass ``largest=True`` for similarities such as
  inner products); ranked with a stable sort, so equal values fall in database-id order (the
  ``ties="index"`` policy of the Hamming path, under which both paths give the same numbers).
- labels: as in :mod:`.ranking`, class ids (n,) or multi-hot (n, C).

AP@k follows the policy's ``normalize`` and ``empty`` rules exactly as the Hamming path does;
``ties="expected"`` needs the distances of the whole tie group and is refused here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._inputs import _as_array, as_label_pair, as_ranks
from .policies import EvalPolicy, resolve_policy

#: Queries per block, so no (nq, N, label words) array is ever built at once.
_BLOCK = 256


def _check_ids(ranked_ids: Any, n_db: int) -> np.ndarray:
    ids = _as_array(ranked_ids, "ranked_ids")
    if ids.ndim != 2 or ids.shape[1] == 0:
        raise ValueError(f"ranked_ids: expected a 2-D array (n_queries, length >= 1), got shape {ids.shape}")
    if ids.dtype.kind not in "iu":
        raise TypeError(f"ranked_ids: expected an integer dtype, got {ids.dtype}")
    ids = ids.astype(np.int64, copy=False)
    if ids.size and (ids.min() < 0 or ids.max() >= n_db):
        raise ValueError(f"ranked_ids: expected ids in [0, {n_db}) (the database size), "
                         f"got [{int(ids.min())}, {int(ids.max())}] (a -1 from an index means too few results)")
    ordered = np.sort(ids, axis=1)
    if bool((ordered[:, 1:] == ordered[:, :-1]).any()):
        row = int(np.flatnonzero((ordered[:, 1:] == ordered[:, :-1]).any(axis=1))[0])
        raise ValueError(f"ranked_ids: expected each id at most once per row, got a repeat in row {row}")
    return ids


def _relevant(ql: np.ndarray, dl: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """(nq, L) bool: database item ids[q, j] shares a label with query q."""
    if dl.ndim == 1:
        return dl[ids] == ql[:, None]
    return (np.bitwise_and(dl[ids], ql[:, None, :]) != 0).any(axis=2)


def _relevant_totals(ql: np.ndarray, dl: np.ndarray) -> np.ndarray:
    """(nq,) relevant items in the whole database per query."""
    if dl.ndim == 1:
        classes, counts = np.unique(dl, return_counts=True)
        pos = np.searchsorted(classes, ql).clip(0, max(classes.size - 1, 0))
        return np.where(classes[pos] == ql, counts[pos], 0).astype(np.int64)
    totals = np.empty(ql.shape[0], dtype=np.int64)
    for start in range(0, ql.shape[0], _BLOCK):
        part = ql[start:start + _BLOCK]
        totals[start:start + _BLOCK] = (np.bitwise_and(dl[None, :, :], part[:, None, :]) != 0).any(axis=2).sum(1)
    return totals


def _prepared(ranked_ids, query_labels, db_labels):
    ql_raw = _as_array(query_labels, "query_labels")
    dl_raw = _as_array(db_labels, "db_labels")
    if ql_raw.ndim not in (1, 2) or dl_raw.ndim not in (1, 2):
        raise ValueError(f"query_labels, db_labels: expected class ids (n,) or multi-hot (n, C), "
                         f"got shapes {ql_raw.shape} and {dl_raw.shape}")
    ids = _check_ids(ranked_ids, dl_raw.shape[0])
    ql, dl = as_label_pair(ql_raw, dl_raw, ids.shape[0], dl_raw.shape[0])
    return ids, ql, dl


def _policy(policy, normalize, empty) -> EvalPolicy:
    p = resolve_policy(policy, normalize=normalize, empty=empty)
    if p.ties != "index":
        raise ValueError(f"policy.ties: expected 'index' for ranked lists (the list fixes the order), got {p.ties!r}")
    return p


def average_precision_from_ranking(ranked_ids: Any, query_labels: Any, db_labels: Any,
                                   topk: int | None = None, normalize: str | None = None,
                                   empty: str | None = None, *,
                                   policy: str | EvalPolicy | None = None) -> np.ndarray:
    """AP@topk of every query from its ranked list (float64 (nq,), NaN where ``empty="skip"``
    leaves a query out). ``topk=None`` scores the whole list; a topk beyond a list that does not
    cover the whole database is refused (the items after the list are unknown)."""
    p = _policy(policy, normalize, empty)
    ids, ql, dl = _prepared(ranked_ids, query_labels, db_labels)
    n_db, length = dl.shape[0], ids.shape[1]
    if topk is None:
        k = length
    else:
        if isinstance(topk, bool) or not isinstance(topk, (int, np.integer)) or topk < 1:
            raise ValueError(f"topk: expected an int >= 1 or None, got {topk!r}")
        if topk > length and length < n_db:
            raise ValueError(f"topk: expected at most the ranked list length {length} "
                             f"(the lists do not cover the {n_db} database items), got {topk}")
        k = min(int(topk), length)
    totals = _relevant_totals(ql, dl) if p.normalize == "min" else None
    out = np.empty(ids.shape[0], dtype=np.float64)
    positions = np.arange(1, k + 1, dtype=np.float64)
    for start in range(0, ids.shape[0], _BLOCK):
        rows = slice(start, start + _BLOCK)
        rel = _relevant(ql[rows], dl, ids[rows, :k])
        hits = np.cumsum(rel, axis=1)
        precision_sum = np.where(rel, hits / positions, 0.0).sum(1)
        if p.normalize == "retrieved":
            den = hits[:, -1].astype(np.float64)
        else:
            den = np.minimum(k, totals[rows]).astype(np.float64)
        ap = np.divide(precision_sum, den, out=np.zeros_like(precision_sum), where=den > 0)
        out[rows] = np.where(den > 0, ap, 0.0 if p.empty == "zero" else np.nan)
    return out


def mean_average_precision_from_ranking(ranked_ids: Any, query_labels: Any, db_labels: Any,
                                        topk: int | None = None, normalize: str | None = None,
                                        empty: str | None = None, *,
                                        policy: str | EvalPolicy | None = None) -> float:
    """mAP@topk of ranked lists: the mean of :func:`average_precision_from_ranking` over the
    queries kept (NaN when every query is skipped)."""
    ap = average_precision_from_ranking(ranked_ids, query_labels, db_labels, topk, normalize, empty,
                                        policy=policy)
    return float(np.nanmean(ap)) if bool(np.isfinite(ap).any()) else float("nan")


def rank_by_distance(distances: Any, largest: bool = False) -> np.ndarray:
    """Database ids of each row of a (nq, N) distance matrix, closest first; equal values in id
    order. ``largest=True`` ranks the largest value first (similarities)."""
    d = _as_array(distances, "distances")
    if d.ndim != 2 or d.shape[1] == 0:
        raise ValueError(f"distances: expected a 2-D array (n_queries, n_db >= 1), got shape {d.shape}")
    if d.dtype.kind not in "fiu":
        raise TypeError(f"distances: expected a numeric dtype, got {d.dtype}")
    if d.dtype.kind == "f" and not bool(np.isfinite(d).all()):
        raise ValueError("distances: expected finite values, got NaN or infinity")
    key = -d.astype(np.float64) if largest else d
    return np.argsort(key, axis=1, kind="stable")


def mean_average_precision_from_distances(distances: Any, query_labels: Any, db_labels: Any,
                                          topk: int | None = None, largest: bool = False,
                                          normalize: str | None = None, empty: str | None = None, *,
                                          policy: str | EvalPolicy | None = None) -> float:
    """mAP@topk of a (nq, N) distance (or, with ``largest``, similarity) matrix."""
    return mean_average_precision_from_ranking(rank_by_distance(distances, largest), query_labels,
                                               db_labels, topk, normalize, empty, policy=policy)


def precision_recall_from_ranking(ranked_ids: Any, query_labels: Any, db_labels: Any,
                                  ks: int | list[int], empty: str | None = None, *,
                                  policy: str | EvalPolicy | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(mean precision, mean recall) within the top k of the lists, for each k of ``ks`` (each
    at most the list length). A query with nothing relevant in the database counts 0
    (``empty="zero"``) or is left out (``"skip"``), as ``curve_empty`` of the Hamming path."""
    p = resolve_policy(policy, curve_empty=empty)
    ids, ql, dl = _prepared(ranked_ids, query_labels, db_labels)
    ranks = as_ranks(ks, ids.shape[1])
    totals = _relevant_totals(ql, dl)
    found = np.empty((ids.shape[0], len(ranks)), dtype=np.float64)
    cut = np.asarray(ranks) - 1
    for start in range(0, ids.shape[0], _BLOCK):
        rows = slice(start, start + _BLOCK)
        found[rows] = np.cumsum(_relevant(ql[rows], dl, ids[rows, :max(ranks)]), axis=1)[:, cut]
    keep = totals > 0 if p.curve_empty == "skip" else np.ones(ids.shape[0], dtype=bool)
    if not keep.any():
        return np.full(len(ranks), np.nan), np.full(len(ranks), np.nan)
    precision = found / np.asarray(ranks, dtype=np.float64)
    recall = np.divide(found, totals[:, None], out=np.zeros_like(found), where=totals[:, None] > 0)
    return precision[keep].mean(0), recall[keep].mean(0)
