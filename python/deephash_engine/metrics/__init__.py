"""Retrieval evaluation for binary codes: mAP@k, P@k, R@k, PR curves, Hamming-radius metrics; and
the same scores for ranked lists or distance matrices from any index (:mod:`.ranked`).

The Hamming ranking and its metrics run in the C++ core (counting over the nbits+1 distances,
O(N) per query, parallel over queries); ranked lists are scored in NumPy, a block of queries at a
time. The policies the research code bases leave implicit (tie order, AP normalisation, queries
with nothing relevant) are explicit arguments, bundled in named policies; docs/policies.md says
how each preset relates to the original code.
"""

from .plotting import plot_report
from .policies import EVAL_POLICIES, EvalPolicy, resolve_policy
from .ranked import (
    average_precision_from_ranking,
    mean_average_precision_from_distances,
    mean_average_precision_from_ranking,
    precision_recall_from_ranking,
    rank_by_distance,
)
from .ranking import (
    PRCurve,
    RadiusMetrics,
    average_precision,
    hamming_radius_metrics,
    mean_average_precision,
    pr_curve_by_rank,
    precision_at_k,
    recall_at_k,
)
from .report import EvaluationReport, evaluate

__all__ = [
    "EVAL_POLICIES",
    "EvaluationReport",
    "PRCurve",
    "EvalPolicy",
    "RadiusMetrics",
    "average_precision",
    "average_precision_from_ranking",
    "evaluate",
    "hamming_radius_metrics",
    "mean_average_precision",
    "mean_average_precision_from_distances",
    "mean_average_precision_from_ranking",
    "plot_report",
    "pr_curve_by_rank",
    "precision_recall_from_ranking",
    "precision_at_k",
    "rank_by_distance",
    "recall_at_k",
    "resolve_policy",
]
