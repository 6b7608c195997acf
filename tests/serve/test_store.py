"""The service's store on its own: writes, restore from snapshot plus later rows, filters."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

import deephash_engine as de
from deephash_engine.serve.store import (Conflict, NotFound, Store, StoreError, TooManyHits, compile_filter,
                                         filter_query)


def _codes(rng, n, nbits=64):
    return rng.integers(0, 256, size=(n, nbits // 8), dtype=np.uint8)


def _oracle(items: dict[int, np.ndarray], nbits: int) -> de.FlatIndex:
    index = de.FlatIndex(nbits)
    if items:
        ids = sorted(items)
        index.add_with_ids(np.stack([items[i] for i in ids]), np.asarray(ids, np.int64))
    return index


@pytest.mark.parametrize("kind", ["flat", "mih"])
def test_restore_equals_the_acknowledged_writes(tmp_path, rng, kind):
    store = Store(tmp_path)
    col = store.create("c1", 64, kind)
    items: dict[int, np.ndarray] = {}
    codes = _codes(rng, 50)
    ids = col.add(codes, None, [{"i": i} for i in range(50)])
    assert ids == list(range(50))
    items.update(zip(ids, codes))
    col.snapshot()
    # after the snapshot: deletes of snapshotted ids, new ids, an id deleted then added again
    assert col.remove([3, 4, 999]) == 2
    del items[3], items[4]
    more = _codes(rng, 10)
    items.update(zip(col.add(more, None, None), more))
    again = _codes(rng, 1)
    col.add(again, [3], [{"again": True}])
    items[3] = again[0]
    store.close()

    reopened = Store(tmp_path).get("c1")
    assert reopened.snapshot_seq == 1
    assert reopened.index.ntotal == len(items) == 59
    queries = _codes(rng, 7)
    want = _oracle(items, 64).search(queries, 9)
    got = reopened.index.search(queries, 9)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    assert reopened.get(3)["payload"] == {"again": True}
    assert reopened.next_id == 60


def test_snapshot_drops_older_ones_and_a_corrupt_one_is_skipped(tmp_path, rng):
    store = Store(tmp_path)
    col = store.create("c", 32, "flat")
    col.add(_codes(rng, 5, 32), None, None)
    col.snapshot()
    col.add(_codes(rng, 5, 32), None, None)
    col.snapshot()
    snaps = sorted(p.name for p in (tmp_path / "c").glob("snapshot-*.dhi"))
    assert snaps == ["snapshot-2.dhi"]
    (tmp_path / "c" / "snapshot-2.dhi").write_bytes(b"garbage")
    leftover = tmp_path / "c" / "snapshot-3.dhi.tmp-123-0"  # a save killed half way
    leftover.write_bytes(b"half")
    store.close()
    again = Store(tmp_path).get("c")
    assert again.snapshot_seq == 0 and again.index.ntotal == 10
    assert not leftover.exists()


def test_duplicate_ids_conflict_and_change_nothing(tmp_path, rng):
    col = Store(tmp_path).create("c", 16, "flat")
    col.add(_codes(rng, 2, 16), [10, 11], None)
    with pytest.raises(Conflict):
        col.add(_codes(rng, 2, 16), [12, 11], None)
    assert col.index.ntotal == 2 and col.seq == 1
    with pytest.raises(NotFound):
        col.get(12)


@pytest.mark.parametrize("name", ["..", ".", "a/b", "", "x" * 65, "../etc", "a b", "-lead"])
def test_names_that_could_leave_the_folder_are_refused(tmp_path, name):
    store = Store(tmp_path / "data")
    with pytest.raises(StoreError) as err:
        store.create(name, 8, "flat")
    assert err.value.field == ["name"]
    assert list((tmp_path / "data").iterdir()) == []


def test_filters_select_the_matching_payloads(tmp_path, rng):
    col = Store(tmp_path).create("c", 16, "flat")
    payloads = [{"colour": i % 3, "price": i, "tag": "even" if i % 2 == 0 else "odd"} for i in range(20)]
    col.add(_codes(rng, 20, 16), None, payloads)

    def ids(spec):
        return sorted(col.allowed_ids(spec).tolist())

    assert ids({"colour": 2}) == [i for i in range(20) if i % 3 == 2]
    assert ids({"colour": {"in": [0, 1]}, "tag": "odd"}) == [i for i in range(20) if i % 3 != 2 and i % 2]
    assert ids({"price": {"gte": 5, "lt": 9}}) == [5, 6, 7, 8]
    assert ids({"price": {"gt": 17}}) == [18, 19]
    assert ids({"price": {"lte": 1}}) == [0, 1]
    assert ids({"missing": 1}) == []
    assert col.allowed_ids(None) is None

    # the allow-list reaches the core: every hit satisfies the filter
    results = col.search(_codes(rng, 3, 16), 20, None, {"colour": 1}, with_payload=True).results()
    for r in results:
        assert len(r.ids) == len([i for i in range(20) if i % 3 == 1])
        assert all(p["colour"] == 1 for p in r.payloads)


@pytest.mark.parametrize("kind", ["flat", "mih"])
def test_range_search_in_chunks_equals_one_call(tmp_path, rng, kind):
    """Range searches run in chunks of queries sized by the hit cap: same answer as one call of
    the core, and refused as soon as the hits pass the cap."""
    col = Store(tmp_path).create("c", 16, kind)
    col.add(rng.integers(0, 256, size=(3000, 2), dtype=np.uint8), None, [{"odd": i % 2} for i in range(3000)])
    queries = rng.integers(0, 256, size=(200, 2), dtype=np.uint8)
    for radius, spec, cap in ((3, None, 10_000), (3, {"odd": 1}, 10_000), (5, None, 10**9), (0, None, 1)):
        allow = col.allowed_ids(spec)
        lims, D, I = col.index.range_search(queries, radius, allow=allow)
        if len(I) > cap:
            continue
        got = col.search(queries, None, radius, spec, False, max_hits=max(cap, len(I))).results()
        assert [r.ids for r in got] == [I[lims[q]:lims[q + 1]].tolist() for q in range(200)]
        assert [r.distances for r in got] == [D[lims[q]:lims[q + 1]].tolist() for q in range(200)]
    lims, _, I = col.index.range_search(queries, 4, allow=None)
    with pytest.raises(TooManyHits) as err:
        col.search(queries, None, 4, None, False, max_hits=len(I) - 1, cap_field=["max_hits"])
    assert err.value.field == ["max_hits"] and f"more than {len(I) - 1} hits" in err.value.message
    assert len(col.search(queries, None, 4, None, False, max_hits=len(I))) == 200


def _plan(col, spec) -> str:
    sql, params = filter_query(spec)
    with sqlite3.connect(col.folder / "items.sqlite") as db:
        return " | ".join(row[-1] for row in db.execute(f"EXPLAIN QUERY PLAN {sql}", params))


def test_payload_indexes_serve_the_filters_on_their_field(tmp_path, rng):
    store = Store(tmp_path)
    col = store.create("c", 16, "flat", payload_indexes=["colour", "price"])
    assert col.payload_indexes() == ["colour", "price"]
    payloads = [{"colour": i % 3, "price": i / 2, "tag": "a" if i % 2 else None} for i in range(300)] + [None]
    col.add(_codes(rng, 301, 16), None, payloads)

    for spec in ({"colour": 2}, {"colour": {"in": [0, 1]}}, {"price": {"gte": 5, "lt": 9.5}}, {"price": {"gt": 140}},
                 {"colour": 1, "tag": "a"}):
        plan = _plan(col, spec)
        field = next(iter(spec))
        assert f"USING COVERING INDEX payload__{field}" in plan or f"USING INDEX payload__{field}" in plan, (spec, plan)
    assert "SCAN items" in _plan(col, {"tag": "a"}) and "payload__" not in _plan(col, {"tag": "a"})

    # the same answers with and without the index, null and absent fields included
    specs = [{"colour": 2}, {"colour": {"in": [0, 1]}, "tag": "a"}, {"price": {"gte": 5, "lt": 9.5}},
             {"price": {"gt": 140}}, {"tag": None}, {"colour": None}, {"price": 3}]
    with_index = [sorted(col.allowed_ids(spec).tolist()) for spec in specs]
    assert with_index[0] == [i for i in range(300) if i % 3 == 2]
    assert with_index[4] == [i for i in range(300) if i % 2 == 0] and with_index[5] == [] and with_index[6] == [6]
    col.create_payload_index("tag")
    assert "payload__tag" in _plan(col, {"tag": None})
    for field in ("colour", "price", "tag"):
        col.drop_payload_index(field)
    assert col.payload_indexes() == [] and "payload__" not in _plan(col, {"colour": 2})
    assert [sorted(col.allowed_ids(spec).tolist()) for spec in specs] == with_index

    # the index survives a restart; refusals name the field
    assert col.create_payload_index("colour") and not col.create_payload_index("colour")
    store.close()
    assert Store(tmp_path).get("c").payload_indexes() == ["colour"]
    with pytest.raises(StoreError) as err:
        Store(tmp_path).get("c").create_payload_index("a'b")
    assert err.value.field == ["field"]
    with pytest.raises(NotFound):
        Store(tmp_path).get("c").drop_payload_index("price")
    with pytest.raises(StoreError) as err:
        Store(tmp_path).create("d", 16, "flat", payload_indexes=["ok", "not ok"])
    assert err.value.field == ["payload_indexes", 1]


@pytest.mark.parametrize("spec, field", [
    ({"a.b": 1}, ["filter", "a.b"]),
    ({"a\n": 1}, ["filter", "a\n"]),
    ({"a": {"in": []}}, ["filter", "a", "in"]),
    ({"a": {"gte": "x"}}, ["filter", "a", "gte"]),
    ({"a": {"like": 1}}, ["filter", "a", "like"]),
    ({"a": [1, 2]}, ["filter", "a"]),
    ({"a": {}}, ["filter", "a"]),
])
def test_bad_filters_name_the_field(spec, field):
    with pytest.raises(StoreError) as err:
        compile_filter(spec)
    assert err.value.field == field


def test_a_write_to_a_dropped_collection_finds_it_gone(tmp_path, rng):
    store = Store(tmp_path)
    col = store.create("c", 16, "flat")
    store.drop("c")
    assert not (tmp_path / "c").exists()
    for write in (lambda: col.add(_codes(rng, 1, 16), None, None), lambda: col.remove([0]), col.snapshot):
        with pytest.raises(NotFound):
            write()
    assert not (tmp_path / "c").exists()


def test_mih_tails_are_merged_early_and_on_snapshot(tmp_path, rng):
    col = Store(tmp_path).create("c", 64, "mih")
    col.add(_codes(rng, 40_000), None, None)
    col.add(_codes(rng, 4500), None, None)
    assert col.index.tail_size == 0  # the core alone keeps these 4500 in its tail (under 40000 / 8)
    col.add(_codes(rng, 10), None, None)
    assert col.index.tail_size > 0
    col.snapshot()
    assert col.index.tail_size == 0


def test_merge_tails_empties_every_mih_tail(tmp_path, rng):
    store = Store(tmp_path)
    mih = store.create("m", 64, "mih")
    mih.add(_codes(rng, 100), None, None)
    store.create("f", 64, "flat").add(_codes(rng, 5), None, None)
    assert mih.index.tail_size == 100
    store.merge_tails()
    assert mih.index.tail_size == 0 and mih.index.ntotal == 100


@pytest.mark.parametrize("kind", ["flat", "mih"])
def test_assigned_and_caller_ids_mix_and_survive_a_restart(tmp_path, rng, kind):
    store = Store(tmp_path)
    col = store.create("c", 32, kind)
    items = {}
    for ids in (None, [10, 11], None, [3], None):
        codes = _codes(rng, 3 if ids is None else len(ids), 32)
        items.update(zip(col.add(codes, ids, None), codes))
    assert sorted(items) == [0, 1, 2, 3, 10, 11, 12, 13, 14, 15, 16, 17]
    queries = _codes(rng, 4, 32)
    want = _oracle(items, 32).search(queries, 12)
    for index in (col.index, (store.close(), Store(tmp_path).get("c").index)[1]):
        got = index.search(queries, 12)
        np.testing.assert_array_equal(got[1], want[1])
        np.testing.assert_array_equal(got[0], want[0])
