"""plot_report(): PR and P@N curves of an EvaluationReport as a PNG (needs matplotlib)."""

from __future__ import annotations

import os
from typing import Any

from .report import EvaluationReport


def _figure_class() -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(
            "plot_report needs matplotlib, an optional dependency: pip install 'deephash-engine[plot]'"
        ) from exc
    return Figure


def plot_report(report: EvaluationReport, path: str | os.PathLike[str], *, title: str | None = None) -> None:
    """Writes three panels to ``path`` (PNG): precision-recall by rank, precision@N, and precision
    and recall against the Hamming radius. Uses matplotlib's object API (no pyplot global state)."""
    if not isinstance(report, EvaluationReport):
        raise TypeError(f"report must be an EvaluationReport (from evaluate()), got {type(report).__name__}")
    figure_class = _figure_class()
    fig = figure_class(figsize=(15, 4.5), dpi=100)
    pr_ax, pn_ax, radius_ax = fig.subplots(1, 3)

    curve = report.pr_curve
    pr_ax.plot(curve.recall, curve.precision, marker=".", markersize=3)
    pr_ax.set_xlabel("recall")
    pr_ax.set_ylabel("precision")
    pr_ax.set_title("precision-recall (by rank)")
    pr_ax.set_xlim(0, 1)
    pr_ax.set_ylim(0, 1.02)

    pn_ax.plot(curve.ranks, curve.precision, label="P@N")
    pn_ax.plot(curve.ranks, curve.recall, label="R@N")
    pn_ax.set_xlabel("N (items retrieved)")
    pn_ax.set_title("precision and recall at N")
    pn_ax.set_ylim(0, 1.02)
    pn_ax.legend()

    rad = report.radius
    radius_ax.plot(rad.radii, rad.precision, marker=".", label="precision")
    radius_ax.plot(rad.radii, rad.recall, marker=".", label="recall")
    radius_ax.plot(rad.radii, rad.map, marker=".", label="mAP")
    radius_ax.set_xlabel("Hamming radius r")
    radius_ax.set_title("within Hamming radius")
    radius_ax.set_ylim(0, 1.02)
    radius_ax.legend()

    p = report.policy
    fig.suptitle(
        title
        or f"{report.map_name} = {report.map:.4f}  ({report.nbits} bits, {report.n_queries} queries x "
        f"{report.n_db} database; policy {p.name}, ties={p.ties})"
    )
    fig.tight_layout()
    fig.savefig(os.fspath(path), format="png")
