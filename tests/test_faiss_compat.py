"""faiss_compat against the installed faiss-cpu: every method, same data, same answers.

FAISS's flat binary index is deterministic: k-NN ties come in (distance, position) order (its heap
breaks ties by label and the scan replaces the top only on a strictly smaller distance), range
results per query in storage order, id maps translate those positions. So results are compared
exactly, not as sets.
"""

import numpy as np
import pytest

from deephash_engine import faiss_compat as fc
from oracles import clustered_codes, duplicate_codes

faiss = pytest.importorskip("faiss", reason="faiss-cpu is installed by `make test`")


def make_codes(kind, rng, n, nbits):
    if kind == "uniform":
        return rng.integers(0, 256, (n, nbits // 8), dtype=np.uint8)
    if kind == "clustered":
        return clustered_codes(rng, n, nbits)
    return duplicate_codes(rng, n, nbits)


def both_flat(nbits, codes):
    ours, ref = fc.IndexBinaryFlat(nbits), faiss.IndexBinaryFlat(nbits)
    ours.add(codes)
    ref.add(codes)
    return ours, ref


def both_idmap(cls_name, nbits, codes, ids):
    ours = getattr(fc, cls_name)(fc.IndexBinaryFlat(nbits))
    ref = getattr(faiss, cls_name)(faiss.IndexBinaryFlat(nbits))
    ours.add_with_ids(codes, ids)
    ref.add_with_ids(codes, ids)
    return ours, ref


def assert_same_arrays(ours, ref):
    assert len(ours) == len(ref)
    for a, b in zip(ours, ref):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)


def assert_same_index(ours, ref, queries, ks=(1, 7, 50), radii=(0, 1, 3, 9)):
    for k in ks:
        assert_same_arrays(ours.search(queries, k), ref.search(queries, k))
    for r in radii:
        assert_same_arrays(ours.range_search(queries, r), ref.range_search(queries, r))
    assert ours.ntotal == ref.ntotal


@pytest.mark.parametrize("kind", ["uniform", "clustered", "duplicates"])
@pytest.mark.parametrize("nbits", [8, 24, 64, 136, 256])
def test_search_and_range_search_identical_to_faiss(kind, nbits, rng):
    codes = make_codes(kind, rng, 3000, nbits)
    queries = np.concatenate([codes[rng.integers(0, 3000, 20)], make_codes("uniform", rng, 5, nbits)])
    ours, ref = both_flat(nbits, codes)
    radii = (0, 1, nbits // 8, nbits // 4, nbits // 2 + 1, nbits + 1, nbits + 50)
    assert_same_index(ours, ref, queries, ks=(1, 10, 100, 3001, 4000), radii=radii)
    ref.use_heap = False  # FAISS's counting selection gives the same order; so do we
    for k in (1, 10, 100):
        assert_same_arrays(ours.search(queries, k), ref.search(queries, k))


def test_results_have_faiss_types_and_padding(rng):
    codes = rng.integers(0, 256, (5, 4), dtype=np.uint8)
    ours, ref = both_flat(32, codes)
    D, I = ours.search(codes[:2], 8)
    assert D.dtype == np.int32 and I.dtype == np.int64 and D.shape == (2, 8)
    assert (D[:, 5:] == 2147483647).all() and (I[:, 5:] == -1).all()
    lims, RD, RI = ours.range_search(codes[:2], 33)
    assert lims.dtype == np.uint64 and RD.dtype == np.float32 and RI.dtype == np.int64
    assert_same_arrays((D, I), ref.search(codes[:2], 8))


def test_empty_index_pads_every_row(rng):
    ours = fc.IndexBinaryFlat(64)
    D, I = ours.search(rng.integers(0, 256, (3, 8), dtype=np.uint8), 4)
    assert (D == 2147483647).all() and (I == -1).all()
    lims, RD, RI = ours.range_search(rng.integers(0, 256, (3, 8), dtype=np.uint8), 65)
    assert lims.tolist() == [0, 0, 0, 0] and len(RD) == 0 and len(RI) == 0


def test_range_radius_is_strict_and_nonpositive_is_empty():
    codes = np.array([[0b0000], [0b0001], [0b0011], [0b0111]], dtype=np.uint8)
    ours, ref = both_flat(8, codes)
    q = codes[:1]
    for r, expected in [(-3, []), (0, []), (1, [0]), (2, [0, 1]), (3, [0, 1, 2]), (100, [0, 1, 2, 3])]:
        lims, D, I = ours.range_search(q, r)
        assert I.tolist() == expected, r
        assert_same_arrays((lims, D, I), ref.range_search(q, r))


def test_range_results_in_storage_order_not_distance_order():
    codes = np.array([[0xFF], [0x00], [0x0F], [0x01]], dtype=np.uint8)
    ours, _ = both_flat(8, codes)
    lims, D, I = ours.range_search(np.array([[0x00]], dtype=np.uint8), 9)
    assert I.tolist() == [0, 1, 2, 3] and D.tolist() == [8.0, 0.0, 4.0, 1.0]


def test_assign_keywords_and_labels_buffer(rng):
    codes = rng.integers(0, 256, (200, 4), dtype=np.uint8)
    ours, ref = both_flat(32, codes)
    q = codes[:9]
    I = ours.assign(x=q, k=3, labels=None)
    np.testing.assert_array_equal(I, ref.assign(q, 3))
    buf = np.full((9, 3), 77, dtype=np.int64)
    assert ours.assign(q, 3, labels=buf) is buf
    np.testing.assert_array_equal(buf, I)
    D2, I2 = ours.search(q, k=3)
    np.testing.assert_array_equal(I2, I)
    with pytest.raises(AssertionError):
        ours.assign(q, 3, labels=np.zeros((9, 4), dtype=np.int64))


def test_reconstruct_and_reconstruct_n(rng):
    codes = rng.integers(0, 256, (1000, 8), dtype=np.uint8)
    ours, ref = both_flat(64, codes)
    np.testing.assert_array_equal(ours.reconstruct(12), codes[12])
    assert ours.reconstruct(np.int64(999)).dtype == np.uint8
    for n0, ni in [(0, 4), (10, 0), (3, 300), (0, -1), (990, -1)]:  # 300: the bulk export path
        np.testing.assert_array_equal(ours.reconstruct_n(n0, ni), ref.reconstruct_n(n0, ni))
    out = np.zeros((5, 8), dtype=np.uint8)
    assert ours.reconstruct_n(2, 5, x=out) is out
    np.testing.assert_array_equal(out, codes[2:7])
    for bad in (-1, 1000):
        with pytest.raises(fc.UnknownIdError, match=f"key {bad} not found"):
            ours.reconstruct(bad)
    with pytest.raises(IndexError):
        ours.reconstruct_n(998, 3)


@pytest.mark.parametrize("how", ["array", "batch", "range", "faiss_selector"])
def test_remove_ids_renumbers_like_faiss(how, rng):
    codes = duplicate_codes(rng, 600, 32)
    ours, ref = both_flat(32, codes)
    queries = codes[:12]
    gone = np.unique(rng.integers(0, 600, 150))
    sel = {"array": (lambda m: gone), "batch": (lambda m: m.IDSelectorBatch(gone)),
           "range": (lambda m: m.IDSelectorRange(100, 420))}
    if how == "faiss_selector":  # any object with is_member works (asked id by id)
        assert ours.remove_ids(faiss.IDSelectorBatch(gone)) == ref.remove_ids(faiss.IDSelectorBatch(gone))
    else:
        assert ours.remove_ids(sel[how](fc)) == ref.remove_ids(sel[how](faiss)) > 0
    assert_same_index(ours, ref, queries)
    np.testing.assert_array_equal(ours.reconstruct_n(), ref.reconstruct_n())
    # Adds after a removal continue the numbering, and a second removal renumbers again.
    more = duplicate_codes(rng, 100, 32)
    ours.add(more)
    ref.add(more)
    assert_same_index(ours, ref, queries)
    assert ours.remove_ids(np.arange(0, 700, 3)) == ref.remove_ids(np.arange(0, 700, 3))
    assert_same_index(ours, ref, queries)
    np.testing.assert_array_equal(ours.reconstruct_n(0, 5), ref.reconstruct_n(0, 5))
    np.testing.assert_array_equal(ours.reconstruct_n(), ref.reconstruct_n())
    assert ours.remove_ids(x=np.array([10**6], dtype=np.int64)) == 0  # FAISS's keyword


def test_reset_empties_and_restarts_numbering(rng):
    codes = rng.integers(0, 256, (50, 2), dtype=np.uint8)
    ours, ref = both_flat(16, codes)
    ours.remove_ids(np.array([3]))
    ours.reset()
    ref.reset()
    assert ours.ntotal == 0
    ours.add(codes[:10])
    ref.add(codes[:10])
    assert_same_index(ours, ref, codes[:4])


def test_attributes_match_faiss():
    ours, ref = fc.IndexBinaryFlat(136), faiss.IndexBinaryFlat(136)
    for name in ("d", "code_size", "ntotal", "is_trained", "metric_type", "verbose"):
        assert getattr(ours, name) == getattr(ref, name), name
    assert ours.metric_type == faiss.METRIC_L2 == fc.METRIC_L2


@pytest.mark.parametrize("cls_name", ["IndexBinaryIDMap", "IndexBinaryIDMap2"])
@pytest.mark.parametrize("kind", ["uniform", "duplicates"])
def test_id_maps_identical_to_faiss(cls_name, kind, rng):
    codes = make_codes(kind, rng, 800, 48)
    ids = rng.integers(-20, 300, 800)  # FAISS allows repeated and negative ids; so do we
    ours, ref = both_idmap(cls_name, 48, codes, ids)
    queries = codes[:15]
    assert_same_index(ours, ref, queries, ks=(1, 10, 900))
    np.testing.assert_array_equal(ours.id_map, faiss.vector_to_array(ref.id_map))
    assert ours.assign(queries, 4).tolist() == ref.assign(queries, 4).tolist()
    # remove_ids selects by id: every copy of a repeated id goes; positions close up.
    doomed = np.unique(ids[::7])
    assert ours.remove_ids(doomed) == ref.remove_ids(doomed)
    assert_same_index(ours, ref, queries)
    assert ours.remove_ids(fc.IDSelectorRange(50, 120)) == ref.remove_ids(faiss.IDSelectorRange(50, 120))
    assert_same_index(ours, ref, queries)
    more = make_codes(kind, rng, 40, 48)
    ours.add_with_ids(more, np.arange(1000, 1040))
    ref.add_with_ids(more, np.arange(1000, 1040))
    assert_same_index(ours, ref, queries)
    np.testing.assert_array_equal(ours.id_map, faiss.vector_to_array(ref.id_map))
    ours.reset()
    ref.reset()
    assert ours.ntotal == 0 and ours.index.ntotal == 0
    assert_same_index(ours, ref, queries)


def test_idmap2_reconstruct_by_id_last_copy_wins(rng):
    codes = rng.integers(0, 256, (6, 2), dtype=np.uint8)
    ids = np.array([5, 9, 5, -2, 7, 9])
    ours, ref = both_idmap("IndexBinaryIDMap2", 16, codes, ids)
    for key in (5, 9, -2, 7):
        np.testing.assert_array_equal(ours.reconstruct(key), ref.reconstruct(key))
    np.testing.assert_array_equal(ours.reconstruct(9), codes[5])
    with pytest.raises(RuntimeError):
        ref.reconstruct(8)
    with pytest.raises(fc.UnknownIdError, match="key 8 not found"):
        ours.reconstruct(8)
    with pytest.raises(KeyError):
        ours.reconstruct(8)
    ours.remove_ids(np.array([9]))
    with pytest.raises(RuntimeError):
        ours.reconstruct(9)
    np.testing.assert_array_equal(ours.reconstruct(5), codes[2])
    # reconstruct_n treats n0 .. n0 + ni - 1 as ids, as FAISS's default implementation does.
    seq, ref_seq = both_idmap("IndexBinaryIDMap2", 16, codes, np.arange(10, 16))
    np.testing.assert_array_equal(seq.reconstruct_n(11, 3), ref_seq.reconstruct_n(11, 3))


def test_idmap_refusals_match_faiss(rng):
    codes = rng.integers(0, 256, (4, 2), dtype=np.uint8)
    ours, ref = both_idmap("IndexBinaryIDMap", 16, codes, np.arange(4))
    for index in (ours, ref):
        with pytest.raises(RuntimeError, match="add does not make sense"):
            index.add(codes)
        with pytest.raises(RuntimeError, match="not implemented"):
            index.reconstruct(1)
        with pytest.raises(AssertionError):
            index.add_with_ids(codes, np.arange(3))
    full_ours, full_ref = both_flat(16, codes)
    with pytest.raises(RuntimeError, match="empty"):
        fc.IndexBinaryIDMap(full_ours)
    with pytest.raises(RuntimeError):
        faiss.IndexBinaryIDMap(full_ref)
    with pytest.raises(TypeError, match="faiss_compat.IndexBinaryFlat"):
        fc.IndexBinaryIDMap(faiss.IndexBinaryFlat(16))
    assert ours.ntotal == 4  # refused calls changed nothing
    with pytest.raises(ValueError):
        ours.id_map[0] = 99


def test_argument_errors_are_faiss_and_engine_exceptions(rng):
    index = fc.IndexBinaryFlat(32)
    good = rng.integers(0, 256, (3, 4), dtype=np.uint8)
    index.add(good)
    with pytest.raises(TypeError, match="uint8"):
        index.add(good.astype(np.int64))
    with pytest.raises(TypeError):
        index.search(good.astype(np.float32), 1)
    for call in (lambda: index.add(good[:, :3]), lambda: index.search(good[:, :3], 1),
                 lambda: index.search(good, 0), lambda: index.range_search(good[0], 3)):
        with pytest.raises(AssertionError):  # what FAISS raises for these
            call()
        with pytest.raises(ValueError):  # what the engine's contract says
            call()
    with pytest.raises(TypeError):
        index.range_search(good, 2.0)  # FAISS refuses a float radius too
    with pytest.raises(TypeError):
        index.remove_ids(np.array([1.0, 2.0]))
    for d in (12, 0, -8):
        with pytest.raises(RuntimeError):
            fc.IndexBinaryFlat(d)
    with pytest.raises(RuntimeError, match="add_with_ids not implemented"):
        index.add_with_ids(good, np.arange(3))
    with pytest.raises(NotImplementedError):
        index.search(good, 1, params=object())
    assert index.ntotal == 3
    np.testing.assert_array_equal(index.reconstruct_n(), good)


def test_selectors():
    batch = fc.IDSelectorBatch(np.array([4, 2, 9]))
    assert [batch.is_member(i) for i in range(10)] == [i in (2, 4, 9) for i in range(10)]
    assert fc.IDSelectorBatch(2, np.array([1, 3])).is_member(3)
    with pytest.raises(ValueError):
        fc.IDSelectorBatch(3, np.array([1, 3]))
    rng_sel = fc.IDSelectorRange(2, 5)
    ref = faiss.IDSelectorRange(2, 5)
    assert [rng_sel.is_member(i) for i in range(-2, 8)] == [ref.is_member(i) for i in range(-2, 8)]
    with pytest.raises(TypeError, match="selector"):
        fc.IndexBinaryFlat(8).remove_ids("3")


@pytest.mark.parametrize("description, cls, inner", [
    ("BFlat", "IndexBinaryFlat", None),
    ("IDMap,BFlat", "IndexBinaryIDMap", "IndexBinaryFlat"),
    ("BFlat,IDMap", "IndexBinaryIDMap", "IndexBinaryFlat"),
    ("IDMap2,BFlat", "IndexBinaryIDMap2", "IndexBinaryFlat"),
    ("BFlat,IDMap2", "IndexBinaryIDMap2", "IndexBinaryFlat"),
])
def test_factory_builds_what_faiss_builds(description, cls, inner):
    ours = fc.index_binary_factory(24, description)
    ref = faiss.index_binary_factory(24, description)
    assert type(ours).__name__ == type(ref).__name__ == cls
    assert ours.code_size == ref.code_size == 3
    if inner:
        assert type(ours.index).__name__ == inner


@pytest.mark.parametrize("description", ["BIVF10", "BHNSW32", "BHash12", "Flat", "bflat", "IDMap,IDMap,BFlat", ""])
def test_factory_refuses_what_it_cannot_build(description):
    with pytest.raises(RuntimeError, match="did not generate an index"):
        fc.index_binary_factory(16, description)
    with pytest.raises(ValueError):
        fc.index_binary_factory(16, description)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("kind", ["IndexBinaryFlat", "IndexBinaryIDMap2"])
def test_random_operation_sequences_match_faiss(kind, seed):
    """Adds, removals (arrays and both selectors), resets and searches in random order: after
    every step the two indexes answer alike and hold the same codes."""
    rng = np.random.default_rng([seed, 19])
    nbits = 16
    if kind == "IndexBinaryFlat":
        ours, ref = fc.IndexBinaryFlat(nbits), faiss.IndexBinaryFlat(nbits)
    else:
        ours, ref = fc.IndexBinaryIDMap2(fc.IndexBinaryFlat(nbits)), faiss.IndexBinaryIDMap2(faiss.IndexBinaryFlat(nbits))
    queries = duplicate_codes(rng, 6, nbits)
    for _ in range(25):
        op = rng.choice(["add", "add", "remove", "range", "batch", "reset"], p=[0.3, 0.2, 0.2, 0.15, 0.1, 0.05])
        if op == "add":
            codes = duplicate_codes(rng, int(rng.integers(0, 60)), nbits)
            if kind == "IndexBinaryFlat":
                ours.add(codes)
                ref.add(codes)
            else:
                ids = rng.integers(-5, 80, len(codes))
                ours.add_with_ids(codes, ids)
                ref.add_with_ids(codes, ids)
        elif op == "reset":
            ours.reset()
            ref.reset()
        else:
            top = ours.ntotal + 5 if kind == "IndexBinaryFlat" else 80
            lo = int(rng.integers(-5, top))
            hi = lo + int(rng.integers(0, 20))
            ids = rng.integers(-5, top, int(rng.integers(0, 15)))
            make = {"remove": lambda m: ids, "range": lambda m: m.IDSelectorRange(lo, hi),
                    "batch": lambda m: m.IDSelectorBatch(ids)}[op]
            assert ours.remove_ids(make(fc)) == ref.remove_ids(make(faiss))
        assert_same_index(ours, ref, queries, ks=(1, 8), radii=(3, 17))
        flat_ours, flat_ref = (ours, ref) if kind == "IndexBinaryFlat" else (ours.index, ref.index)
        np.testing.assert_array_equal(flat_ours.reconstruct_n(), flat_ref.reconstruct_n())


@pytest.mark.parametrize("method", ["add", "add_with_ids", "train", "search", "assign", "range_search",
                                    "reconstruct", "reconstruct_n", "remove_ids"])
def test_method_signatures_are_faiss_s(method):
    """Same parameter names, defaults and kinds, so keyword calls written for FAISS work."""
    import inspect

    def params(fn):
        return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]

    for ours_cls, ref_cls in ((fc.IndexBinaryFlat, faiss.IndexBinaryFlat),
                              (fc.IndexBinaryIDMap2, faiss.IndexBinaryIDMap2)):
        if method == "add_with_ids" and ours_cls is fc.IndexBinaryFlat:
            continue  # it only raises, as FAISS's
        assert params(getattr(ours_cls, method)) == params(getattr(ref_cls, method)), (ours_cls.__name__, method)
