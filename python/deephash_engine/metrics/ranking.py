"""Retrieval metrics over Hamming ranking, computed in the C++ core.

Every function takes the query codes, the database codes and their labels:

- codes: packed ``uint8`` arrays (n, ceil(nbits/8)), or +-1 arrays (n, nbits) of a float or signed
  integer dtype (packed with x >= 0 -> bit 1, least significant bit first);
- labels: int class ids (n,) or multi-hot (n, C) of 0/1; an item is relevant to a query when
  they share at least one label.

Each query is ranked by counting over the nbits+1 possible distances (O(N) per query, parallel
over queries, no (nq x N) matrix). Policies come from ``policy`` (see
:mod:`deephash_engine.metrics.policies`) and can be overridden per call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _core
from ._inputs import Prepared, as_radii, as_ranks, as_topk, prepare
from .policies import EvalPolicy, resolve_policy


def run_core(
    data: Prepared,
    policy: EvalPolicy,
    *,
    topk: int = 0,
    want_map: bool = False,
    ks: list[int] | None = None,
    want_radius: bool = False,
    empty: str | None = None,
) -> dict[str, Any]:
    """One ranking pass of the core computing the requested parts (see _core.evaluate_retrieval).

    empty: the policy for every part of this pass (default: the policy's ``empty`` when mAP is
    wanted, else its ``curve_empty``).
    """
    if empty is None:
        empty = policy.empty if want_map else policy.curve_empty
    return _core.evaluate_retrieval(
        data.query_codes,
        data.db_codes,
        data.query_labels,
        data.db_labels,
        topk=topk,
        ties=policy.ties,
        normalize=policy.normalize,
        empty=empty,
        want_map=want_map,
        ks=ks or [],
        want_radius=want_radius,
    )


def mean_average_precision(
    query_codes: Any,
    db_codes: Any,
    query_labels: Any,
    db_labels: Any,
    topk: int | None = None,
    ties: str | None = None,
    normalize: str | None = None,
    empty: str | None = None,
    *,
    policy: str | EvalPolicy | None = None,
) -> float:
    """mAP@topk (``topk=None``: the whole database, every item included).

    ties: ``"index"`` (equal distances ranked by database index) or ``"expected"`` (exact
    expected AP over uniformly random orders within tie groups).
    normalize: ``"retrieved"`` divides a query's precision sum by the relevant items in its top k;
    ``"min"`` by min(k, relevant items in the database).
    empty: a query whose denominator is zero (nothing relevant retrieved under ``"retrieved"``,
    nothing relevant in the database under ``"min"``) counts 0 (``"zero"``) or is left out of the
    mean (``"skip"``). Under ``ties="expected"`` a query is skipped only when no tie order retrieves
    a relevant item; orders that retrieve none count 0 in its expected AP.
    Returns NaN when every query is skipped. Defaults come from ``policy`` ("default" when None).
    """
    return float(_map_pass(query_codes, db_codes, query_labels, db_labels, topk, ties, normalize, empty, policy)["map"])


def _map_pass(query_codes, db_codes, query_labels, db_labels, topk, ties, normalize, empty, policy):
    p = resolve_policy(policy, ties=ties, normalize=normalize, empty=empty)
    data = prepare(query_codes, db_codes, query_labels, db_labels)
    return run_core(data, p, topk=as_topk(topk, data.n_db), want_map=True)


def average_precision(
    query_codes: Any,
    db_codes: Any,
    query_labels: Any,
    db_labels: Any,
    topk: int | None = None,
    ties: str | None = None,
    normalize: str | None = None,
    empty: str | None = None,
    *,
    policy: str | EvalPolicy | None = None,
) -> np.ndarray:
    """AP@topk of every query (float64, (nq,)), with the policies of :func:`mean_average_precision`;
    NaN marks a query that ``empty="skip"`` leaves out. Its NaN-ignoring mean is the mAP."""
    out = _map_pass(query_codes, db_codes, query_labels, db_labels, topk, ties, normalize, empty, policy)
    return np.asarray(out["average_precision"])


def _rank_curve(data: Prepared, ks: Any, ties: str | None, empty: str | None, policy: Any, name: str = "ks"):
    p = resolve_policy(policy, ties=ties, curve_empty=empty)
    ranks = as_ranks(ks, data.n_db, name)
    return ranks, run_core(data, p, ks=ranks), p


def precision_at_k(
    query_codes: Any,
    db_codes: Any,
    query_labels: Any,
    db_labels: Any,
    ks: int | list[int],
    ties: str | None = None,
    empty: str | None = None,
    *,
    policy: str | EvalPolicy | None = None,
) -> np.ndarray:
    """Mean precision within the top k for each k of ``ks`` (each in [1, database size]).

    empty: queries with no relevant item in the database are kept (``"zero"``) or left out
    (``"skip"``) of the mean. Returns float64 (len(ks),), NaN where every query is skipped.
    """
    data = prepare(query_codes, db_codes, query_labels, db_labels)
    _, out, _ = _rank_curve(data, ks, ties, empty, policy)
    return np.asarray(out["precision_at_k"])


def recall_at_k(
    query_codes: Any,
    db_codes: Any,
    query_labels: Any,
    db_labels: Any,
    ks: int | list[int],
    ties: str | None = None,
    empty: str | None = None,
    *,
    policy: str | EvalPolicy | None = None,
) -> np.ndarray:
    """Mean recall within the top k for each k of ``ks``.

    A query with no relevant item in the database has recall 0 under ``empty="zero"`` and is left
    out under ``"skip"``. Returns float64 (len(ks),).
    """
    data = prepare(query_codes, db_codes, query_labels, db_labels)
    _, out, _ = _rank_curve(data, ks, ties, empty, policy)
    return np.asarray(out["recall_at_k"])


@dataclass(frozen=True)
class PRCurve:
    """Mean precision and recall after each number of retrieved items ``ranks``."""

    ranks: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    n_queries: int  # queries in the means
    policy: EvalPolicy

    def to_dict(self) -> dict[str, Any]:
        return {
            "ranks": self.ranks.tolist(),
            "precision": self.precision.tolist(),
            "recall": self.recall.tolist(),
            "n_queries": self.n_queries,
        }


def default_ranks(n_db: int, num_points: int = 100) -> list[int]:
    """About ``num_points`` ranks spread evenly over 1..n_db, always ending at n_db."""
    if not isinstance(num_points, int) or num_points < 2:
        raise ValueError(f"num_points must be an int >= 2, got {num_points!r}")
    return sorted({int(round(x)) for x in np.linspace(1, n_db, num=min(num_points, n_db))})


def pr_curve_by_rank(
    query_codes: Any,
    db_codes: Any,
    query_labels: Any,
    db_labels: Any,
    ranks: list[int] | None = None,
    ties: str | None = None,
    empty: str | None = None,
    *,
    num_points: int = 100,
    policy: str | EvalPolicy | None = None,
) -> PRCurve:
    """Precision and recall as functions of the number retrieved (the PR curve by rank).

    ranks: the cut-offs (default: ``num_points`` ranks spread over 1..N, ending at N).
    """
    data = prepare(query_codes, db_codes, query_labels, db_labels)
    grid = default_ranks(data.n_db, num_points) if ranks is None else ranks
    ks, out, p = _rank_curve(data, grid, ties, empty, policy, "ranks")
    return PRCurve(
        ranks=np.asarray(ks, dtype=np.int64),
        precision=np.asarray(out["precision_at_k"]),
        recall=np.asarray(out["recall_at_k"]),
        n_queries=int(out["rank_queries"]),
        policy=p,
    )


@dataclass(frozen=True)
class RadiusMetrics:
    """Precision, recall and mAP of the items within Hamming radius r, for each r of ``radii``.

    A query with nothing within the radius scores precision 0 and mAP 0 there; mAP within the
    radius divides by the relevant items retrieved (thulab/DeepHash conventions).
    """

    radii: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    map: np.ndarray
    n_queries: int
    policy: EvalPolicy

    def at(self, radius: int) -> dict[str, float]:
        """The three metrics at one of the reported radii."""
        hits = np.flatnonzero(self.radii == radius)
        if hits.size == 0:
            raise KeyError(f"radius {radius} was not computed; radii: {self.radii.tolist()}")
        i = int(hits[0])
        return {"precision": float(self.precision[i]), "recall": float(self.recall[i]), "map": float(self.map[i])}

    def to_dict(self) -> dict[str, Any]:
        return {
            "radii": self.radii.tolist(),
            "precision": self.precision.tolist(),
            "recall": self.recall.tolist(),
            "map": self.map.tolist(),
            "n_queries": self.n_queries,
        }


def radius_metrics_from(out: dict[str, Any], radii: np.ndarray, policy: EvalPolicy) -> RadiusMetrics:
    return RadiusMetrics(
        radii=radii,
        precision=np.asarray(out["radius_precision"])[radii],
        recall=np.asarray(out["radius_recall"])[radii],
        map=np.asarray(out["radius_map"])[radii],
        n_queries=int(out["radius_queries"]),
        policy=policy,
    )


def hamming_radius_metrics(
    query_codes: Any,
    db_codes: Any,
    query_labels: Any,
    db_labels: Any,
    radius: int | list[int] | None = None,
    ties: str | None = None,
    empty: str | None = None,
    *,
    policy: str | EvalPolicy | None = None,
) -> RadiusMetrics:
    """Precision, recall and mAP within Hamming radius r (items at distance <= r).

    radius: None for every r in 0..nbits, or one radius, or a list. empty: queries with no relevant
    item in the database count 0 (``"zero"``) or are left out (``"skip"``).
    """
    p = resolve_policy(policy, ties=ties, curve_empty=empty)
    data = prepare(query_codes, db_codes, query_labels, db_labels)
    radii = as_radii(radius, data.nbits)
    out = run_core(data, p, want_radius=True)
    return radius_metrics_from(out, radii, p)
