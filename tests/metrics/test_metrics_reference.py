"""The engine against the plain NumPy stable-sort reference, on random data, under every policy.

Agreement is required to 1e-12 (the two differ only in the order of floating-point sums).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from deephash_engine import metrics
from deephash_engine.metrics import reference

POLICIES = list(itertools.product(("index", "expected"), ("retrieved", "min"), ("zero", "skip")))

# (nbits, labels, clustered): 8 bits and clustered codes give large tie groups; 1030 label columns
# span 17 bitset words.
DATASETS = [
    (8, "class", False),
    (16, "class", True),
    (64, "class", False),
    (24, "multi", True),
    (8, "multi-wide", False),
]


def make(mk, seed, nbits, labels, clustered):
    if labels == "multi-wide":
        # 8 labels spread over 1030 columns, so relevance is decided in words 0 to 16.
        q, db, ql8, dl8 = mk.random_case(seed, 10, 140, nbits, labels="multi", n_columns=8, clustered=clustered)
        columns = np.linspace(0, 1029, 8).astype(int)
        ql, dl = np.zeros((10, 1030), dtype=np.uint8), np.zeros((140, 1030), dtype=np.uint8)
        ql[:, columns], dl[:, columns] = ql8, dl8
        return q, db, ql, dl
    return mk.random_case(seed, 10, 140, nbits, labels=labels, clustered=clustered)


@pytest.mark.parametrize(("nbits", "labels", "clustered"), DATASETS)
@pytest.mark.parametrize(("ties", "normalize", "empty"), POLICIES)
def test_map_matches_reference(mk, nbits, labels, clustered, ties, normalize, empty):
    q, db, ql, dl = make(mk, nbits, nbits, labels, clustered)
    for topk in (None, 1, 7, 60, 140, 500):
        got = metrics.mean_average_precision(q, db, ql, dl, topk, ties, normalize, empty)
        want = reference.mean_average_precision(q, db, ql, dl, topk, ties, normalize, empty)
        assert got == pytest.approx(want, abs=1e-12, rel=0, nan_ok=True), (topk, got, want)


@pytest.mark.parametrize(("nbits", "labels", "clustered"), DATASETS)
@pytest.mark.parametrize(("ties", "empty"), list(itertools.product(("index", "expected"), ("zero", "skip"))))
def test_rank_and_radius_metrics_match_reference(mk, nbits, labels, clustered, ties, empty):
    q, db, ql, dl = make(mk, 100 + nbits, nbits, labels, clustered)
    ks = [1, 2, 5, 17, 64, 139, 140, 5]
    want_p, want_r = reference.precision_recall_at_k(q, db, ql, dl, ks, ties, empty)
    np.testing.assert_allclose(metrics.precision_at_k(q, db, ql, dl, ks, ties, empty), want_p, rtol=0, atol=1e-12)
    np.testing.assert_allclose(metrics.recall_at_k(q, db, ql, dl, ks, ties, empty), want_r, rtol=0, atol=1e-12)
    radius = metrics.hamming_radius_metrics(q, db, ql, dl, None, ties, empty)
    for got, want in zip((radius.precision, radius.recall, radius.map), reference.radius_metrics(q, db, ql, dl, ties, empty)):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_queries_without_relevant_items_follow_the_policy(mk):
    # Classes 0..9 for queries but only 0..2 in the database: many empty queries.
    rng = np.random.default_rng(7)
    q = rng.integers(0, 256, (30, 2), dtype=np.uint8)
    db = rng.integers(0, 256, (200, 2), dtype=np.uint8)
    ql, dl = rng.integers(0, 10, 30), rng.integers(0, 3, 200)
    for ties, normalize, empty in POLICIES:
        got = metrics.mean_average_precision(q, db, ql, dl, 20, ties, normalize, empty)
        want = reference.mean_average_precision(q, db, ql, dl, 20, ties, normalize, empty)
        assert got == pytest.approx(want, abs=1e-12)
    zero = metrics.mean_average_precision(q, db, ql, dl, empty="zero")
    skip = metrics.mean_average_precision(q, db, ql, dl, empty="skip")
    kept = np.isin(ql, dl).sum()
    assert zero == pytest.approx(skip * kept / len(ql), abs=1e-12)


def test_report_matches_reference(mk):
    q, db, ql, dl = mk.random_case(3, 12, 150, 16, clustered=True)
    rep = metrics.evaluate(q, db, ql, dl, topk=50, ks=[1, 10, 100], radius=[0, 2, 16])
    assert rep.map == pytest.approx(reference.mean_average_precision(q, db, ql, dl, 50), abs=1e-12)
    want_p, want_r = reference.precision_recall_at_k(q, db, ql, dl, [1, 10, 100])
    np.testing.assert_allclose(rep.precision_at_k, want_p, atol=1e-12)
    np.testing.assert_allclose(rep.recall_at_k, want_r, atol=1e-12)
    curve_p, curve_r = reference.precision_recall_at_k(q, db, ql, dl, rep.pr_curve.ranks.tolist())
    np.testing.assert_allclose(rep.pr_curve.precision, curve_p, atol=1e-12)
    np.testing.assert_allclose(rep.pr_curve.recall, curve_r, atol=1e-12)
    rp, rr, rm = reference.radius_metrics(q, db, ql, dl)
    np.testing.assert_allclose(rep.radius.precision, rp[[0, 2, 16]], atol=1e-12)
    np.testing.assert_allclose(rep.radius.map, rm[[0, 2, 16]], atol=1e-12)
    per_query = [reference.average_precision(*reference.ranked(q[i], db, ql[i], dl), 50)[0] for i in range(12)]
    np.testing.assert_allclose(rep.average_precision, per_query, atol=1e-12)


def test_average_precision_per_query(mk):
    q, db, ql, dl = mk.random_case(4, 15, 120, 8, n_classes=12)
    for ties, normalize, empty in POLICIES:
        aps = metrics.average_precision(q, db, ql, dl, 30, ties, normalize, empty)
        for i in range(len(q)):
            ap, defined = reference.average_precision(*reference.ranked(q[i], db, ql[i], dl), 30, ties, normalize)
            if defined or empty == "zero":
                assert aps[i] == pytest.approx(ap, abs=1e-12)
            else:
                assert np.isnan(aps[i])
        if (ties, normalize, empty) == ("index", "retrieved", "skip"):
            assert np.isnan(aps).any()  # the case has queries with nothing relevant in the top 30
        assert np.nanmean(aps) == pytest.approx(metrics.mean_average_precision(q, db, ql, dl, 30, ties, normalize, empty), abs=1e-12)
