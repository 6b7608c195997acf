"""ties="expected" against the average over tie orders.

Shuffling the database rows makes the order inside every tie group uniformly random, so
ties="index" on a shuffled database is one draw of the random-order AP. Averaged over every
order within the tie groups it must equal the closed form exactly; over sampled permutations,
within a few standard errors.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from deephash_engine import metrics


def tiny_case():
    # 7 items at distances 0, 0, 0, 1, 1, 1, 2 from the all-zero query: three tie groups.
    # Two queries share the query code and differ in their class, so the relevant items differ.
    db = np.array([[0], [0], [0], [1], [1], [1], [3]], dtype=np.uint8)
    dl = np.array([1, 1, 0, 2, 1, 0, 2])
    q = np.zeros((2, 1), dtype=np.uint8)
    ql = np.array([1, 2])
    return q, db, ql, dl


def orders_within_groups():
    """Every database order that permutes items only inside their tie group (3! x 3! x 1! = 36),
    which weighs every within-group order equally, as every permutation of all 7 items would."""
    return [
        list(a + b) + [6]
        for a, b in itertools.product(itertools.permutations(range(3)), itertools.permutations(range(3, 6)))
    ]


@pytest.mark.parametrize("normalize", ["retrieved", "min"])
@pytest.mark.parametrize("topk", [1, 2, 3, 4, 5, 7])
def test_expected_equals_the_mean_over_every_tie_order(normalize, topk):
    q, db, ql, dl = tiny_case()
    values = [
        metrics.mean_average_precision(q, db[list(p)], ql, dl[list(p)], topk, "index", normalize, "zero")
        for p in orders_within_groups()
    ]
    expected = metrics.mean_average_precision(q, db, ql, dl, topk, "expected", normalize, "zero")
    assert expected == pytest.approx(np.mean(values), abs=1e-12)
    assert np.min(values) < expected < np.max(values)  # the case really has ties that matter


def test_expected_rank_metrics_equal_the_mean_over_every_tie_order():
    q, db, ql, dl = tiny_case()
    ks = [1, 2, 4, 5]
    perms = orders_within_groups()
    p_mean = np.mean([metrics.precision_at_k(q, db[list(p)], ql, dl[list(p)], ks) for p in perms], axis=0)
    r_mean = np.mean([metrics.recall_at_k(q, db[list(p)], ql, dl[list(p)], ks) for p in perms], axis=0)
    np.testing.assert_allclose(metrics.precision_at_k(q, db, ql, dl, ks, ties="expected"), p_mean, atol=1e-12)
    np.testing.assert_allclose(metrics.recall_at_k(q, db, ql, dl, ks, ties="expected"), r_mean, atol=1e-12)
    radius = [metrics.hamming_radius_metrics(q, db[list(p)], ql, dl[list(p)]).map for p in perms]
    np.testing.assert_allclose(
        metrics.hamming_radius_metrics(q, db, ql, dl, ties="expected").map, np.mean(radius, axis=0), atol=1e-12
    )


@pytest.mark.parametrize(("topk", "normalize"), [(None, "retrieved"), (40, "retrieved"), (40, "min"), (150, "min")])
def test_expected_against_sampled_permutations(mk, topk, normalize):
    # Clustered 16-bit codes: tie groups of tens of items, the cut-offs fall inside them.
    q, db, ql, dl = mk.random_case(11, 6, 300, 16, n_classes=3, clustered=True)
    rng = np.random.default_rng(12)
    n_perm = 400
    draws = np.empty(n_perm)
    for i in range(n_perm):
        p = rng.permutation(len(db))
        draws[i] = metrics.mean_average_precision(q, db[p], ql, dl[p], topk, "index", normalize)
    expected = metrics.mean_average_precision(q, db, ql, dl, topk, "expected", normalize)
    stderr = draws.std(ddof=1) / np.sqrt(n_perm)
    assert stderr > 1e-4  # tie order really moves the AP here
    assert abs(expected - draws.mean()) < 5 * stderr
