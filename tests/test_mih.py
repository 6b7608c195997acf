"""MIHIndex gives exactly FlatIndex's answers (D and I, ties included) in every regime:
probing, the linear-scan fallback, the unmerged tail, tombstones, save/load."""

import numpy as np
import pytest

import deephash_engine as de
from oracles import clustered_codes, duplicate_codes


def near_duplicates(rng, n, nbits):
    base = rng.integers(0, 256, (n // 50 + 1, nbits // 8), dtype=np.uint8)
    codes = base[rng.integers(0, len(base), n)]
    flips = rng.integers(0, nbits, (n, 2))
    bits = np.unpackbits(codes, axis=1, bitorder="little")
    bits[np.arange(n)[:, None], flips] ^= 1
    return np.packbits(bits, axis=1, bitorder="little")


MAKERS = {
    "uniform": lambda rng, n, b: rng.integers(0, 256, (n, b // 8), dtype=np.uint8),
    "clustered": lambda rng, n, b: clustered_codes(rng, n, b),
    "duplicates": lambda rng, n, b: duplicate_codes(rng, n, b),
    "near-duplicates": near_duplicates,
}


def assert_same(mih, flat, queries, ks, radii):
    for k in ks:
        D1, I1 = mih.search(queries, k)
        D2, I2 = flat.search(queries, k)
        np.testing.assert_array_equal(D1, D2, err_msg=f"k={k}")
        np.testing.assert_array_equal(I1, I2, err_msg=f"k={k}")
    for r in radii:
        for a, b in zip(mih.range_search(queries, r), flat.range_search(queries, r)):
            np.testing.assert_array_equal(a, b, err_msg=f"radius={r}")


@pytest.mark.parametrize("kind", sorted(MAKERS))
@pytest.mark.parametrize("nbits", [32, 64, 128, 256, 512])
def test_identical_to_flat(kind, nbits):
    rng = np.random.default_rng(nbits + len(kind))
    n = 12000
    codes = MAKERS[kind](rng, n, nbits)
    queries = np.concatenate([codes[:10], MAKERS[kind](rng, 10, nbits)])
    mih, flat = de.MIHIndex(nbits), de.FlatIndex(nbits)
    mih.add(codes)
    flat.add(codes)
    assert mih.tail_size == 0 and mih.m >= 1 and sum(mih.substring_bits) == nbits
    assert_same(mih, flat, queries, ks=(1, 10, 100, n + 5), radii=range(0, nbits // 4 + 1, max(1, nbits // 32)))


@pytest.mark.parametrize("nbits, m", [(32, 1), (64, 2), (64, 3), (64, 5), (64, 8), (40, 3)])
def test_every_table_count_is_exact(nbits, m, rng):
    codes = clustered_codes(rng, 5000, nbits, flip=0.1)
    mih, flat = de.MIHIndex(nbits, m=m), de.FlatIndex(nbits)
    mih.add(codes)
    flat.add(codes)
    assert mih.m == m and not mih.auto_m
    assert_same(mih, flat, codes[:20] ^ np.uint8(1), ks=(1, 7, 64), radii=(0, 3, 5, 9, nbits // 4))


def test_probing_and_scanning_both_used_and_exact(rng):
    # Many small clusters: each query's neighbours sit in a few small buckets, so probing costs far
    # less than scanning the 100k codes (the cost model compares the two per query).
    n = 100_000
    structured = clustered_codes(rng, n, 64, nclusters=2000, flip=0.02)
    mih, flat = de.MIHIndex(64), de.FlatIndex(64)
    mih.add(structured)
    flat.add(structured)
    D, I, st = mih.search_with_stats(structured[:50], 10)
    assert st["linear_scan"].mean() < 0.2, "near neighbours should mostly be found by probing"
    probed = ~st["linear_scan"]
    assert (st["candidates"] < n).all() and (st["radius"][probed] >= 0).all()
    np.testing.assert_array_equal(I, flat.search(structured[:50], 10)[1])
    uniform = rng.integers(0, 256, (40, 8), dtype=np.uint8)
    D, I, st = mih.search_with_stats(uniform, 100)
    np.testing.assert_array_equal(D, flat.search(uniform, 100)[0])
    np.testing.assert_array_equal(I, flat.search(uniform, 100)[1])
    stats = mih.stats()
    assert stats["queries"] == 90 and stats["candidates"] > 0


def test_single_queries_learn_to_skip_probes_that_do_not_pay(rng):
    # Uniform 128-bit codes: every k-NN probe gives up and the query is scanned after it. Single
    # queries (one per call, as a service sends them) soon go to the scan without a probe; queries
    # of another kind (another k, a filter) are not affected, and when probes pay again (queries
    # one bit away from codes with many copies: a probe answers at once, a scan cannot stop early)
    # probing comes back. Answers are exact throughout.
    n, nbits = 60_000, 128
    codes = rng.integers(0, 256, (n, nbits // 8), dtype=np.uint8)
    codes[: 50 * 20] = np.repeat(codes[:50], 20, axis=0)  # 50 codes with 20 copies each
    mih, flat = de.MIHIndex(nbits), de.FlatIndex(nbits)
    mih.add(codes)
    flat.add(codes)
    far = rng.integers(0, 256, (300, nbits // 8), dtype=np.uint8)
    near = codes[np.arange(3100) % 50].copy()
    near[:, 0] ^= 1

    def one_by_one(queries, k, **kw):
        for q in queries:
            D, I = mih.search(q[None], k, **kw)
            eD, eI = flat.search(q[None], k, **kw)
            np.testing.assert_array_equal(D, eD)
            np.testing.assert_array_equal(I, eI)

    def knn_plan(k):
        return next(e for e in mih.plan() if e["search"] == "knn" and e["k"][0] <= k <= e["k"][1])

    mih.reset_stats()
    one_by_one(far, 10)
    stats = mih.stats()
    assert stats["linear_scans"] == 300
    assert stats["unprobed_scans"] >= 280, "after a few probes that gave up, the rest skip them"
    # both paths timed (which is faster at the end moves with the machine's load: a probe that
    # gives up costs 2-3 scans, and a scan held up by another process counts up to 4x)
    assert knn_plan(10)["probe_us"] > 0 and knn_plan(10)["scan_us"] > 0
    mih.reset_stats()
    one_by_one(far[:5], 10, allow=np.arange(1, n))  # filtered: probed as before
    one_by_one(codes[:5], 1)  # another k: probed, and answered by the probe
    stats = mih.stats()
    assert stats["unprobed_scans"] == 0 and stats["linear_scans"] == 5
    assert knn_plan(1)["path"] == "probe" and knn_plan(1)["scan_us"] is None
    mih.reset_stats()  # a batch has its own account (and a batch scan's budget): probed as before
    D, I = mih.search(codes[:20], 10)
    np.testing.assert_array_equal(I, flat.search(codes[:20], 10)[1])
    assert mih.stats()["linear_scans"] == 0
    mih.reset_stats()
    one_by_one(near[:3000], 10)
    assert mih.stats()["unprobed_scans"] < 2500  # the exploring probes succeed, and probing resumes
    assert knn_plan(10)["path"] == "probe"
    mih.reset_stats()
    one_by_one(near[3000:], 10)
    # probing pays again (a burst of scans in each 128 queries or fewer still times the scan)
    assert mih.stats()["unprobed_scans"] <= 4

def test_single_range_queries_learn_to_skip_probes_that_do_not_pay(rng):
    # Every code shares its first 32 bits, so the first two tables each hold one bucket of all
    # codes: a range probe that reaches it checks far more candidates than its plan expected, gives
    # up and is scanned. Single range queries of that radius soon skip the probe; another radius
    # (whose probes take the sparse tables and answer, faster than a scan) is not affected.
    n, nbits = 60_000, 128
    codes = rng.integers(0, 256, (n, nbits // 8), dtype=np.uint8)
    codes[:, :4] = 7
    queries = rng.integers(0, 256, (300, nbits // 8), dtype=np.uint8)
    queries[:, :4] = 7
    mih, flat = de.MIHIndex(nbits), de.FlatIndex(nbits)
    mih.add(codes)
    flat.add(codes)
    for radius, skipped in ((8, True), (4, False)):
        mih.reset_stats()
        for q in queries:
            for got, want in zip(mih.range_search(q[None], radius), flat.range_search(q[None], radius)):
                np.testing.assert_array_equal(got, want)
        stats = mih.stats()
        plan = next(e for e in mih.plan() if e["search"] == "range" and e["radius"] == (radius, radius))
        if skipped:
            assert stats["linear_scans"] == 300 and stats["unprobed_scans"] >= 280
            assert plan["probe_us"] > 0 and plan["scan_us"] > 0
        else:  # probed, but for the queries that time the scan: 4 in the first 16, 4 in each 128 or more
            assert stats["linear_scans"] == stats["unprobed_scans"] <= 4 + 4 * 300 // 128
            assert plan["path"] == "probe" and plan["probe_us"] < plan["scan_us"]
    assert [e["radius"] for e in mih.plan()] == [(4, 4), (8, 8)]
    mih.add(codes[:10_000])
    mih.compact()  # new tables: what the plan learned is forgotten
    assert mih.plan() == []


def test_tail_and_incremental_adds(rng):
    codes = clustered_codes(rng, 20000, 128)
    mih, flat = de.MIHIndex(128), de.FlatIndex(128)
    for start in range(0, 20000, 1500):  # tables are rebuilt as the tail grows
        mih.add(codes[start:start + 1500])
        flat.add(codes[start:start + 1500])
        assert_same(mih, flat, codes[start:start + 5], ks=(1, 25), radii=(10,))
    assert mih.tail_size < 20000
    mih.compact()
    assert mih.tail_size == 0


def test_small_index_lives_in_the_tail(rng):
    codes = rng.integers(0, 256, (50, 4), dtype=np.uint8)
    mih, flat = de.MIHIndex(32), de.FlatIndex(32)
    mih.add(codes)
    flat.add(codes)
    assert mih.tail_size == 50
    assert_same(mih, flat, codes[:5], ks=(1, 10, 60), radii=(0, 8, 32))


def test_removals_tombstones_and_compaction(rng):
    n = 10000
    codes = duplicate_codes(rng, n, 64, ndistinct=40)
    mih, flat = de.MIHIndex(64), de.FlatIndex(64)
    mih.add(codes)
    flat.add(codes)
    few = rng.choice(n, 300, replace=False)  # below the compaction threshold: tombstones
    assert mih.remove_ids(few) == flat.remove_ids(few) == 300
    assert mih.tombstones == 300 and mih.ntotal == n - 300
    assert_same(mih, flat, codes[:8], ks=(1, 50, n), radii=(0, 12))
    with pytest.raises(KeyError):
        mih.reconstruct(int(few[0]))
    many = np.setdiff1d(np.arange(0, n, 3), few)  # crosses the threshold: compaction
    assert mih.remove_ids(many) == flat.remove_ids(many)
    assert mih.tombstones == 0
    assert_same(mih, flat, codes[:8], ks=(1, 50), radii=(12,))
    # a removed id can come back, keeping its id
    mih.add_with_ids(codes[:1], [int(few[1])])
    flat.add_with_ids(codes[:1], [int(few[1])])
    assert_same(mih, flat, codes[:8], ks=(1, 50), radii=(12,))


@pytest.mark.parametrize("mmap", [False, True])
def test_save_load_round_trip(tmp_path, rng, mmap):
    codes = clustered_codes(rng, 8000, 256)
    mih = de.MIHIndex(256, m=12)
    mih.add(codes)
    mih.remove_ids([1, 2, 3])
    mih.add_with_ids(codes[:2], [10**12, 2])  # 2 was removed: it may come back
    path = tmp_path / "mih.dhi"
    mih.save(path)
    loaded = de.load_index(path, mmap=mmap)
    assert isinstance(loaded, de.MIHIndex)
    assert (loaded.m, loaded.ntotal, loaded.next_id) == (12, mih.ntotal, mih.next_id)
    assert_same(loaded, mih, codes[:10], ks=(1, 30), radii=(16, 24, 31))


def test_memory_usage_counts_tables_and_codes(rng):
    codes = rng.integers(0, 256, (100000, 8), dtype=np.uint8)
    mih = de.MIHIndex(64)
    mih.add(codes)
    used = mih.memory_usage()
    assert used >= codes.nbytes + 100000 * 4 * mih.m  # codes + one uint32 position per table
    assert used < 4 * codes.nbytes + 100000 * 4 * mih.m + (4 << 20) * mih.m * 2


def test_parameter_errors():
    with pytest.raises(ValueError, match="positive number of bits"):
        de.MIHIndex(0)
    with pytest.raises(ValueError, match="more than 32 bits"):
        de.MIHIndex(256, m=4)
    with pytest.raises(ValueError, match="m must be"):
        de.MIHIndex(64, m=-1)
    with pytest.raises(ValueError, match="m must be"):
        de.MIHIndex(64, m=65)
    mih = de.MIHIndex(64)
    with pytest.raises(TypeError, match="uint8"):
        mih.add(np.zeros((3, 8)))
    with pytest.raises(ValueError, match="k must be > 0"):
        mih.search(np.zeros((1, 8), dtype=np.uint8), 0)


def test_faiss_multihash_misses_neighbours_that_we_find(rng):
    faiss = pytest.importorskip("faiss", reason="faiss-cpu is installed by `make test`")
    n, nbits = 20000, 64
    codes = rng.integers(0, 256, (n, nbits // 8), dtype=np.uint8)
    queries = rng.integers(0, 256, (50, nbits // 8), dtype=np.uint8)
    flat = de.FlatIndex(nbits)
    flat.add(codes)
    exact_D, exact_I = flat.search(queries, 10)
    mih = de.MIHIndex(nbits)
    mih.add(codes)
    D, I = mih.search(queries, 10)
    np.testing.assert_array_equal(D, exact_D)
    np.testing.assert_array_equal(I, exact_I)
    ref = faiss.IndexBinaryMultiHash(nbits, 4, 16)
    ref.nflip = 1
    ref.add(codes)
    fD, fI = ref.search(queries, 10)
    wrong_rows = int(np.sum((fD != exact_D).any(axis=1)))
    assert wrong_rows > 0, "FAISS's multi-hash k-NN is approximate: some rows must differ here"


@pytest.mark.parametrize("m", [3, 4])
def test_range_search_picks_the_sparse_tables_and_stays_exact(m, rng):
    # Half the codes share table 0's substring (bits 0..21), so for queries near them table 0's
    # buckets are crowded and a range search of radius m*r + a (a + 1 < m) searches the a + 1
    # other tables out to r instead; the answers must not change.
    n, nbits = 40000, 64
    codes = rng.integers(0, 256, (n, 8), dtype=np.uint8)
    codes[: n // 2, :2] = 0x5A
    codes[: n // 2, 2] &= 0xC0
    mih, flat = de.MIHIndex(nbits, m=m), de.FlatIndex(nbits)
    mih.add(codes)
    flat.add(codes)
    queries = np.concatenate([codes[:15] ^ np.uint8(4), codes[-5:], rng.integers(0, 256, (5, 8), dtype=np.uint8)])
    radii = [r for r in range(0, 2 * m + 1) if r % m + 1 < m]
    assert_same(mih, flat, queries, ks=(1, 10, 100), radii=radii)


@pytest.mark.parametrize("ids", ["increasing", "shuffled"])
def test_probed_range_search_orders_many_hits_per_distance(ids, rng):
    # A cluster of near-duplicates of one code in 2M random ones: a range search around it is
    # probed (far cheaper than a scan) and finds hundreds of items at each distance, which the
    # probe orders by (distance, id) itself: a radix sort of storage positions where ids grow
    # with them, a sort of the ids otherwise. Plus an unmerged tail and removed items.
    n, nbits, cluster = 2_000_000, 64, 6000
    codes = rng.integers(0, 256, (n, 8), dtype=np.uint8)
    centre = rng.integers(0, 256, 8, dtype=np.uint8)
    near = np.unpackbits(np.repeat(centre[None], cluster, 0), axis=1, bitorder="little")
    for row, flips in zip(near, rng.integers(1, 4, cluster)):
        row[rng.choice(nbits, flips, replace=False)] ^= 1
    codes[rng.choice(n, cluster, replace=False)] = np.packbits(near, axis=1, bitorder="little")
    item_ids = np.arange(n) if ids == "increasing" else rng.permutation(n) * 3 + 7
    mih, flat = de.MIHIndex(nbits), de.FlatIndex(nbits)
    for index in (mih, flat):
        index.add_with_ids(codes[:-500], item_ids[:-500])
        index.add_with_ids(codes[-500:], item_ids[-500:])  # the tail
        index.remove_ids(item_ids[:: n // 1000])
    queries = np.stack([centre, centre ^ np.uint8(1), codes[12345]])
    mih.reset_stats()
    for radius in (3, 4, 6):
        lims, D, I = mih.range_search(queries, radius)
        flims, fD, fI = flat.range_search(queries, radius)
        np.testing.assert_array_equal(lims, flims)
        np.testing.assert_array_equal(D, fD)
        np.testing.assert_array_equal(I, fI)
        assert np.bincount(D[: lims[1]]).max() >= 1000  # past the radix sort's threshold (256)
    assert mih.stats()["linear_scans"] == 0, "these queries must be probed, not scanned"


@pytest.mark.parametrize("ids", ["plain", "shuffled", "wide"])
@pytest.mark.parametrize("mmap", [False, True])
def test_sorted_storage_keeps_every_answer_and_id(tmp_path, rng, ids, mmap):
    # From 8 MiB of codes the index stores them sorted (near-identical codes together), so its
    # storage order is neither insertion nor id order: every answer must still equal the flat
    # scan's, ties by id, through tombstones that move with their items at a rebuild, a tail,
    # reconstruction, save and load. "wide": ids past 2^32, stored in 8 bytes.
    n = 270_000  # x 32 bytes: past 8 MiB
    codes = near_duplicates(rng, n, 256)
    item_ids = {"plain": np.arange(n), "shuffled": rng.permutation(n) * 7 + 3,
                "wide": rng.permutation(n) + 2**33}[ids]
    mih, flat = de.MIHIndex(256), de.FlatIndex(256)
    queries = np.concatenate([codes[:10], codes[:5] ^ np.uint8(8), rng.integers(0, 256, (5, 32), dtype=np.uint8)])
    for index in (mih, flat):
        if ids == "plain":
            index.add(codes)
        else:
            index.add_with_ids(codes, item_ids)
    assert not np.array_equal(mih.ids(), item_ids), "the codes should have been reordered"
    assert_same(mih, flat, queries, ks=(1, 10, 100), radii=(0, 3, 8))
    gone = rng.choice(item_ids, 2000, replace=False)
    assert mih.remove_ids(gone) == flat.remove_ids(gone) == 2000
    assert mih.tombstones == 2000
    more = near_duplicates(rng, 40000, 256)
    for index in (mih, flat):
        index.add(more[:30000])  # a tail, with the next ids
    assert mih.tail_size == 30000
    assert_same(mih, flat, queries, ks=(1, 10, 100), radii=(0, 3, 8))
    for index in (mih, flat):
        index.add(more[30000:])  # past the tail's limit: a rebuild, tombstones kept
    assert mih.tail_size == 0 and mih.tombstones == 2000, "the tombstones moved with their items"
    assert_same(mih, flat, np.concatenate([queries, more[:5]]), ks=(1, 10, 100), radii=(0, 3, 8))
    np.testing.assert_array_equal(np.sort(mih.ids()), np.sort(flat.ids()))
    live = flat.ids()
    np.testing.assert_array_equal(mih.reconstruct_batch(live), flat.reconstruct_batch(live))
    with pytest.raises(KeyError):
        mih.reconstruct(int(gone[0]))
    path = tmp_path / "sorted.dhi"
    mih.save(path)
    loaded = de.load_index(path, mmap=mmap)
    assert loaded.is_mmapped == mmap, "saved sorted: loading needs no copy of the codes"
    assert_same(loaded, flat, queries, ks=(1, 10, 100), radii=(0, 3, 8))


def test_sorted_storage_costs_no_memory(rng):
    # The reordering makes ids explicit (4 bytes each) and frees the last table's position list
    # (4 bytes each): codes, one uint32 per item and table, and the tables' bucket starts (one
    # 64-byte block per 29 keys), nothing more.
    n = 1_100_000  # 8.8 MB: sorted
    codes = rng.integers(0, 256, (n, 8), dtype=np.uint8)
    mih = de.MIHIndex(64)
    mih.add(codes)
    starts = sum(-(-(2**b) // 29) * 64 for b in mih.substring_bits)
    assert mih.memory_usage() == codes.nbytes + 4 * n * mih.m + starts


@pytest.mark.parametrize("nbits, m", [(16, 1), (32, 1), (32, 2), (64, 3)])
@pytest.mark.parametrize("ids", ["increasing", "shuffled"])
def test_copies_of_the_query_stop_the_probe_at_the_kth_and_stay_exact(nbits, m, ids, rng):
    # Many exact copies of each query (the first table's exact bucket holds them all, in
    # position order), some of them removed, beside near copies at distance 1: the probe stops
    # pushing once k copies are in, where ids grow with position, and must still give the k
    # copies of smallest id (and with shuffled ids, where it cannot stop, the same answers).
    base = rng.integers(0, 256, (5, nbits // 8), dtype=np.uint8)
    copies = base[rng.integers(0, len(base), 1500)]
    near = copies[:300].copy()
    near[:, 0] ^= np.uint8(1)
    background = rng.integers(0, 256, (30000, nbits // 8), dtype=np.uint8)
    codes = np.concatenate([background[:10000], near, copies, background[10000:]])
    mih, flat = de.MIHIndex(nbits, m=m), de.FlatIndex(nbits)
    if ids == "increasing":
        mih.add(codes)
        flat.add(codes)
    else:
        perm = rng.permutation(len(codes)).astype(np.int64)
        mih.add_with_ids(codes, perm)
        flat.add_with_ids(codes, perm)
    gone = np.flatnonzero((codes == base[0]).all(axis=1))[:40].astype(np.int64)
    if ids == "shuffled":
        gone = perm[gone]
    mih.remove_ids(gone)
    flat.remove_ids(gone)
    mih.reset_stats()
    assert_same(mih, flat, np.concatenate([base, base ^ np.uint8(2)]), ks=(1, 3, 10, 100), radii=())
    assert mih.stats()["linear_scans"] < 40  # most queries were probed, not scanned
