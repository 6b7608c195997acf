"""ShardedIndex on a local Ray (2 CPUs, loopback, started and stopped by this module): exact
answers equal to one FlatIndex, routed and persisted writes, a shard actor killed mid-job, a
damaged shard file, cross-shard near duplicates, and the commands end to end."""

import json
import os

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
from oracles import clustered_codes, duplicate_codes  # noqa: E402


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
@pytest.mark.parametrize("nshards, kind", [(1, "flat"), (3, "flat"), (2, "mih")])
def test_sharded_answers_equal_one_flat_index(tmp_path, rng, data, nshards, kind):
    n = 4000
    codes = {"uniform": lambda: rng.integers(0, 256, (n, 8), dtype=np.uint8),
             "clustered": lambda: clustered_codes(rng, n, 64, nclusters=10, flip=0.03),
             "duplicates": lambda: duplicate_codes(rng, n, 64)}[data]()
    queries = np.concatenate([codes[:10], rng.integers(0, 256, (6, 8), dtype=np.uint8)])
    ShardedIndex.build(codes, tmp_path / "manifest.json", nshards, index=kind)
    oracle = flat_of(codes)
    with ShardedIndex.open(tmp_path / "manifest.json") as sharded:
        assert sharded.ntotal == n and sharded.nshards == nshards
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


def test_writes_are_routed_and_persist_across_a_reload(tmp_path, rng):
    codes = rng.integers(0, 256, (3000, 4), dtype=np.uint8)
    ShardedIndex.build(codes[:1000], tmp_path / "m.json", 3)
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
    oracle = flat_of(live_codes, ids)
    with ShardedIndex.open(tmp_path / "m.json") as again:
        assert again.ntotal == len(ids) and again.next_id == 5500
        for got, want in zip(again.search(codes[:20], 15), oracle.search(codes[:20], 15)):
            np.testing.assert_array_equal(got, want)


def test_a_shard_actor_killed_mid_job_is_restarted_and_the_job_finishes(tmp_path, rng):
    codes = clustered_codes(rng, 6000, 32, nclusters=20, flip=0.05)
    queries = codes[::15]
    ShardedIndex.build(codes, tmp_path / "m.json", 2)
    with ShardedIndex.open(tmp_path / "m.json") as sharded:
        pid_before = ray.get(sharded.actors()[1].ping.remote())
        real_search, calls = sharded.search, {"n": 0}

        def search_and_kill(q, k):
            calls["n"] += 1
            if calls["n"] == 3:  # in the middle of the job: shard 1's process dies
                ray.kill(sharded.actors()[1], no_restart=False)
            return real_search(q, k)

        sharded.search = search_and_kill
        bulk.bulk_search(sharded, queries, tmp_path / "out", k=7, batch=40)
        assert calls["n"] == int(np.ceil(len(queries) / 40))
        assert ray.get(sharded.actors()[1].ping.remote()) != pid_before  # a new process took over
    want_d, want_i = flat_of(codes).search(queries, 7)
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


def test_near_duplicates_across_shards_equal_brute_force(tmp_path, rng):
    codes = clustered_codes(rng, 2500, 32, nclusters=40, flip=0.04)
    ShardedIndex.build(codes, tmp_path / "m.json", 3)
    with ShardedIndex.open(tmp_path / "m.json") as sharded:
        job = near_duplicates(sharded, 2, tmp_path / "d", batch=400)
    bits = np.unpackbits(codes, axis=1).astype(np.int16)
    dist = (bits[:, None, :] != bits[None, :, :]).sum(axis=2)
    i, j = np.nonzero(np.triu(dist <= 2, k=1))
    assert job["pairs"] == len(i) > 100
    np.testing.assert_array_equal(np.load(tmp_path / "d" / "pairs.npy"), np.stack([i, j], axis=1))
    np.testing.assert_array_equal(np.load(tmp_path / "d" / "distances.npy"), dist[i, j])


def test_commands_end_to_end(tmp_path, rng):
    codes = rng.integers(0, 256, (2000, 8), dtype=np.uint8)
    np.save(tmp_path / "codes.npy", codes)
    np.save(tmp_path / "q.npy", codes[:30])
    assert main(["index", "build", "--codes", str(tmp_path / "codes.npy"), "--shards", "2",
                 "--out", str(tmp_path / "s" / "manifest.json")]) == 0
    assert main(["search", "--index", str(tmp_path / "s" / "manifest.json"), "--ray", "--queries",
                 str(tmp_path / "q.npy"), "--radius", "20", "--out", str(tmp_path / "r"), "--no-progress"]) == 0
    for name, want in zip(("lims", "D", "I"), flat_of(codes).range_search(codes[:30], 20)):
        np.testing.assert_array_equal(np.load(tmp_path / "r" / f"{name}.npy"), want)
    assert main(["dedup", "--index", str(tmp_path / "s" / "manifest.json"), "--ray", "--radius", "8",
                 "--out", str(tmp_path / "d"), "--no-progress"]) == 0
    assert (tmp_path / "d" / "pairs.npy").exists()
