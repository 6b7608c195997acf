"""Input forms and validation: packed vs +-1 codes, label forms, and errors that name the argument."""

from __future__ import annotations

import numpy as np
import pytest

from deephash_engine import _core, metrics


def as_pm1(packed: np.ndarray, dtype) -> np.ndarray:
    bits = np.unpackbits(packed, axis=1, bitorder="little")
    return np.where(bits == 1, 1, -1).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int8, np.int64])
def test_pm1_codes_give_the_packed_numbers(mk, dtype):
    q, db, ql, dl = mk.random_case(5, 9, 120, 24, clustered=True)
    qf, dbf = as_pm1(q, dtype), as_pm1(db, dtype)
    for ties in ("index", "expected"):
        assert metrics.mean_average_precision(qf, dbf, ql, dl, 30, ties) == metrics.mean_average_precision(
            q, db, ql, dl, 30, ties
        )
        np.testing.assert_array_equal(
            metrics.precision_at_k(qf, db, ql, dl, [1, 50], ties), metrics.precision_at_k(q, dbf, ql, dl, [1, 50], ties)
        )
        np.testing.assert_array_equal(
            metrics.hamming_radius_metrics(qf, dbf, ql, dl, ties=ties).map,
            metrics.hamming_radius_metrics(q, db, ql, dl, ties=ties).map,
        )


def test_pm1_packing_follows_the_bit_contract():
    # Bit j of the code is bit j % 8 of byte j // 8, least significant first; +1 -> 1.
    pm1 = -np.ones((1, 16))
    pm1[0, [0, 9]] = 1
    db = np.array([[0b00000001, 0b00000010]], dtype=np.uint8)  # the same code, packed
    far = np.array([[0b10000000, 0b01000000]], dtype=np.uint8)  # 4 bits away
    labels = np.array([0, 0])
    res = metrics.hamming_radius_metrics(pm1, np.vstack([db, far]), [0], labels, radius=[0, 3, 4])
    np.testing.assert_allclose(res.recall, [0.5, 0.5, 1.0])


def test_label_forms_agree(mk):
    q, db, ql, dl = mk.random_case(6, 8, 100, 16)
    one_hot_q, one_hot_db = np.eye(5, dtype=bool)[ql], np.eye(5, dtype=np.float32)[dl]
    want = metrics.mean_average_precision(q, db, ql, dl)
    assert metrics.mean_average_precision(q, db, one_hot_q, one_hot_db) == want
    assert metrics.mean_average_precision(q, db, ql.astype(np.uint8), dl.astype(np.int32)) == want
    assert metrics.mean_average_precision(q, db, ql.tolist(), dl.tolist()) == want
    # The core narrows database ids to uint8 or int32 when they fit; every width gives the same.
    for offset in (-(10**6), 10**6, 2**40, -(2**40)):
        assert metrics.mean_average_precision(q, db, ql + offset, dl + offset) == want
    # A query class outside the database's id range matches nothing (not a truncated id).
    far = ql.copy()
    far[0] = 256 + int(dl[0])
    far_map = metrics.average_precision(q, db, far, dl)
    assert far_map[0] == 0.0 and (far_map[1:] == metrics.average_precision(q, db, ql, dl)[1:]).all()
    far[0] = 2**32 + int(dl[0])
    assert metrics.average_precision(q, db, far, dl)[0] == 0.0


def test_non_contiguous_inputs(mk):
    q, db, ql, dl = mk.random_case(9, 8, 100, 16)
    wide = np.zeros((100, 4), dtype=np.uint8)
    wide[:, ::2] = db
    assert metrics.mean_average_precision(q, wide[:, ::2], ql, dl) == metrics.mean_average_precision(q, db, ql, dl)


Q = np.zeros((2, 1), dtype=np.uint8)
DB = np.zeros((3, 1), dtype=np.uint8)
QL, DL = np.array([0, 1]), np.array([0, 1, 1])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"query_codes": Q.astype(np.uint16)}, TypeError, "query_codes.*uint16"),
        ({"db_codes": DB.astype(bool)}, TypeError, "db_codes.*bool"),
        ({"db_codes": np.ones((3, 8)) * 0.5}, ValueError, "db_codes.*-1 and \\+1.*0.5"),
        ({"query_codes": np.zeros((2, 8))}, ValueError, "query_codes.*-1 and \\+1"),
        ({"query_codes": np.ones((2, 12))}, ValueError, "query_codes.*width of db_codes \\(8 bits\\), got 12 bits"),
        ({"query_codes": np.zeros((2, 2), dtype=np.uint8)}, ValueError, "query_codes.*8 bits.*16 bits"),
        ({"query_codes": np.zeros(4, dtype=np.uint8)}, ValueError, "query_codes.*2-D"),
        ({"db_codes": np.zeros((0, 1), dtype=np.uint8), "db_labels": np.zeros(0, dtype=int)}, ValueError, "db_codes.*at least one"),
        ({"query_labels": np.array([0, 1, 2])}, ValueError, "query_labels.*query_codes \\(2\\), got 3"),
        ({"db_labels": np.array([0.0, 1.0, 1.0])}, TypeError, "db_labels.*integer.*float64"),
        ({"db_labels": np.array([[0, 2], [1, 0], [1, 1]]), "query_labels": np.array([[1, 0], [0, 1]])}, ValueError, "db_labels.*only 0 and 1"),
        ({"query_labels": np.array([[1, 0], [0, 1]])}, ValueError, "both be class ids.*or both multi-hot"),
        ({"query_labels": np.ones((2, 3)), "db_labels": np.ones((3, 2))}, ValueError, "query_labels.*columns.*\\(2\\), got 3"),
        ({"query_labels": np.zeros((2, 2, 2))}, ValueError, "query_labels.*shape"),
        ({"ties": "random"}, ValueError, "ties.*'index', 'expected'.*'random'"),
        ({"normalize": "k"}, ValueError, "normalize.*'retrieved', 'min'"),
        ({"empty": "nan"}, ValueError, "empty.*'zero', 'skip'"),
        ({"topk": 0}, ValueError, "topk.*>= 1.*None"),
        ({"topk": -1}, ValueError, "topk.*>= 1.*got -1"),
        ({"topk": 2.0}, TypeError, "topk.*int"),
        ({"policy": "dhp"}, ValueError, "policy.*'deephash-pytorch'.*'dhp'"),
    ],
)
def test_map_rejects_bad_arguments(kwargs, error, match):
    args = {"query_codes": Q, "db_codes": DB, "query_labels": QL, "db_labels": DL}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        metrics.mean_average_precision(**args)


def test_other_functions_reject_bad_arguments():
    with pytest.raises(ValueError, match=r"ks must lie in \[1, 3\].*got 4"):
        metrics.precision_at_k(Q, DB, QL, DL, [1, 4])
    with pytest.raises(ValueError, match="ks must hold at least one"):
        metrics.recall_at_k(Q, DB, QL, DL, [])
    with pytest.raises(TypeError, match="ks must hold ints"):
        metrics.recall_at_k(Q, DB, QL, DL, [1.5])
    with pytest.raises(ValueError, match=r"radius must lie in \[0, 8\].*got 9"):
        metrics.hamming_radius_metrics(Q, DB, QL, DL, radius=9)
    with pytest.raises(ValueError, match="empty.*'zero', 'skip'"):
        metrics.pr_curve_by_rank(Q, DB, QL, DL, empty="none")
    with pytest.raises(ValueError, match=r"ranks must lie in \[1, 3\].*got 0"):
        metrics.pr_curve_by_rank(Q, DB, QL, DL, ranks=[0, 1])
    with pytest.raises(ValueError, match="num_points"):
        metrics.pr_curve_by_rank(Q, DB, QL, DL, num_points=1)
    with pytest.raises(KeyError, match="radius 5 was not computed"):
        metrics.hamming_radius_metrics(Q, DB, QL, DL, radius=[0, 1]).at(5)


def test_core_binding_validates_too():
    # The compiled function checks its own arguments: it never reads a float array as codes.
    with pytest.raises(TypeError, match="db_codes.*uint8"):
        _core.evaluate_retrieval(Q, DB.astype(np.float32), QL, DL)
    with pytest.raises(TypeError, match="query_labels.*int64"):
        _core.evaluate_retrieval(Q, DB, QL.astype(np.int32), DL)
    with pytest.raises(ValueError, match="db_labels.*one row per code of db_codes \\(3\\), got 2"):
        _core.evaluate_retrieval(Q, DB, QL, DL[:2])
    with pytest.raises(ValueError, match="ties must be one of"):
        _core.evaluate_retrieval(Q, DB, QL, DL, ties="random")
    with pytest.raises(ValueError, match="ks must lie in"):
        _core.evaluate_retrieval(Q, DB, QL, DL, ks=[0])
    with pytest.raises(ValueError, match="query_labels and db_labels must both"):
        _core.evaluate_retrieval(Q, DB, QL, np.zeros((3, 1), dtype=np.uint64))
