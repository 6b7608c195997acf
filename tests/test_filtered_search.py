"""Filtered search (allow=...): exactly the answers of an index holding only the allowed items,
ties and padding included, on both index types and both strategies (gather, mask / probe)."""

import numpy as np
import pytest

import deephash_engine as de
from oracles import clustered_codes


def oracle_index(codes, ids, allowed):
    """A FlatIndex holding only the allowed items, with their ids, in storage order."""
    keep = np.isin(ids, np.asarray(list(allowed), dtype=np.int64))
    index = de.FlatIndex(codes.shape[1] * 8)
    index.add_with_ids(codes[keep], ids[keep])
    return index


def assert_same(index, oracle, queries, allow, k, radius):
    D, I = index.search(queries, k, allow=allow)
    Do, Io = oracle.search(queries, k)
    np.testing.assert_array_equal(D, Do)
    np.testing.assert_array_equal(I, Io)
    for got, want in zip(index.range_search(queries, radius, allow=allow), oracle.range_search(queries, radius)):
        np.testing.assert_array_equal(got, want)




@pytest.mark.parametrize("kind", ["flat", "mih"])
@pytest.mark.parametrize("fraction", [0.0, 0.001, 0.01, 0.2, 0.3, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("data", ["uniform", "clustered"])
def test_filtered_equals_the_index_of_the_allowed_items(rng, kind, fraction, data):
    n, cs = 6000, 8
    codes = rng.integers(0, 256, (n, cs), dtype=np.uint8) if data == "uniform" else clustered_codes(rng, n, 8 * cs)
    index = de.FlatIndex(64) if kind == "flat" else de.MIHIndex(64)
    index.add(codes)
    ids = np.arange(n, dtype=np.int64)
    allowed = rng.choice(n, int(fraction * n), replace=False)
    queries = np.concatenate([codes[:5], rng.integers(0, 256, (5, cs), dtype=np.uint8)])
    oracle = oracle_index(codes, ids, allowed)
    for allow in (allowed, de.IdSelector(allowed)):
        assert_same(index, oracle, queries, allow, k=15, radius=14)


@pytest.mark.parametrize("kind", ["flat", "mih"])
def test_caller_ids_out_of_order_with_removals(rng, kind):
    n, cs = 5000, 4
    codes = clustered_codes(rng, n, 8 * cs, nclusters=5, flip=0.06)  # heavy ties
    ids = rng.permutation(10 * n)[:n].astype(np.int64)
    index = de.FlatIndex(32) if kind == "flat" else de.MIHIndex(32)
    index.add_with_ids(codes, ids)
    removed = ids[rng.choice(n, 300, replace=False)]
    index.remove_ids(removed)  # MIH keeps them as tombstones (below the compaction threshold)
    live = ~np.isin(ids, removed)
    queries = codes[:8]
    for fraction in (0.02, 0.6):
        allowed = ids[rng.choice(n, int(fraction * n), replace=False)]
        oracle = oracle_index(codes[live], ids[live], allowed)
        assert_same(index, oracle, queries, allowed, k=25, radius=6)


def test_unknown_and_repeated_ids_are_ignored(rng):
    codes = rng.integers(0, 256, (100, 2), dtype=np.uint8)
    index = de.FlatIndex(16)
    index.add(codes)
    D, I = index.search(codes[:1], 5, allow=[3, 3, 10**12, 7])
    assert sorted(I[0][I[0] >= 0].tolist()) == [3, 7]
    assert (I[0][2:] == -1).all() and (D[0][2:] == 2**31 - 1).all()
    lims, _, ids = index.range_search(codes[:1], 16, allow=[])
    assert lims.tolist() == [0, 0] and ids.size == 0


@pytest.mark.parametrize("kind", ["flat", "mih"])
def test_the_strategy_is_reported(rng, kind):
    n = 20000
    codes = clustered_codes(rng, n, 64)
    index = de.FlatIndex(64) if kind == "flat" else de.MIHIndex(64)
    index.add(codes)
    _, _, stats = index.search_with_stats(codes[:4], 10)
    assert stats["filter"] == "none"
    _, _, stats = index.search_with_stats(codes[:4], 10, allow=np.arange(0, n, 100))
    assert stats["filter"] == "gather"
    _, _, stats = index.search_with_stats(codes[:4], 10, allow=np.arange(0, n, 2))
    assert stats["filter"] == ("mask" if kind == "flat" else "probe")


def test_selector_is_reusable_across_indexes_and_validated(rng):
    sel = de.IdSelector(np.array([5, 1, 5, 9]))
    assert len(sel) == 3 and 5 in sel and 2 not in sel
    for nbits in (8, 64):
        index = de.FlatIndex(nbits)
        index.add(rng.integers(0, 256, (20, nbits // 8), dtype=np.uint8))
        assert sorted(index.search(np.zeros((1, nbits // 8), np.uint8), 10, allow=sel)[1][0][:3]) == [1, 5, 9]
    with pytest.raises(ValueError, match=">= 0"):
        de.IdSelector([-1])
    with pytest.raises(TypeError):
        de.IdSelector([1.5])
    with pytest.raises(TypeError):
        de.FlatIndex(8).search(np.zeros((1, 1), np.uint8), 1, allow="abc")


@pytest.mark.parametrize("kind", ["flat", "mih"])
@pytest.mark.parametrize("fraction", [0.05, 0.7])
def test_a_reused_selector_follows_changes_of_the_index(rng, kind, fraction):
    """The selector caches its resolution per index; every write must invalidate it."""
    n, cs = 4000, 8
    codes = clustered_codes(rng, 2 * n, 8 * cs)
    index = de.FlatIndex(64) if kind == "flat" else de.MIHIndex(64)
    other = de.FlatIndex(64)
    index.add(codes[:n])
    other.add(codes[n:])
    sel = de.IdSelector(rng.choice(2 * n, int(fraction * 2 * n), replace=False))
    allowed = {i for i in range(2 * n) if i in sel}
    queries = codes[:6]
    ids = np.arange(2 * n, dtype=np.int64)

    def check(present):
        assert_same(index, oracle_index(codes[present], ids[present], allowed), queries, sel, k=12, radius=10)

    present = np.zeros(2 * n, dtype=bool)
    present[:n] = True
    check(present)
    other.search(queries, 3, allow=sel)  # the cache now holds another index's resolution
    check(present)
    index.add(codes[n:n + 500])  # ids n .. n + 499
    present[n:n + 500] = True
    check(present)
    gone = np.arange(0, n, 3)
    index.remove_ids(gone)
    present[gone] = False
    check(present)
    index.reset()
    present[:] = False
    check(present)


@pytest.mark.parametrize("kind", ["flat", "mih"])
def test_a_reused_masked_selector_becomes_compact_and_stays_exact(rng, kind):
    n = 8000
    codes = clustered_codes(rng, n, 64)
    index = de.FlatIndex(64) if kind == "flat" else de.MIHIndex(64)
    index.add(codes)
    sel = de.IdSelector(rng.choice(n, n // 2, replace=False))
    oracle = oracle_index(codes, np.arange(n), {i for i in range(n) if i in sel})
    strategies = []
    for _ in range(3):
        D, I, stats = index.search_with_stats(codes[:10], 12, allow=sel)
        strategies.append(stats["filter"])
        Do, Io = oracle.search(codes[:10], 12)
        np.testing.assert_array_equal(D, Do)
        np.testing.assert_array_equal(I, Io)
    assert strategies == (["mask", "gather", "gather"] if kind == "flat" else ["probe", "gather", "gather"])
