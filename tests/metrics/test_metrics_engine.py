"""The metrics do not depend on the thread count, the SIMD level, or concurrent callers."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import deephash_engine as de
from deephash_engine import metrics


def all_numbers(q, db, ql, dl, ties):
    rep = metrics.evaluate(q, db, ql, dl, topk=300, ties=ties, normalize="min")
    return np.concatenate(
        [rep.average_precision, rep.precision_at_k, rep.pr_curve.recall, rep.radius.map, [rep.map]]
    )


@pytest.fixture
def restore_engine():
    threads = de.get_num_threads()
    level = de.simd_level() if de.build_info()["simd_forced"] else "auto"
    yield
    de.set_num_threads(threads)
    de.set_simd_level(level)


@pytest.mark.parametrize("ties", ["index", "expected"])
def test_same_bits_for_every_thread_count_and_simd_level(mk, restore_engine, ties):
    # 100 queries span several query blocks; 24 bits exercise the kernels' tail handling.
    q, db, ql, dl = mk.random_case(31, 100, 3000, 24, labels="multi", n_columns=9, clustered=True)
    de.set_num_threads(1)
    de.set_simd_level("scalar")
    want = all_numbers(q, db, ql, dl, ties)
    for level in de.available_simd_levels():
        for threads in (1, 2, 3):
            de.set_simd_level(level)
            de.set_num_threads(threads)
            np.testing.assert_array_equal(all_numbers(q, db, ql, dl, ties), want, err_msg=f"{level}, {threads} threads")


def test_concurrent_callers(mk):
    cases = [mk.random_case(s, 40, 2000, 64, clustered=True) for s in range(4)]
    want = [metrics.mean_average_precision(*c, topk=100) for c in cases]
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(lambda c: metrics.mean_average_precision(*c, topk=100), cases * 3))
    assert got == want * 3
