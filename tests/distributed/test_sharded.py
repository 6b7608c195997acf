"""ShardedIndex on a local Ray (2 CPUs, loopback, started and stopped by this module): exact
answers equal to one FlatIndex (hash and range sharding), routed and persisted writes, bulk jobs
streamed from files and Ray Datasets into .npy and Parquet, a shard actor killed mid-job, a
damaged shard file (at open and mid-job), cross-shard near duplicates, and the commands end to
end."""

import json
import os
import sys

import numpy as np
import pytest

# Ray's processes then bind and address 127.0.0.1 only (by default they take the machine's address
# and listen on every interface). Read when ray is first imported, and inherited by its workers.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
ray = pytest.importorskip("ray")

import deephash_engine as de  # noqa: E402
from deephash_engine import bulk  # noqa: E402
from deephash_engine.cli import main  # noqa: E402
from deephash_engine.distributed import ShardChecksumError, ShardedIndex, near_duplicates  # noqa: E402
from oracles import clustered_codes, duplicate_codes, near_duplicate_pairs, read_parquet_rows  # noqa: E402

# Some functions of this file run inside Ray tasks (sabotaged_stream's map): shipped by value,
# since the workers cannot import this file (tests/ is not on their path).
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    assert ray.nodes()[0]["NodeManagerAddress"] == "127.0.0.1"
    yield
    ray.shutdown()


def flat_of(codes, ids=None):
    index = de.FlatIndex(codes.shape[1] * 8)
    index.add_with_ids(codes, np.arange(len(codes)) if ids is None else ids)
    return index


@pytest.mark.parametrize("data", ["uniform", "clustered", "duplicates"])
@pytest.mark.parametrize("nshards, kind, sharding", [(1, "flat", "hash"), (3, "flat", "hash"), (2, "mih", "hash"),
                                                     (3, "flat", "range")])
def test_sharded_answers_equal_one_flat_index(tmp_path, rng, data, nshards, kind, sharding):
    n = 4000
    codes = {"uniform": lambda: rng.integers(0, 256, (n, 8), dtype=np.uint8),
             "clustered": lambda: clustered_codes(rng, n, 64, nclusters=10, flip=0.03),
             "duplicates": lambda: duplicate_codes(rng, n, 64)}[data]()
    queries = np.concatenate([codes[:10], rng.integers(0, 256, (6, 8), dtype=np.uint8)])
    ids = rng.permutation(3 * n)[:n] if sharding == "range" else np.arange(n)  # gaps in the id space
    manifest = ShardedIndex.build(codes, tmp_path / "manifest.json", nshards, index=kind, ids=ids, sharding=sharding)
    if sharding == "range":  # contiguous ranges of (nearly) equal counts, each shard holding its own
        assert [s.range_start for s in manifest.shards][0] == 0 and manifest.shards[-1].range_end is None
        assert [s.ntotal for s in manifest.shards] == [n // 3, n // 3, n - 2 * (n // 3)]
        for s in manifest.shards:
            assert s.range_start <= s.id_min <= s.id_max < (s.range_end or 2**62)
    oracle = flat_of(codes, ids)
    with ShardedIndex.open(tmp_path / "manifest.json") as sharded:
        assert sharded.ntotal == n and sharded.nshards == nshards and sharded.sharding == sharding
        for k in (1, 10, 50):
            for got, want in zip(sharded.search(queries, k), oracle.search(queries, k)):
                np.testing.assert_array_equal(got, want)
        for got, want in zip(sharded.range_search(queries, 6), oracle.range_search(queries, 6)):
            np.testing.assert_array_equal(got, want)


def test_a_sharded_index_of_12_bit_codes_equals_one_flat_index(tmp_path, rng):
    codes = clustered_codes(rng, 1500, 12, nclusters=6, flip=0.1)  # 2 bytes, padding bits zero
    manifest = ShardedIndex.build(codes, tmp_path / "m.json", 2, nbits=12)
    assert manifest.nbits == 12
    oracle = de.FlatIndex(12)
    oracle.add(codes)
    with ShardedIndex.open(tmp_path / "m.json") as sharded:
        assert (sharded.nbits, sharded.code_size) == (12, 2)
        for got, want in zip(sharded.search(codes[:8], 10), oracle.search(codes[:8], 10)):
            np.testing.assert_array_equal(got, want)
        for got, want in zip(sharded.range_search(codes[:8], 2), oracle.range_search(codes[:8], 2)):
            np.testing.assert_array_equal(got, want)
        bad = codes[:3].copy()
        bad[1, 1] |= 0x10
        with pytest.raises(ValueError, match="queries: row 1 sets padding bit 12"):
            sharded.search(bad, 1)
        with pytest.raises(ValueError, match="codes: row 1 sets padding bit 12"):
            sharded.add(bad)
        assert sharded.ntotal == 1500


def shard_ids(folder, manifest):
    """The ids each shard file holds, read from the files themselves."""
    return [de.load_index(folder / s["file"]).ids() for s in manifest["shards"]]


@pytest.mark.parametrize("sharding", ["hash", "range"])
def test_writes_are_routed_and_persist_across_a_reload(tmp_path, rng, sharding):
    codes = rng.integers(0, 256, (3000, 4), dtype=np.uint8)
    ShardedIndex.build(codes[:1000], tmp_path / "m.json", 3, sharding=sharding)
    with ShardedIndex.open(tmp_path / "m.json") as sharded:
        new_ids = sharded.add(codes[1000:2000])
        np.testing.assert_array_equal(new_ids, np.arange(1000, 2000))
        sharded.add_with_ids(codes[2000:2500], np.arange(5000, 5500))
        with pytest.raises(ValueError, match="already in the index"):
            sharded.add_with_ids(codes[2500:2502], [7000, 5003])  # 5003 is held: nothing is added
        assert sharded.remove_ids(np.arange(0, 3000, 2)) == 1000
        sharded.save()
        ids = np.concatenate([np.arange(1, 1000, 2), np.arange(1001, 2000, 2), np.arange(5000, 5500)])
        live_codes = np.concatenate([codes[1:1000:2], codes[1001:2000:2], codes[2000:2500]])
    manifest = json.loads((tmp_path / "m.json").read_text())
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["m.json"] + [s["file"] for s in manifest["shards"]])
    held = shard_ids(tmp_path, manifest)
    np.testing.assert_array_equal(np.sort(np.concatenate(held)), ids)
    assert manifest["sharding"] == sharding
    if sharding == "hash":
        assert all((h % 3 == s).all() for s, h in enumerate(held))
    else:  # the ranges cut at build time (ids 0..999 in thirds) are kept; new ids went to the last range
        assert [(s["range_start"], s["range_end"]) for s in manifest["shards"]] == [(0, 333), (333, 666), (666, None)]
        assert all(((h >= 333 * s) & (h < (333 * (s + 1) if s < 2 else 10**9))).all() for s, h in enumerate(held))
    assert [(s["id_min"], s["id_max"]) for s in manifest["shards"]] == [(int(h.min()), int(h.max())) for h in held]
    oracle = flat_of(live_codes, ids)
    with ShardedIndex.open(tmp_path / "m.json") as again:
        assert again.ntotal == len(ids) and again.next_id == 5500 and again.sharding == sharding
        again.add_with_ids(codes[2500:2510], np.arange(400, 420, 2))  # into the middle range, or by hash
        assert again.remove_ids([401, 402, 5499, 2]) == 3  # 2 was removed before
        oracle.add_with_ids(codes[2500:2510], np.arange(400, 420, 2))
        oracle.remove_ids([401, 402, 5499, 2])
        for got, want in zip(again.search(codes[:20], 15), oracle.search(codes[:20], 15)):
            np.testing.assert_array_equal(got, want)


def test_manifest_sharding_is_checked_and_old_manifests_read_as_hash(tmp_path, rng):
    from deephash_engine.distributed import Manifest

    codes = rng.integers(0, 256, (300, 4), dtype=np.uint8)
    ShardedIndex.build(codes, tmp_path / "m.json", 3, sharding="range")
    data = json.loads((tmp_path / "m.json").read_text())
    data["shards"][1]["range_start"] += 1  # a gap between shards 0 and 1
    (tmp_path / "gap.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="shard 1 has ids"):
        Manifest.load(tmp_path / "gap.json")
    del data["sharding"]  # as written before range sharding existed
    for shard in data["shards"]:
        del shard["range_start"], shard["range_end"]
    (tmp_path / "old.json").write_text(json.dumps(data))
    old = Manifest.load(tmp_path / "old.json")
    assert old.sharding == "hash"
    np.testing.assert_array_equal(old.shard_of(np.arange(6)), [0, 1, 2, 0, 1, 2])


def test_a_shard_actor_killed_mid_job_is_restarted_and_the_job_finishes(tmp_path, rng):
    codes = clustered_codes(rng, 6000, 32, nclusters=20, flip=0.05)
    queries = codes[::15]
    ShardedIndex.build(codes, tmp_path / "m.json", 2)
    with ShardedIndex.open(tmp_path / "m.json") as sharded:
        pid_before = ray.get(sharded.actors()[1].ping.remote())
        real_submit, calls = sharded.submit, {"n": 0}

        def submit_and_kill(q, **what):
            calls["n"] += 1
            if calls["n"] == 3:  # in the middle of the job, batches in flight: shard 1's process dies
                ray.kill(sharded.actors()[1], no_restart=False)
            return real_submit(q, **what)

        sharded.submit = submit_and_kill
        bulk.bulk_search(sharded, queries, tmp_path / "out", k=7, batch=40)
        assert calls["n"] == int(np.ceil(len(queries) / 40)) > 5
        assert ray.get(sharded.actors()[1].ping.remote()) != pid_before  # a new process took over
    want_d, want_i = flat_of(codes).search(queries, 7)
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "D.npy"), want_d)
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "I.npy"), want_i)


def damage_file(path, at=200):
    """Flips one bit of the file, written as a new file (a running actor keeps its mapping of the old)."""
    data = bytearray(path.read_bytes())
    data[at] ^= 4
    path.with_name("bad").write_bytes(bytes(data))
    os.replace(path.with_name("bad"), path)


def sabotaged_stream(queries, marker, victim, damage=None):
    """A Ray Dataset of the queries whose own map task, at the batch holding `marker`, damages the
    file `damage` (if given) and kills the `victim` shard actor: mid-job, without timing."""
    def at_marker(batch):
        if (batch["data"] == marker).all(axis=1).any():
            if damage is not None:
                damage_file(damage)
            ray.kill(victim, no_restart=False)
        return batch

    assert (queries == marker).all(axis=1).sum() == 1
    return ray.data.from_numpy(queries).map_batches(at_marker, batch_size=40, batch_format="numpy")


@pytest.mark.parametrize("executor", ["driver", "ray-data"])
def test_a_shard_killed_while_a_dataset_streams_through_either_executor(tmp_path, rng, executor):
    codes = clustered_codes(rng, 6000, 64, nclusters=20, flip=0.05)
    queries = np.concatenate([codes[::20], rng.integers(0, 256, (100, 8), dtype=np.uint8)])
    ShardedIndex.build(codes, tmp_path / "m.json", 2, sharding="range")
    with ShardedIndex.open(tmp_path / "m.json") as sharded:
        victim = sharded.actors()[0]
        pid_before = ray.get(victim.ping.remote())
        stream = sabotaged_stream(queries, queries[250], victim)
        job = bulk.bulk_search(sharded, stream, tmp_path / "out", k=6, batch=40, executor=executor)
        assert ray.get(victim.ping.remote()) != pid_before  # it was killed, and a new process took over
    assert job["queries"] == len(queries)
    want_d, want_i = flat_of(codes).search(queries, 6)
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "D.npy"), want_d)
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "I.npy"), want_i)


def test_a_damaged_shard_file_stops_with_its_name(tmp_path, rng):
    codes = rng.integers(0, 256, (500, 4), dtype=np.uint8)
    manifest = ShardedIndex.build(codes, tmp_path / "m.json", 3)
    damaged = tmp_path / manifest.shards[1].file
    data = bytearray(damaged.read_bytes())
    data[100] ^= 1
    damaged.write_bytes(bytes(data))
    with pytest.raises(ShardChecksumError, match=r"shard 1 \(shard-00001"):
        ShardedIndex.open(tmp_path / "m.json")


def test_a_shard_file_damaged_mid_job_stops_the_job_naming_the_shard(tmp_path, rng):
    codes = rng.integers(0, 256, (3000, 4), dtype=np.uint8)
    manifest = ShardedIndex.build(codes, tmp_path / "m.json", 2)
    sharded = ShardedIndex.open(tmp_path / "m.json")
    real_submit, calls = sharded.submit, {"n": 0}

    def submit_and_damage(q, **what):
        calls["n"] += 1
        if calls["n"] == 2:  # the file goes bad, then the actor dies: its restart finds the damage
            damage_file(tmp_path / manifest.shards[1].file)
            ray.kill(sharded.actors()[1], no_restart=False)
        return real_submit(q, **what)

    sharded.submit = submit_and_damage
    with pytest.raises(ShardChecksumError, match=r"shard 1 \(shard-00001.*checksum"):
        bulk.bulk_search(sharded, codes[:500], tmp_path / "out", k=5, batch=50)
    assert not (tmp_path / "out" / "job.json").exists() and not (tmp_path / "out" / "D.npy").exists()
    sharded.close()


def test_a_shard_file_damaged_while_a_dataset_streams_through_ray_data_stops_the_job(tmp_path, rng):
    codes = rng.integers(0, 256, (3000, 4), dtype=np.uint8)
    queries = rng.integers(0, 256, (400, 4), dtype=np.uint8)
    manifest = ShardedIndex.build(codes, tmp_path / "m.json", 2)
    sharded = ShardedIndex.open(tmp_path / "m.json")
    stream = sabotaged_stream(queries, queries[130], sharded.actors()[1], damage=tmp_path / manifest.shards[1].file)
    with pytest.raises(ShardChecksumError, match=r"shard 1 \(shard-00001.*checksum"):
        bulk.bulk_search(sharded, stream, tmp_path / "out", k=5, batch=40, executor="ray-data")
    assert not (tmp_path / "out" / "job.json").exists()
    sharded.close()


@pytest.mark.parametrize("sharding, fmt", [("hash", "parquet"), ("range", "npy")])
def test_near_duplicates_across_shards_equal_brute_force(tmp_path, rng, sharding, fmt):
    codes = clustered_codes(rng, 20_000, 32, nclusters=400, flip=0.04)
    ShardedIndex.build(codes, tmp_path / "m.json", 3, index="mih", sharding=sharding)
    with ShardedIndex.open(tmp_path / "m.json") as sharded:
        job = near_duplicates(sharded, 2, tmp_path / "d", batch=4000, format=fmt)
    want_pairs, want_dist = near_duplicate_pairs(codes, 2)
    assert job["pairs"] == len(want_pairs) > 1000
    if fmt == "npy":
        got_pairs, got_dist = np.load(tmp_path / "d" / "pairs.npy"), np.load(tmp_path / "d" / "distances.npy")
    else:  # Parquet rows come in the order found (shard by shard): sorted here
        items, ids, got_dist = read_parquet_rows(tmp_path / "d" / "pairs.parquet", "item")
        order = np.lexsort((ids, items))
        got_pairs, got_dist = np.stack([items, ids], axis=1)[order], got_dist[order]
    np.testing.assert_array_equal(got_pairs, want_pairs)
    np.testing.assert_array_equal(got_dist, want_dist)


@pytest.mark.parametrize("executor", ["driver", "ray-data"])
def test_bulk_search_streams_files_and_datasets_in_query_order(tmp_path, rng, executor):
    codes = clustered_codes(rng, 5000, 64, nclusters=30, flip=0.05)
    queries = np.concatenate([codes[::50], rng.integers(0, 256, (40, 8), dtype=np.uint8)])
    for part, rows in enumerate(np.array_split(np.arange(len(queries)), 3)):
        np.save(tmp_path / f"q-{part}.npy", queries[rows])
    ShardedIndex.build(codes, tmp_path / "s" / "m.json", 2, sharding="range")
    oracle = flat_of(codes)
    want_d, want_i = oracle.search(queries, 9)
    lims, want_rd, want_ri = oracle.range_search(queries, 10)
    with ShardedIndex.open(tmp_path / "s" / "m.json") as sharded:
        bulk.bulk_search(sharded, str(tmp_path / "q-*.npy"), tmp_path / "k", k=9, batch=23, executor=executor)
        np.testing.assert_array_equal(np.load(tmp_path / "k" / "D.npy"), want_d)
        np.testing.assert_array_equal(np.load(tmp_path / "k" / "I.npy"), want_i)
        job = bulk.bulk_search(sharded, ray.data.from_numpy(queries), tmp_path / "r", radius=10, batch=17,
                               executor=executor)
    assert job["queries"] == len(queries) and job["hits"] == len(want_ri) > len(queries)
    q, ids, dist = read_parquet_rows(tmp_path / "r" / "hits.parquet", "query")
    np.testing.assert_array_equal(q, np.repeat(np.arange(len(queries)), np.diff(lims)))
    np.testing.assert_array_equal(ids, want_ri)
    np.testing.assert_array_equal(dist, want_rd)


def test_commands_end_to_end(tmp_path, rng):
    codes = rng.integers(0, 256, (2000, 8), dtype=np.uint8)
    np.save(tmp_path / "codes.npy", codes)
    np.save(tmp_path / "q.npy", codes[:30])
    assert main(["index", "build", "--codes", str(tmp_path / "codes.npy"), "--shards", "2", "--sharding", "range",
                 "--out", str(tmp_path / "s" / "manifest.json")]) == 0
    assert json.loads((tmp_path / "s" / "manifest.json").read_text())["sharding"] == "range"
    assert main(["search", "--index", str(tmp_path / "s" / "manifest.json"), "--ray", "--queries",
                 str(tmp_path / "q.npy"), "--radius", "20", "--out", str(tmp_path / "r"), "--format", "npy",
                 "--no-progress"]) == 0
    for name, want in zip(("lims", "D", "I"), flat_of(codes).range_search(codes[:30], 20)):
        np.testing.assert_array_equal(np.load(tmp_path / "r" / f"{name}.npy"), want)
    assert main(["search", "--index", str(tmp_path / "s" / "manifest.json"), "--ray", "--queries",
                 str(tmp_path / "q.npy"), "--k", "5", "--out", str(tmp_path / "k"), "--executor", "ray-data"]) == 0
    for name, want in zip(("D", "I"), flat_of(codes).search(codes[:30], 5)):
        np.testing.assert_array_equal(np.load(tmp_path / "k" / f"{name}.npy"), want)
    assert main(["dedup", "--index", str(tmp_path / "s" / "manifest.json"), "--ray", "--radius", "22",
                 "--out", str(tmp_path / "d"), "--no-progress"]) == 0
    items, ids, dist = read_parquet_rows(tmp_path / "d" / "pairs.parquet", "item")
    want_pairs, want_dist = near_duplicate_pairs(codes, 22)
    order = np.lexsort((ids, items))
    assert len(want_pairs) > 10
    np.testing.assert_array_equal(np.stack([items, ids], axis=1)[order], want_pairs)
    np.testing.assert_array_equal(dist[order], want_dist)
