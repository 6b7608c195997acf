"""Tiny cases computed by hand: each expected number is worked out in the comment beside it.

The query is the all-zero 8-bit code and database item i sits at a chosen distance, so the
ranking is known exactly. Class labels: the query has class 1; "+" items class 1, "-" class 0.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from deephash_engine import metrics


def labels_of(pattern: str) -> np.ndarray:
    return np.array([1 if c == "+" else 0 for c in pattern])


def ranked_case(mk, pattern: str):
    """Database items at distances 0, 1, 2, ... in the order of `pattern` (no ties)."""
    return mk.zero_query(), mk.codes_at(range(len(pattern))), np.array([1]), labels_of(pattern)


MAP = metrics.mean_average_precision


@pytest.mark.parametrize(
    ("pattern", "normalize", "expected"),
    [
        # DeepHash-pytorch#33: [+ - -] scores 1 while [+ - +] scores 5/6 under "retrieved".
        ("+--++", "retrieved", 1.0),  # one relevant in the top 3, at rank 1: 1/1
        ("+-++-", "retrieved", 5 / 6),  # (1/1 + 2/3) / 2
        # "min" divides by min(k=3, relevant in the database=3) = 3.
        ("+--++", "min", 1 / 3),  # 1/1 / 3
        ("+-++-", "min", 5 / 9),  # (1/1 + 2/3) / 3
    ],
)
def test_ap_at_3_under_both_normalisations(mk, pattern, normalize, expected):
    assert MAP(*ranked_case(mk, pattern), topk=3, normalize=normalize) == pytest.approx(expected, abs=1e-15)


def test_ap_at_all_counts_every_item(mk):
    # [+ - - + +]: (1/1 + 2/4 + 3/5) / 3 = 0.7, the same for both normalisations at k = N.
    args = ranked_case(mk, "+--++")
    for normalize in ("retrieved", "min"):
        assert MAP(*args, normalize=normalize) == pytest.approx(0.7, abs=1e-15)


def test_topk_none_includes_the_last_item(mk):
    # Only the last of 4 items is relevant: AP@all = 1/4. DeepHash-pytorch's topK=-1 slice [0:-1]
    # would drop it and score 0.
    args = ranked_case(mk, "---+")
    assert MAP(*args, topk=None) == pytest.approx(0.25, abs=1e-15)
    assert MAP(*args, topk=4) == pytest.approx(0.25, abs=1e-15)
    assert MAP(*args, topk=1000) == pytest.approx(0.25, abs=1e-15)  # beyond N means all
    assert MAP(*args, topk=3) == 0.0


def test_ties_by_index_and_expected(mk):
    # Two items at distance 0, one relevant. Index order: [- +] -> 1/2, [+ -] -> 1.
    # Expected: rank 1 or 2 with probability 1/2 each: (1/1 + 1/2) / 2 = 3/4, whatever the order.
    q, db = mk.zero_query(), mk.codes_at([0, 0])
    for pattern, by_index in (("-+", 0.5), ("+-", 1.0)):
        dl = labels_of(pattern)
        assert MAP(q, db, [1], dl, ties="index") == pytest.approx(by_index, abs=1e-15)
        assert MAP(q, db, [1], dl, ties="expected") == pytest.approx(0.75, abs=1e-15)


def test_expected_ties_with_the_cut_inside_a_group(mk):
    # Three items at distance 0 (two relevant) and a relevant one at distance 1; k = 2 cuts the
    # group. The group's relevance pattern is [++-], [+-+] or [-++], each with probability 1/3.
    # Top 2: [++] [+-] [-+].
    # retrieved: AP = 1, 1, (1/2)/1     -> mean 5/6
    # min (den = min(2, 3) = 2): sums 2, 1, 1/2 -> AP 1, 1/2, 1/4 -> mean 7/12
    q, db, dl = mk.zero_query(), mk.codes_at([0, 0, 0, 1]), labels_of("+-++")
    assert MAP(q, db, [1], dl, topk=2, ties="expected") == pytest.approx(5 / 6, abs=1e-14)
    assert MAP(q, db, [1], dl, topk=2, ties="expected", normalize="min") == pytest.approx(7 / 12, abs=1e-14)
    # One relevant among two tied items and k = 1: retrieved with probability 1/2, else AP 0.
    q, db, dl = mk.zero_query(), mk.codes_at([0, 0]), labels_of("-+")
    assert MAP(q, db, [1], dl, topk=1, ties="expected") == pytest.approx(0.5, abs=1e-15)


def test_empty_queries_under_each_policy(mk):
    # q0 ranks [+ - -], q1 ranks [- - +] (its relevant item is last).
    q = np.zeros((2, 1), dtype=np.uint8)
    db = mk.codes_at([0, 1, 2])
    ql = np.array([1, 2])
    dl = np.array([1, 0, 2])
    # k = 1: q1 retrieves nothing relevant.
    assert MAP(q, db, ql, dl, topk=1, empty="zero") == pytest.approx(0.5)  # (1 + 0) / 2
    assert MAP(q, db, ql, dl, topk=1, empty="skip") == pytest.approx(1.0)  # q1 left out
    # Under "min" q1's denominator is min(1, 1) = 1, so it is not empty and scores 0 either way.
    assert MAP(q, db, ql, dl, topk=1, normalize="min", empty="skip") == pytest.approx(0.5)
    # A class that no database item has: empty under both normalisations.
    ql_none = np.array([1, 7])
    assert MAP(q, db, ql_none, dl, normalize="min", empty="zero") == pytest.approx(0.5)
    assert MAP(q, db, ql_none, dl, normalize="min", empty="skip") == pytest.approx(1.0)
    # Every query skipped: NaN, not a made-up number.
    assert math.isnan(MAP(q, db, np.array([7, 8]), dl, empty="skip"))


def test_expected_ties_skip_only_when_no_order_retrieves(mk):
    # q0: its relevant item ties with an irrelevant one at distance 0; k = 1 retrieves it in half the
    # orders, so it is kept with expected AP 1/2. q1: its relevant item is alone at distance 2,
    # beyond k = 1 in every order, so it is skipped.
    q = np.zeros((2, 1), dtype=np.uint8)
    db = mk.codes_at([0, 0, 2])
    dl = np.array([1, 0, 2])
    got = MAP(q, db, np.array([1, 2]), dl, topk=1, ties="expected", empty="skip")
    assert got == pytest.approx(0.5, abs=1e-15)


def test_multi_label_relevance(mk):
    # Query labels {0, 2}; database {0}, {1}, {2}, {1, 2} at distances 0..3 -> [+ - + +].
    # AP@all = (1/1 + 2/3 + 3/4) / 3 = 29/36.
    q, db = mk.zero_query(), mk.codes_at(range(4))
    ql = np.array([[1, 0, 1]])
    dl = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 1, 1]])
    assert MAP(q, db, ql, dl) == pytest.approx(29 / 36, abs=1e-15)
    # The same with 1030 label columns, the shared labels in the last 64-bit word.
    wide_q = np.zeros((1, 1030), dtype=bool)
    wide_db = np.zeros((4, 1030), dtype=bool)
    wide_q[0, [1029, 3]] = True
    wide_db[0, 1029] = wide_db[2, 1029] = wide_db[3, 1029] = True
    wide_db[1, 4] = True
    assert MAP(q, db, wide_q, wide_db) == pytest.approx(29 / 36, abs=1e-15)
    # A query with no label at all is relevant to nothing.
    no_label = np.zeros((1, 3), dtype=int)
    assert MAP(q, db, no_label, dl) == 0.0
    assert math.isnan(MAP(q, db, no_label, dl, empty="skip"))


def test_precision_and_recall_at_k(mk):
    # [+ - + + -], 3 relevant: P@1 = 1, P@3 = 2/3, P@5 = 3/5; R@1 = 1/3, R@3 = 2/3, R@5 = 1.
    args = ranked_case(mk, "+-++-")
    np.testing.assert_allclose(metrics.precision_at_k(*args, [1, 3, 5]), [1, 2 / 3, 3 / 5], atol=1e-15)
    np.testing.assert_allclose(metrics.recall_at_k(*args, [5, 1, 3]), [1, 1 / 3, 2 / 3], atol=1e-15)
    # Two tied items, one relevant: P@1 is 0 or 1 by index order, 1/2 in expectation.
    q, db = mk.zero_query(), mk.codes_at([0, 0])
    assert metrics.precision_at_k(q, db, [1], labels_of("-+"), 1)[0] == 0.0
    assert metrics.precision_at_k(q, db, [1], labels_of("-+"), 1, ties="expected")[0] == pytest.approx(0.5)
    curve = metrics.pr_curve_by_rank(*args, ranks=[1, 2, 5])
    np.testing.assert_allclose(curve.precision, [1, 1 / 2, 3 / 5], atol=1e-15)
    np.testing.assert_allclose(curve.recall, [1 / 3, 1 / 3, 1], atol=1e-15)


def test_recall_of_a_query_with_nothing_relevant(mk):
    # q1 has no relevant item: recall 0 under "zero" (mean (1 + 0) / 2 at k = 3), left out under "skip".
    q = np.zeros((2, 1), dtype=np.uint8)
    db = mk.codes_at([0, 1, 2])
    ql, dl = np.array([1, 9]), np.array([1, 0, 0])
    assert metrics.recall_at_k(q, db, ql, dl, 3, empty="zero")[0] == pytest.approx(0.5)
    assert metrics.recall_at_k(q, db, ql, dl, 3, empty="skip")[0] == pytest.approx(1.0)
    # Precision@1: q0 1, q1 0.
    assert metrics.precision_at_k(q, db, ql, dl, 1, empty="zero")[0] == pytest.approx(0.5)
    assert metrics.precision_at_k(q, db, ql, dl, 1, empty="skip")[0] == pytest.approx(1.0)


def test_hamming_radius_metrics(mk):
    # Distances [0, 1, 1, 3] with relevance [+ - + -] (in database order); 2 relevant.
    # r = 0: 1 retrieved, 1 relevant -> P 1, R 1/2, mAP 1.
    # r = 1 (and 2): ranks [+ - +] (index order in the tie) -> P 2/3, R 1, mAP (1 + 2/3)/2 = 5/6.
    # r = 3..8: all 4 -> P 1/2, R 1, mAP 5/6.
    q, db, dl = mk.zero_query(), mk.codes_at([0, 1, 1, 3]), labels_of("+-+-")
    res = metrics.hamming_radius_metrics(q, db, [1], dl)
    np.testing.assert_array_equal(res.radii, np.arange(9))
    np.testing.assert_allclose(res.precision, [1, 2 / 3, 2 / 3] + [1 / 2] * 6, atol=1e-15)
    np.testing.assert_allclose(res.recall, [1 / 2] + [1] * 8, atol=1e-15)
    np.testing.assert_allclose(res.map, [1] + [5 / 6] * 8, atol=1e-15)
    assert res.at(2) == pytest.approx({"precision": 2 / 3, "recall": 1.0, "map": 5 / 6})
    # Expected ties in the distance-1 group [- +]: the relevant item is 2nd or 3rd:
    # mAP(r=1) = (1 + (1/2)(2/2 + 2/3)) / 2 = (1 + 5/6) / 2 = 11/12.
    res = metrics.hamming_radius_metrics(q, db, [1], dl, radius=1, ties="expected")
    assert res.map[0] == pytest.approx(11 / 12, abs=1e-15)
    # Nothing within the radius: precision 0 and mAP 0 (thulab/DeepHash).
    res = metrics.hamming_radius_metrics(q, mk.codes_at([2, 3]), [1], labels_of("++"), radius=[0, 1, 2])
    np.testing.assert_allclose(res.precision, [0, 0, 1])
    np.testing.assert_allclose(res.map, [0, 0, 1])
    np.testing.assert_allclose(res.recall, [0, 0, 1 / 2])
