"""FlatIndex k-NN and range search against the NumPy oracle, at every SIMD level and code size."""

from contextlib import contextmanager

import numpy as np
import pytest

import deephash_engine as de
from oracles import clustered_codes, duplicate_codes, oracle_knn, oracle_range

ALL_NBITS = list(range(8, 1025, 8))


@contextmanager
def num_threads(n):
    """The core's thread count set to n inside the block, restored after it."""
    previous = de.get_num_threads()
    de.set_num_threads(n)
    try:
        yield
    finally:
        de.set_num_threads(previous)


@pytest.mark.parametrize("nbits", ALL_NBITS)
def test_every_code_size_matches_oracle(nbits, simd_level):
    rng = np.random.default_rng(nbits)
    n = 150 + nbits % 17  # not a multiple of the unrolled step
    codes = rng.integers(0, 256, (n, nbits // 8), dtype=np.uint8)
    queries = rng.integers(0, 256, (20, nbits // 8), dtype=np.uint8)
    index = de.FlatIndex(nbits)
    index.add(codes)
    eD, eI = oracle_knn(queries, codes, np.arange(n), 7)
    D, I = index.search(queries[:3], 7)  # few queries: each filters the plain codes
    np.testing.assert_array_equal(D, eD[:3])
    np.testing.assert_array_equal(I, eI[:3])
    with num_threads(1):  # one group of 20 queries: the level's prepared layout, where it has one
        D, I = index.search(queries, 7)
    np.testing.assert_array_equal(D, eD)
    np.testing.assert_array_equal(I, eI)


@pytest.mark.parametrize("kind", ["uniform", "clustered", "duplicates"])
@pytest.mark.parametrize("nbits", [64, 256])
@pytest.mark.parametrize("nq", [1, 40])
def test_both_parallel_paths_match_oracle(kind, nbits, nq, simd_level, rng):
    n = 70000  # large enough that few queries take the database-parallel path
    codes = {"uniform": lambda: rng.integers(0, 256, (n, nbits // 8), dtype=np.uint8),
             "clustered": lambda: clustered_codes(rng, n, nbits),
             "duplicates": lambda: duplicate_codes(rng, n, nbits)}[kind]()
    queries = codes[rng.integers(0, n, nq)] ^ rng.integers(0, 2, (nq, nbits // 8), dtype=np.uint8)
    index = de.FlatIndex(nbits)
    index.add(codes)
    sub = slice(0, 6)  # the oracle is O(nq * n * nbits) in memory; check a few rows in full
    for k in (1, 10, 100):
        D, I = index.search(queries, k)
        eD, eI = oracle_knn(queries[sub], codes, np.arange(n), k)
        np.testing.assert_array_equal(D[sub], eD)
        np.testing.assert_array_equal(I[sub], eI)
    lims, rD, rI = index.range_search(queries[sub], nbits // 4)
    el, eD, eI = oracle_range(queries[sub], codes, np.arange(n), nbits // 4)
    np.testing.assert_array_equal(lims, el)
    np.testing.assert_array_equal(rD, eD)
    np.testing.assert_array_equal(rI, eI)


def test_caller_ids_in_any_order_break_ties_by_id(rng):
    n = 3000
    codes = duplicate_codes(rng, n, 32, ndistinct=3)
    ids = rng.permutation(10 * n)[:n].astype(np.int64)
    index = de.FlatIndex(32)
    index.add_with_ids(codes, ids)
    queries = codes[:5]
    for k in (1, 17, 500, n + 10):
        D, I = index.search(queries, k)
        eD, eI = oracle_knn(queries, codes, ids, k)
        np.testing.assert_array_equal(D, eD)
        np.testing.assert_array_equal(I, eI)
    lims, rD, rI = index.range_search(queries, 3)
    el, eD, eI = oracle_range(queries, codes, ids, 3)
    np.testing.assert_array_equal(rI, eI)


@pytest.mark.parametrize("k", [1, 10, 100])
def test_ids_in_any_order_with_copies_left_out_by_the_filter(k, simd_level, rng):
    # Ids in random order: the scan's first bound comes from runs of codes spread over the
    # database. Copies of the query lie at the starts of those runs (but not of the first run),
    # and the filter leaves every copy out: a first bound that counted them would be 0 and the
    # search would miss the true neighbours.
    n, nbits = 20000, 64
    codes = rng.integers(0, 256, (n, nbits // 8), dtype=np.uint8)
    query = codes[0] ^ np.uint8(0x0F)
    stride = n // 64
    copies = (np.arange(1, 64)[:, None] * stride + np.arange(24)[None, :]).ravel()
    codes[copies] = query
    ids = rng.permutation(n).astype(np.int64)
    index = de.FlatIndex(nbits)
    index.add_with_ids(codes, ids)
    allowed = np.setdiff1d(np.arange(n), copies)
    D, I = index.search(query[None], k, allow=ids[allowed])
    eD, eI = oracle_knn(query[None], codes[allowed], ids[allowed], k)
    np.testing.assert_array_equal(D, eD)
    np.testing.assert_array_equal(I, eI)
    D, I = index.search(query[None], k)  # unfiltered: the copies, smallest ids first
    eD, eI = oracle_knn(query[None], codes, ids, k)
    np.testing.assert_array_equal(D, eD)
    np.testing.assert_array_equal(I, eI)


@pytest.mark.parametrize("threads", [2, 4])
@pytest.mark.parametrize("order", ["increasing", "decreasing", "removed"])
def test_one_query_split_across_threads_keeps_the_tie_order(threads, order, rng):
    # One query over a database split between threads, with exact copies of the query: 100 spread
    # thinly over the first 30,000 codes (inside the first part for 2 and 4 threads), 2,100 dense
    # after 35,000. A later part of the database may skip codes at the k-th distance found by an
    # earlier part only while ids grow with position (they lose the tie), never the other way
    # round: the later parts find their k copies long before the first part does. With ids in
    # decreasing order the later parts hold the winners.
    n, nbits = 140_000, 256  # at least 4 blocks of 8,192 codes for each of 4 threads
    codes = rng.integers(0, 256, (n, nbits // 8), dtype=np.uint8)
    query = rng.integers(0, 256, nbits // 8, dtype=np.uint8)
    copies = np.concatenate([np.linspace(0, 29_999, 100).astype(np.int64),
                             np.sort(rng.choice(np.arange(35_000, n), 2100, replace=False))])
    codes[copies] = query
    ids = np.arange(n, dtype=np.int64) if order != "decreasing" else np.arange(n, 0, -1, dtype=np.int64)
    index = de.FlatIndex(nbits)
    index.add_with_ids(codes, ids)
    keep = np.ones(n, dtype=bool)
    if order == "removed":  # the first copies are gone: the winners move on
        gone = ids[copies[:30]]
        index.remove_ids(gone)
        keep[copies[:30]] = False
    with num_threads(threads):
        for k in (1, 5, 100):
            D, I = index.search(query[None], k)
            eD, eI = oracle_knn(query[None], codes[keep], ids[keep], k)
            np.testing.assert_array_equal(D, eD)
            np.testing.assert_array_equal(I, eI)


@pytest.mark.parametrize("nbits", [16, 32, 64, 256])
@pytest.mark.parametrize("order", ["increasing", "shuffled", "removed"])
def test_one_query_tightening_within_a_block_keeps_every_tie(nbits, order, simd_level, rng):
    # A single query walks each block in pieces and tightens its bound between them. Near-copies
    # of the query are spread over the whole database, so the k-th distance and its ties fall in
    # many pieces of one block (16-bit codes: the database is one block of 40,000 codes, pieces
    # of 8,192); a piece scanned after the bound settled must still admit a tie that an id order
    # other than storage order makes a winner.
    n = 40_000
    codes = clustered_codes(rng, n, nbits, nclusters=3, flip=0.02)
    ids = {"increasing": np.arange(n), "shuffled": rng.permutation(n),
           "removed": np.arange(n)}[order].astype(np.int64)
    index = de.FlatIndex(nbits)
    index.add_with_ids(codes, ids)
    keep = np.ones(n, dtype=bool)
    if order == "removed":
        gone = rng.choice(n, 5000, replace=False)
        index.remove_ids(ids[gone])
        keep[gone] = False
    queries = codes[rng.integers(0, n, 4)]
    eD, eI = oracle_knn(queries, codes[keep], ids[keep], 3000)  # each k's answer is a prefix
    for threads in (1, 2):
        with num_threads(threads):
            for i in range(len(queries)):
                for k in (1, 10, 100, 3000):
                    D, I = index.search(queries[i:i + 1], k)
                    np.testing.assert_array_equal(D[0], eD[i, :k])
                    np.testing.assert_array_equal(I[0], eI[i, :k])


@pytest.mark.parametrize("threads", [1, 2])
def test_one_query_over_many_short_codes_settles_or_goes_on(threads, rng):
    # 16-bit codes, 1.1M of them (16 copies of every value on average): a single query first scans
    # a head of the database alone and stops there when k copies of it settle the answer. Queries
    # whose copies are all early, all late (past the head, in the other thread's half), too few, or
    # absent must all get the oracle's answer.
    n = 1_100_000
    codes = rng.integers(0, 1 << 15, n, dtype=np.uint16) << np.uint16(1)  # even values only
    early, late, few = np.uint16(1), np.uint16(3), np.uint16(5)  # odd: placed by hand
    codes[rng.choice(20_000, 300, replace=False)] = early
    codes[900_000 + rng.choice(100_000, 300, replace=False)] = late
    codes[[100, 400_000, 700_000, 1_050_000]] = few  # one inside the head
    codes = codes.view(np.uint8).reshape(n, 2)
    index = de.FlatIndex(16)
    index.add(codes)
    queries = np.array([early, late, few, 7, codes[17].view(np.uint16)[0]], dtype=np.uint16).view(np.uint8).reshape(-1, 2)
    eD, eI = oracle_knn(queries, codes, np.arange(n), 100)
    with num_threads(threads):
        for i in range(len(queries)):
            for k in (1, 10, 100):
                D, I = index.search(queries[i:i + 1], k)
                np.testing.assert_array_equal(D[0], eD[i, :k])
                np.testing.assert_array_equal(I[0], eI[i, :k])


@pytest.mark.parametrize("ids_kind", ["shuffled", "shuffled-wide", "removed"])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_range_hits_of_ids_in_any_order_come_in_distance_then_id_order(ids_kind, threads, rng):
    # Ids that do not grow with position (4-byte and 8-byte ids): hits carry positions through the
    # scan and get their ids once placed by distance; with fewer queries than threads each
    # distance's run is mapped and sorted on its own thread. Thousands of hits over many distances.
    n, nbits = 30_000, 64
    codes = clustered_codes(rng, n, nbits, nclusters=4, flip=0.08)
    ids = rng.permutation(n).astype(np.int64)
    if ids_kind == "shuffled-wide":
        ids += 1 << 40
    index = de.FlatIndex(nbits)
    index.add_with_ids(codes, ids)
    keep = np.ones(n, dtype=bool)
    if ids_kind == "removed":
        gone = rng.choice(n, 3000, replace=False)
        index.remove_ids(ids[gone])
        keep[gone] = False
    queries = codes[rng.integers(0, n, 4)]
    with num_threads(threads):
        for nq in (1, 2, 4):
            lims, D, I = index.range_search(queries[:nq], 12)
            elims, eD, eI = oracle_range(queries[:nq], codes[keep], ids[keep], 12)
            assert lims[-1] > 1000 * nq
            np.testing.assert_array_equal(lims, elims)
            np.testing.assert_array_equal(D, eD)
            np.testing.assert_array_equal(I, eI)


def test_k_larger_than_ntotal_pads_like_faiss():
    index = de.FlatIndex(16)
    index.add(np.array([[1, 0], [3, 0]], dtype=np.uint8))
    D, I = index.search(np.array([[0, 0]], dtype=np.uint8), 4)
    assert D.dtype == np.int32 and I.dtype == np.int64
    assert D.tolist() == [[1, 2, 2147483647, 2147483647]]
    assert I.tolist() == [[0, 1, -1, -1]]


def test_empty_index_and_empty_queries():
    index = de.FlatIndex(64)
    D, I = index.search(np.zeros((2, 8), dtype=np.uint8), 3)
    assert (I == -1).all() and (D == 2147483647).all()
    lims, rD, rI = index.range_search(np.zeros((2, 8), dtype=np.uint8), 64)
    assert lims.tolist() == [0, 0, 0] and len(rD) == 0
    D, I = index.search(np.zeros((0, 8), dtype=np.uint8), 3)
    assert D.shape == (0, 3)


def test_one_code_one_bit_and_identical_codes():
    index = de.FlatIndex(8)
    index.add(np.array([[1]], dtype=np.uint8))
    D, I = index.search(np.array([[0], [1]], dtype=np.uint8), 1)
    assert D.ravel().tolist() == [1, 0] and I.ravel().tolist() == [0, 0]
    same = de.FlatIndex(128)
    same.add(np.full((1000, 16), 7, dtype=np.uint8))
    D, I = same.search(np.full((1, 16), 7, dtype=np.uint8), 5)
    assert D.tolist() == [[0] * 5] and I.tolist() == [[0, 1, 2, 3, 4]]


def test_range_radius_is_inclusive_and_capped(rng):
    codes = rng.integers(0, 256, (500, 4), dtype=np.uint8)
    index = de.FlatIndex(32)
    index.add(codes)
    q = codes[:2]
    lims, D, I = index.range_search(q, 0)
    assert (D == 0).all() and set(I[lims[0]:lims[1]]) >= {0}
    lims, D, I = index.range_search(q, 10**9)
    assert lims.tolist() == [0, 500, 1000]


def test_remove_then_search_keeps_ids(rng):
    codes = rng.integers(0, 256, (400, 8), dtype=np.uint8)
    index = de.FlatIndex(64)
    index.add(codes)
    removed = np.arange(0, 400, 3)
    assert index.remove_ids(np.concatenate([removed, [10**6]])) == len(removed)
    keep = np.setdiff1d(np.arange(400), removed)
    D, I = index.search(codes[:10], 20)
    eD, eI = oracle_knn(codes[:10], codes[keep], keep, 20)
    np.testing.assert_array_equal(D, eD)
    np.testing.assert_array_equal(I, eI)
    index.add(codes[:1])  # id 0 was removed: the same code comes back as id 400
    D, I = index.search(codes[:1], 1)
    assert (D[0, 0], I[0, 0]) == (0, 400)
    assert index.next_id == 401
    np.testing.assert_array_equal(index.reconstruct(400), codes[0])


@pytest.mark.parametrize("cls", [de.FlatIndex, de.MIHIndex])
def test_ids_and_reconstruct_batch_export_what_is_held(rng, cls):
    codes = rng.integers(0, 256, (300, 4), dtype=np.uint8)
    index = cls(32)
    index.add_with_ids(codes, np.arange(1000, 1300))
    index.remove_ids([1005, 1100])  # MIH keeps them as tombstones
    live = np.setdiff1d(np.arange(1000, 1300), [1005, 1100])
    np.testing.assert_array_equal(index.ids(), live)
    np.testing.assert_array_equal(index.reconstruct_batch(live[::-1]), codes[live[::-1] - 1000])
    for absent in ([1005], [7, 1001], [1299, 1300]):
        with pytest.raises(KeyError, match=str(absent[-1] if absent[0] in live else absent[0])):
            index.reconstruct_batch(absent)
