"""evaluate(): every retrieval metric from one ranking pass, with the policy that produced them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._inputs import as_radii, as_ranks, as_topk, prepare
from .policies import EvalPolicy, resolve_policy
from .ranking import PRCurve, RadiusMetrics, default_ranks, radius_metrics_from, run_core

DEFAULT_KS = (1, 10, 50, 100, 500, 1000, 5000, 10000)


@dataclass(frozen=True)
class EvaluationReport:
    """Retrieval metrics of one set of codes, and everything needed to reproduce them."""

    policy: EvalPolicy
    topk: int | None  # mAP cut-off as requested (None: the whole database)
    n_queries: int
    n_db: int
    nbits: int
    label_kind: str  # "class" or "multi-hot"
    map: float
    map_queries: int  # queries in the mAP mean
    average_precision: np.ndarray = field(repr=False)  # per query, NaN where skipped
    ks: np.ndarray = field(repr=False)
    precision_at_k: np.ndarray = field(repr=False)
    recall_at_k: np.ndarray = field(repr=False)
    pr_curve: PRCurve = field(repr=False)
    radius: RadiusMetrics = field(repr=False)

    @property
    def map_name(self) -> str:
        return "mAP@all" if self.topk is None or self.topk >= self.n_db else f"mAP@{self.topk}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (per-query APs left out; they are in ``average_precision``)."""
        return {
            "policy": self.policy.to_dict(),
            "topk": self.topk,
            "n_queries": self.n_queries,
            "n_db": self.n_db,
            "nbits": self.nbits,
            "label_kind": self.label_kind,
            "map_name": self.map_name,
            "map": self.map,
            "map_queries": self.map_queries,
            "precision_at_k": dict(zip(map(str, self.ks.tolist()), self.precision_at_k.tolist())),
            "recall_at_k": dict(zip(map(str, self.ks.tolist()), self.recall_at_k.tolist())),
            "pr_curve": self.pr_curve.to_dict(),
            "radius": self.radius.to_dict(),
        }

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    def summary(self) -> str:
        """A few lines for a log: the policy, mAP, P@k and the radius-2 metrics."""
        p = self.policy
        lines = [
            f"policy {p.name}: ties={p.ties} normalize={p.normalize} empty={p.empty} curve_empty={p.curve_empty}",
            f"{self.n_queries} queries x {self.n_db} database codes, {self.nbits} bits, {self.label_kind} labels",
            f"{self.map_name} = {self.map:.6f} over {self.map_queries} queries",
            "P@k: " + ", ".join(f"P@{k}={v:.4f}" for k, v in zip(self.ks.tolist(), self.precision_at_k.tolist())),
        ]
        if 2 in self.radius.radii:
            r2 = self.radius.at(2)
            lines.append(
                f"Hamming radius 2: precision={r2['precision']:.4f} recall={r2['recall']:.4f} mAP={r2['map']:.4f}"
            )
        return "\n".join(lines)


def evaluate(
    query_codes: Any,
    db_codes: Any,
    query_labels: Any,
    db_labels: Any,
    *,
    policy: str | EvalPolicy | None = None,
    topk: int | None = None,
    ks: list[int] | None = None,
    pr_points: int = 100,
    radius: int | list[int] | None = None,
    ties: str | None = None,
    normalize: str | None = None,
    empty: str | None = None,
    curve_empty: str | None = None,
) -> EvaluationReport:
    """mAP@topk, P@k and R@k at ``ks``, the PR curve by rank and the Hamming-radius metrics.

    ks: rank cut-offs (default: those of 1, 10, 50, 100, 500, 1000, 5000, 10000 within the
    database). pr_points: ranks on the PR curve. radius: radii of the radius metrics (default all,
    0..nbits). The policies come from ``policy`` with explicit arguments overriding it; the report
    states the policy it followed.
    """
    p = resolve_policy(policy, ties=ties, normalize=normalize, empty=empty, curve_empty=curve_empty)
    data = prepare(query_codes, db_codes, query_labels, db_labels)
    k_eff = as_topk(topk, data.n_db)
    cut_offs = [k for k in DEFAULT_KS if k <= data.n_db] if ks is None else as_ranks(ks, data.n_db)
    curve_ranks = default_ranks(data.n_db, pr_points)
    radii = as_radii(radius, data.nbits)

    # The mAP part follows `empty`, the curves `curve_empty`: one pass when they agree, else two.
    curve_args = {"ks": cut_offs + curve_ranks, "want_radius": True, "empty": p.curve_empty}
    if p.empty == p.curve_empty:
        maps = curves = run_core(data, p, topk=k_eff, want_map=True, **curve_args)
    else:
        maps = run_core(data, p, topk=k_eff, want_map=True)
        curves = run_core(data, p, **curve_args)
    nk = len(cut_offs)
    precision = np.asarray(curves["precision_at_k"])
    recall = np.asarray(curves["recall_at_k"])
    return EvaluationReport(
        policy=p,
        topk=topk,
        n_queries=data.n_queries,
        n_db=data.n_db,
        nbits=data.nbits,
        label_kind="class" if data.db_labels.ndim == 1 else "multi-hot",
        map=float(maps["map"]),
        map_queries=int(maps["map_queries"]),
        average_precision=np.asarray(maps["average_precision"]),
        ks=np.asarray(cut_offs, dtype=np.int64),
        precision_at_k=precision[:nk],
        recall_at_k=recall[:nk],
        pr_curve=PRCurve(
            ranks=np.asarray(curve_ranks, dtype=np.int64),
            precision=precision[nk:],
            recall=recall[nk:],
            n_queries=int(curves["rank_queries"]),
            policy=p,
        ),
        radius=radius_metrics_from(curves, radii, p),
    )
