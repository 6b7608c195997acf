"""EvalPolicy presets against literal re-statements of the original evaluators, evaluate() reports
and plot_report()."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deephash_engine import metrics


def pm1(packed):
    return np.where(np.unpackbits(packed, axis=1, bitorder="little") == 1, 1.0, -1.0)


def deephash_pytorch_map(qB, rB, queryL, retrievalL, topk):
    """DeepHash-pytorch's CalcTopMap restated (stable argsort, so ties go by index; topk = N for all)."""
    total = 0.0
    for i in range(queryL.shape[0]):
        gnd = (queryL[i] @ retrievalL.T > 0).astype(np.float64)
        hamm = 0.5 * (qB.shape[1] - qB[i] @ rB.T)
        tgnd = gnd[np.argsort(hamm, kind="stable")][:topk]
        tsum = int(tgnd.sum())
        if tsum == 0:
            continue
        count = np.arange(1, tsum + 1)
        tindex = np.flatnonzero(tgnd == 1) + 1.0
        total += np.mean(count / tindex)
    return total / queryL.shape[0]


def hashnet_map(qB, rB, queryL, retrievalL, R):
    """thuml/HashNet pytorch mean_average_precision restated (stable sort; no in-place mutation)."""
    aps = []
    order = np.argsort(-(rB @ qB.T), axis=0, kind="stable")
    for i in range(qB.shape[0]):
        imatch = (retrievalL[order[:R, i]] @ queryL[i] > 0).astype(np.float64)
        relevant_num = imatch.sum()
        precision = np.cumsum(imatch) / np.arange(1, R + 1)
        if relevant_num != 0:
            aps.append(np.sum(precision * imatch) / relevant_num)
    return float(np.mean(aps))


def deephash_pytorch_pr(qB, rB, queryL, retrievalL, ranks):
    """CalcTopMapWithPR's curve restated: queries with a relevant item only."""
    precision, recall = [], []
    for i in range(queryL.shape[0]):
        gnd = (queryL[i] @ retrievalL.T > 0).astype(np.float64)
        if gnd.sum() == 0:
            continue
        hamm = 0.5 * (qB.shape[1] - qB[i] @ rB.T)
        cum = np.cumsum(gnd[np.argsort(hamm, kind="stable")])
        precision.append(cum[np.asarray(ranks) - 1] / np.asarray(ranks))
        recall.append(cum[np.asarray(ranks) - 1] / gnd.sum())
    return np.mean(precision, axis=0), np.mean(recall, axis=0)


@pytest.fixture
def data(mk):
    # Multi-hot labels with some all-zero rows: queries with nothing relevant exist.
    q, db, ql, dl = mk.random_case(21, 40, 400, 16, labels="multi", n_columns=6, clustered=True)
    assert (ql.sum(1) == 0).any()
    return q, db, ql, dl


def test_deephash_pytorch_preset_matches_calc_top_map(data):
    q, db, ql, dl = data
    qB, rB = pm1(q), pm1(db)
    for topk in (None, 50, 400):
        want = deephash_pytorch_map(qB, rB, ql, dl, 400 if topk is None else topk)
        got = metrics.mean_average_precision(q, db, ql, dl, topk, policy="deephash-pytorch")
        assert got == pytest.approx(want, abs=1e-12)
    ranks = [1, 10, 100, 400]
    want_p, want_r = deephash_pytorch_pr(qB, rB, ql, dl, ranks)
    curve = metrics.pr_curve_by_rank(qB, rB, ql, dl, ranks, policy="deephash-pytorch")
    np.testing.assert_allclose(curve.precision, want_p, atol=1e-12)
    np.testing.assert_allclose(curve.recall, want_r, atol=1e-12)
    assert curve.n_queries == int((ql @ dl.T > 0).any(axis=1).sum()) < len(ql)


def test_hashnet_preset_skips_queries_with_nothing_retrieved(data):
    q, db, ql, dl = data
    for topk in (20, 400):
        want = hashnet_map(pm1(q), pm1(db), ql, dl, topk)
        assert metrics.mean_average_precision(q, db, ql, dl, topk, policy="hashnet") == pytest.approx(want, abs=1e-12)
    # HashNet's skipping makes it optimistic next to DeepHash-pytorch's zeros.
    assert metrics.mean_average_precision(q, db, ql, dl, 20, policy="hashnet") > metrics.mean_average_precision(
        q, db, ql, dl, 20, policy="deephash-pytorch"
    )


def test_protocol_resolution():
    assert metrics.resolve_policy(None) == metrics.EVAL_POLICIES["default"]
    p = metrics.resolve_policy("hashnet")
    assert (p.ties, p.normalize, p.empty) == ("index", "retrieved", "skip")
    same = metrics.resolve_policy("hashnet", empty="skip")
    assert same.name == "hashnet"
    custom = metrics.resolve_policy("hashnet", ties="expected")
    assert (custom.name, custom.ties, custom.empty) == ("hashnet+custom", "expected", "skip")
    with pytest.raises(ValueError, match="curve_empty"):
        metrics.resolve_policy(None, curve_empty="drop")


def test_evaluate_report(data, tmp_path):
    q, db, ql, dl = data
    rep = metrics.evaluate(q, db, ql, dl, policy="deephash-pytorch", topk=100, ks=[1, 10, 100])
    assert rep.policy.name == "deephash-pytorch" and rep.map_name == "mAP@100"
    assert (rep.n_queries, rep.n_db, rep.nbits, rep.label_kind) == (40, 400, 16, "multi-hot")
    assert rep.map == metrics.mean_average_precision(q, db, ql, dl, 100, policy="deephash-pytorch")
    np.testing.assert_array_equal(
        rep.precision_at_k, metrics.precision_at_k(q, db, ql, dl, [1, 10, 100], policy="deephash-pytorch")
    )
    full = metrics.hamming_radius_metrics(q, db, ql, dl, policy="deephash-pytorch")
    np.testing.assert_array_equal(rep.radius.map, full.map)
    assert rep.radius.radii.tolist() == list(range(17))
    assert rep.pr_curve.ranks[-1] == 400 and rep.pr_curve.recall[-1] == pytest.approx(1.0)
    # mAP zeros the empty queries, the curves skip them (two passes, two query counts).
    assert rep.map_queries == 40 and rep.pr_curve.n_queries < 40
    assert np.isnan(rep.average_precision).sum() == 0
    decoded = json.loads(rep.to_json())
    assert decoded["policy"]["name"] == "deephash-pytorch" and decoded["map"] == rep.map
    assert decoded["precision_at_k"]["10"] == rep.precision_at_k[1]
    assert "mAP@100" in rep.summary() and "ties=index" in rep.summary()
    assert metrics.evaluate(q, db, ql, dl).map_name == "mAP@all"


def test_evaluate_marks_skipped_queries(data):
    q, db, ql, dl = data
    rep = metrics.evaluate(q, db, ql, dl, policy="hashnet", topk=20)
    skipped = np.isnan(rep.average_precision)
    assert skipped.any() and rep.map_queries == (~skipped).sum()
    assert rep.map == pytest.approx(np.nanmean(rep.average_precision), abs=1e-15)


def test_plot_report_writes_a_png(data, tmp_path):
    pytest.importorskip("matplotlib")
    q, db, ql, dl = data
    rep = metrics.evaluate(q, db, ql, dl)
    path = tmp_path / "report.png"
    metrics.plot_report(rep, path)
    content = path.read_bytes()
    assert content[:8] == b"\x89PNG\r\n\x1a\n" and len(content) > 10_000
    with pytest.raises(TypeError, match="report must be an EvaluationReport"):
        metrics.plot_report({"map": 1.0}, tmp_path / "x.png")
