"""The metrics do not depend on the thread count, the SIMD level, or concurrent callers."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import deephash_engine as de
from deephash_engine import metrics
from deephash_engine.metrics import reference


def all_numbers(q, db, ql, dl, ties):
    rep = metrics.evaluate(q, db, ql, dl, topk=300, ties=ties, normalize="min")
    return np.concatenate(
        [rep.average_precision, rep.precision_at_k, rep.pr_curve.recall, rep.radius.map, [rep.map]]
    )


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


@pytest.mark.parametrize("nbits", [8, 16, 24, 32, 40, 64, 128, 176, 248, 256])
@pytest.mark.parametrize(
    "labels",
    ["class", "one class", "no match", "ids over 255", "query id over 255", "large ids", "query id out of int32",
     "multi", "multi dense"],
)
def test_recording_pass_of_every_level_equals_scalar(mk, restore_engine, nbits, labels):
    # ties="index" records each relevant item's place among its tie group; the AVX2 and AVX-512
    # levels have their own recording pass (distances below 256: 248 bits run it, 256 bits the
    # portable one), keyed by class ids as bytes or int32, or by multi-hot relevance. AVX2 takes
    # its distances as bytes from a prepared database (one to four 8-byte words a code: 8 to 248
    # bits), except where class ids fit neither bytes nor int32.
    # 2,501 items: three database chunks, the last of them an odd number of items, not a whole number
    # of 64-item blocks.
    kind = "multi" if labels.startswith("multi") else "class"
    q, db, ql, dl = mk.random_case(nbits + len(labels), 9, 2501, nbits, labels=kind, n_classes=3, clustered=True)
    if labels == "one class":
        ql, dl = np.zeros_like(ql), np.zeros_like(dl)  # every item relevant
    elif labels == "no match":
        ql = ql + 10  # no item relevant
    elif labels == "ids over 255":
        ql, dl = ql + 300, dl + 300  # class ids beyond a byte
    elif labels == "query id over 255":
        ql = ql.copy()
        ql[1::2] = 300  # the database's ids fit a byte, half the queries' do not
    elif labels == "large ids":
        ql, dl = ql + 2**40, dl + 2**40  # class ids beyond int32
    elif labels == "query id out of int32":
        ql = ql.copy()
        ql[::2] = 2**40  # the database's ids fit int32, half the queries' do not
    elif labels == "multi dense":
        dl = dl | (np.arange(dl.shape[1]) == 0)  # column 0 set in every item: most items relevant
    empty = "zero" if labels in ("no match", "query id over 255", "query id out of int32") else None
    de.set_num_threads(1)
    de.set_simd_level("scalar")
    want = metrics.evaluate(q, db, ql, dl, topk=700, ties="index", normalize="min", empty=empty)
    for level in de.available_simd_levels():
        for threads in (1, 2):
            de.set_simd_level(level)
            de.set_num_threads(threads)
            got = metrics.evaluate(q, db, ql, dl, topk=700, ties="index", normalize="min", empty=empty)
            for name in ("average_precision", "precision_at_k"):
                np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=f"{level}, {threads}, {name}")
            np.testing.assert_array_equal(got.pr_curve.recall, want.pr_curve.recall)
    # and the AVX-512 level's values (where this CPU has it) are the reference's
    got = metrics.average_precision(q, db, ql, dl, ties="index", empty=empty)
    want = [reference.average_precision(*reference.ranked(q[i], db, ql[i], dl), None)[0] for i in range(len(q))]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
