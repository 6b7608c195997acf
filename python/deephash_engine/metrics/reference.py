"""A plain NumPy reference of the retrieval metrics: slow, simple, the oracle of the tests.

It ranks each query with a stable sort of its Hamming distances (so ties fall in database-index
order) and computes every metric from the ranked relevance vector, one query at a time. For
``ties="expected"`` it sums the per-position expectations directly (no harmonic-number algebra)
and weighs the cut group's outcomes with exact binomial coefficients. It shares no code with the
engine's implementation. Inputs: packed uint8 codes, class ids (n,) or multi-hot 0/1 (n, C).
"""

from __future__ import annotations

from math import comb

import numpy as np


def hamming_distances(query: np.ndarray, db: np.ndarray) -> np.ndarray:
    """Distances of one packed query (code_size,) to every packed row of db."""
    return np.unpackbits(np.bitwise_xor(db, query[None, :]), axis=1).sum(axis=1).astype(np.int64)


def relevance(query_label: np.ndarray, db_labels: np.ndarray) -> np.ndarray:
    """Boolean (N,): the database items sharing at least one label with the query."""
    if db_labels.ndim == 1:
        return db_labels == query_label
    return np.logical_and(db_labels != 0, np.asarray(query_label)[None, :] != 0).any(axis=1)


def ranked(query, db, query_label, db_labels):
    """(sorted distances, relevance in rank order) under a stable sort: ties by database index."""
    dist = hamming_distances(query, db)
    rel = relevance(query_label, db_labels)
    order = np.argsort(dist, kind="stable")
    return dist[order], rel[order]


def _groups(dist_sorted: np.ndarray):
    """(start, size) of each run of equal distances in a sorted distance vector."""
    starts = np.flatnonzero(np.r_[True, dist_sorted[1:] != dist_sorted[:-1]])
    sizes = np.diff(np.r_[starts, dist_sorted.size])
    return list(zip(starts.tolist(), sizes.tolist()))


def _expected_prefix(s: int, before: int, g: int, r: int, m: int) -> float:
    """E[sum of precision at the relevant items among the first m positions of a shuffled group]."""
    if r == 0 or m == 0:
        return 0.0
    j = np.arange(1, m + 1, dtype=np.float64)
    inside = (j - 1) * (r - 1) / (g - 1) if g > 1 else np.zeros(m)
    return float(np.sum((r / g) * (before + 1 + inside) / (s + j)))


def average_precision(dist_sorted, rel_ranked, k, ties="index", normalize="retrieved"):
    """(AP@k, defined): defined is False when the denominator is zero (for every tie order)."""
    n = rel_ranked.size
    k = n if k is None else min(k, n)
    total_rel = int(rel_ranked.sum())
    if ties == "index":
        top = rel_ranked[:k]
        cum = np.cumsum(top)
        precision_sum = float(np.sum((cum / np.arange(1, k + 1))[top]))
        den = int(top.sum()) if normalize == "retrieved" else min(k, total_rel)
        return (precision_sum / den, True) if den > 0 else (0.0, False)
    # Expected over random orders within tie groups.
    sum_before, rel_before = 0.0, 0
    for s, g in _groups(dist_sorted):
        r = int(rel_ranked[s : s + g].sum())
        if s + g < k:  # the whole group is inside the cut and the cut is not at its end
            sum_before += _expected_prefix(s, rel_before, g, r, g)
            rel_before += r
            continue
        m = k - s  # positions of this group inside the cut
        if normalize == "min":
            den = min(k, total_rel)
            if den == 0:
                return 0.0, False
            return (sum_before + _expected_prefix(s, rel_before, g, r, m)) / den, True
        x_lo, x_hi = max(0, m - (g - r)), min(r, m)
        if rel_before + x_hi == 0:
            return 0.0, False
        ways = comb(g, m)
        expected = 0.0
        for x in range(x_lo, x_hi + 1):
            if rel_before + x == 0:
                continue
            weight = comb(r, x) * comb(g - r, m - x) / ways
            expected += weight * (sum_before + _expected_prefix(s, rel_before, m, x, m)) / (rel_before + x)
        return expected, True
    raise AssertionError("unreachable: the cut lies inside the database")


def relevant_within(dist_sorted, rel_ranked, n, ties="index") -> float:
    """(Expected) relevant items among the first n ranked."""
    if ties == "index":
        return float(rel_ranked[:n].sum())
    for s, g in _groups(dist_sorted):
        if s + g >= n:
            return float(rel_ranked[:s].sum()) + (n - s) * float(rel_ranked[s : s + g].sum()) / g
    raise AssertionError("unreachable")


def _mean(values, keep):
    kept = [v for v, k in zip(values, keep) if k]
    return float(np.mean(kept)) if kept else float("nan")


def mean_average_precision(q, db, ql, dl, topk=None, ties="index", normalize="retrieved", empty="zero"):
    aps, keep = [], []
    for i in range(q.shape[0]):
        d, rel = ranked(q[i], db, ql[i], dl)
        ap, defined = average_precision(d, rel, topk, ties, normalize)
        aps.append(ap)
        keep.append(defined or empty == "zero")
    return _mean(aps, keep)


def precision_recall_at_k(q, db, ql, dl, ks, ties="index", empty="zero"):
    """(mean precision, mean recall) arrays aligned with ks."""
    precision, recall, keep = [], [], []
    for i in range(q.shape[0]):
        d, rel = ranked(q[i], db, ql[i], dl)
        total = int(rel.sum())
        found = np.array([relevant_within(d, rel, k, ties) for k in ks])
        precision.append(found / np.asarray(ks, dtype=np.float64))
        recall.append(found / total if total else np.zeros(len(ks)))
        keep.append(total > 0 or empty == "zero")
    kept = np.flatnonzero(keep)
    if kept.size == 0:
        return np.full(len(ks), np.nan), np.full(len(ks), np.nan)
    return np.mean(np.array(precision)[kept], axis=0), np.mean(np.array(recall)[kept], axis=0)


def radius_metrics(q, db, ql, dl, ties="index", empty="zero"):
    """(precision, recall, map) arrays over radii 0..nbits."""
    nbits = db.shape[1] * 8
    rows, keep = [], []
    for i in range(q.shape[0]):
        d, rel = ranked(q[i], db, ql[i], dl)
        total = int(rel.sum())
        row = []
        for radius in range(nbits + 1):
            n = int(np.sum(d <= radius))
            found = int(rel[:n].sum())
            precision = found / n if n else 0.0
            recall = found / total if total else 0.0
            ap = average_precision(d, rel, n, ties, "retrieved")[0] if found else 0.0
            row.append((precision, recall, ap))
        rows.append(row)
        keep.append(total > 0 or empty == "zero")
    kept = np.flatnonzero(keep)
    if kept.size == 0:
        return tuple(np.full(nbits + 1, np.nan) for _ in range(3))
    arr = np.array(rows)[kept]
    means = arr.mean(axis=0)
    return means[:, 0], means[:, 1], means[:, 2]
