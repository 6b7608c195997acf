"""Bulk jobs (deephash_engine.bulk) and their commands: index build, search and dedup, file in and
file out, against the in-process index and a brute-force oracle."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import deephash_engine as de
from oracles import clustered_codes, near_duplicate_pairs, read_parquet_rows
from deephash_engine import bulk
from deephash_engine.cli import main




@pytest.fixture
def files(tmp_path, rng):
    codes = clustered_codes(rng, 3000, 32, nclusters=30, flip=0.06)
    queries = np.concatenate([codes[:20], rng.integers(0, 256, (17, 4), dtype=np.uint8)])
    np.save(tmp_path / "codes.npy", codes)
    np.save(tmp_path / "queries.npy", queries)
    return tmp_path, codes, queries


@pytest.mark.parametrize("kind", ["flat", "mih"])
def test_cli_build_then_knn_search_equals_the_index(files, kind):
    folder, codes, queries = files
    assert main(["index", "build", "--codes", str(folder / "codes.npy"), "--out", str(folder / "i.dhi"),
                 "--index", kind, "--no-progress"]) == 0
    index = de.load_index(folder / "i.dhi")
    assert type(index).__name__ == ("FlatIndex" if kind == "flat" else "MIHIndex") and index.ntotal == 3000
    assert main(["search", "--index", str(folder / "i.dhi"), "--queries", str(folder / "queries.npy"),
                 "--k", "15", "--out", str(folder / "out"), "--batch", "7", "--no-progress"]) == 0
    oracle = de.FlatIndex(32)
    oracle.add(codes)
    want_d, want_i = oracle.search(queries, 15)
    np.testing.assert_array_equal(np.load(folder / "out" / "D.npy"), want_d)
    np.testing.assert_array_equal(np.load(folder / "out" / "I.npy"), want_i)
    job = json.loads((folder / "out" / "job.json").read_text())
    assert job["queries"] == len(queries) and job["k"] == 15 and job["radius"] is None
    assert sorted(p.name for p in (folder / "out").iterdir()) == ["D.npy", "I.npy", "job.json"]


def test_range_search_files_equal_range_search(files):
    folder, codes, queries = files
    index = de.FlatIndex(32)
    index.add(codes)
    bulk.bulk_search(index, folder / "queries.npy", folder / "r", radius=3, batch=5, format="npy")
    for name, want in zip(("lims", "D", "I"), index.range_search(queries, 3)):
        np.testing.assert_array_equal(np.load(folder / "r" / f"{name}.npy"), want)


def test_range_search_parquet_parts_equal_range_search(files, monkeypatch):
    folder, codes, queries = files
    index = de.FlatIndex(32)
    index.add(codes)
    monkeypatch.setattr(bulk.ParquetParts.__init__, "__defaults__", (50,))  # small parts: several files
    np.save(folder / "q-1.npy", queries[:11])
    np.save(folder / "q-0.npy", queries[11:])  # a glob reads the files in name order
    job = bulk.bulk_search(index, str(folder / "q-*.npy"), folder / "r", radius=4, batch=6)
    q, ids, dist = read_parquet_rows(folder / "r" / "hits.parquet", "query")
    lims, D, I = index.range_search(np.concatenate([queries[11:], queries[:11]]), 4)
    assert job["hits"] == len(I) > 100 and len(list((folder / "r" / "hits.parquet").iterdir())) > 2
    np.testing.assert_array_equal(q, np.repeat(np.arange(len(queries)), np.diff(lims)))
    np.testing.assert_array_equal(ids, I)
    np.testing.assert_array_equal(dist, D)
    assert sorted(p.name for p in (folder / "r").iterdir()) == ["hits.parquet", "job.json"]


def test_knn_over_a_list_of_query_files_in_small_batches(files):
    folder, codes, queries = files
    index = de.FlatIndex(32)
    index.add(codes)
    np.save(folder / "a.npy", queries[:5])
    np.save(folder / "b.npy", queries[5:])
    bulk.bulk_search(index, [folder / "a.npy", queries[:3], str(folder / "b.npy")], folder / "k", k=4, batch=4)
    want_d, want_i = index.search(np.concatenate([queries[:5], queries[:3], queries[5:]]), 4)
    np.testing.assert_array_equal(np.load(folder / "k" / "D.npy"), want_d)
    np.testing.assert_array_equal(np.load(folder / "k" / "I.npy"), want_i)


def fail_at_call(monkeypatch, method, n):
    """FlatIndex.<method> raises at its n-th call (a job that stops half-way)."""
    calls = {"n": 0}
    real = getattr(de.FlatIndex, method)

    def failing(self, q, arg, allow=None):
        calls["n"] += 1
        if calls["n"] == n:
            raise RuntimeError("stopped half-way")
        return real(self, q, arg)

    monkeypatch.setattr(de.FlatIndex, method, failing)


def test_a_failed_parquet_job_leaves_whole_parts_and_no_job_record(files, monkeypatch):
    folder, codes, queries = files
    index = de.FlatIndex(32)
    index.add(codes)
    bulk.bulk_search(index, queries, folder / "r", radius=4)  # a finished job, then one that fails there
    monkeypatch.setattr(bulk.ParquetParts.__init__, "__defaults__", (20,))
    fail_at_call(monkeypatch, "range_search", 4)
    with pytest.raises(RuntimeError):
        bulk.bulk_search(index, queries, folder / "r", radius=4, batch=5)
    assert not (folder / "r" / "job.json").exists()
    parts = sorted((folder / "r" / "hits.parquet").iterdir())
    assert parts and all(p.name.startswith("part-") for p in parts)  # no temporary file left
    q, _, _ = read_parquet_rows(folder / "r" / "hits.parquet", "query")
    assert q.max() < 15  # only the three batches searched before the failure, none of the first job


@pytest.mark.parametrize("fmt", ["parquet", "npy"])
def test_dedup_equals_brute_force(files, fmt):
    folder, codes, _ = files
    codes = codes[:1500]
    np.save(folder / "small.npy", codes)
    assert main(["dedup", "--codes", str(folder / "small.npy"), "--radius", "2", "--out", str(folder / "d"),
                 "--batch", "300", "--format", fmt, "--no-progress"]) == 0
    want_pairs, want_dist = near_duplicate_pairs(codes, 2)
    assert len(want_pairs) > 100  # the clusters give many near-duplicate pairs
    if fmt == "npy":
        got_pairs, got_dist = np.load(folder / "d" / "pairs.npy"), np.load(folder / "d" / "distances.npy")
    else:
        items, ids, got_dist = read_parquet_rows(folder / "d" / "pairs.parquet", "item")
        got_pairs = np.stack([items, ids], axis=1)
    np.testing.assert_array_equal(got_pairs, want_pairs)
    np.testing.assert_array_equal(got_dist, want_dist)


def test_a_failed_job_leaves_no_result_files(files, monkeypatch):
    folder, codes, _ = files
    index = de.FlatIndex(32)
    index.add(codes)
    fail_at_call(monkeypatch, "search", 3)
    with pytest.raises(RuntimeError):
        bulk.bulk_search(index, folder / "queries.npy", folder / "half", k=5, batch=5)
    assert list((folder / "half").iterdir()) == []


@pytest.mark.parametrize("argv, message", [
    (["search", "--index", "missing.dhi", "--queries", "queries.npy", "--k", "3", "--out", "o"], "missing.dhi"),
    (["search", "--index", "i.dhi", "--queries", "floats.npy", "--k", "3", "--out", "o"], "uint8"),
    (["search", "--index", "i.dhi", "--queries", "queries.npy", "--k", "0", "--out", "o"], "k must be > 0"),
    (["dedup", "--codes", "codes.npy", "--radius", "-1", "--out", "o"], "radius"),
    (["index", "build", "--codes", "nothere.npy", "--out", "x.dhi"], "nothere.npy"),
])
def test_errors_exit_2_with_a_message(files, capsys, argv, message):
    folder, codes, _ = files
    np.save(folder / "floats.npy", codes.astype(np.float32))
    index = de.FlatIndex(32)
    index.add(codes)
    index.save(folder / "i.dhi")
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        assert main(argv + ["--no-progress"]) == 2
    finally:
        os.chdir(cwd)
    assert message in capsys.readouterr().err


def test_the_command_runs_as_a_program(files):
    folder, codes, _ = files
    out = subprocess.run([sys.executable, "-m", "deephash_engine.cli", "index", "build", "--codes",
                          str(folder / "codes.npy"), "--out", str(folder / "p.dhi")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "FlatIndex of 3000 codes of 32 bits" in out.stdout


def test_cli_builds_and_searches_an_index_of_12_bit_codes(tmp_path, rng, capsys):
    codes = clustered_codes(rng, 500, 12, nclusters=8, flip=0.1)  # 2 bytes, bits 12..15 zero
    np.save(tmp_path / "c12.npy", codes)
    np.save(tmp_path / "q12.npy", codes[:9])
    build = ["index", "build", "--codes", str(tmp_path / "c12.npy"), "--bits", "12", "--no-progress"]
    assert main(build + ["--out", str(tmp_path / "i.dhi")]) == 0
    index = de.load_index(tmp_path / "i.dhi")
    assert (index.nbits, index.code_size, index.ntotal) == (12, 2, 500)
    assert main(["search", "--index", str(tmp_path / "i.dhi"), "--queries", str(tmp_path / "q12.npy"),
                 "--k", "7", "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    oracle = de.FlatIndex(12)
    oracle.add(codes)
    want_d, want_i = oracle.search(codes[:9], 7)
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "D.npy"), want_d)
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "I.npy"), want_i)
    capsys.readouterr()
    bad = codes.copy()
    bad[4, 1] |= 0x80
    np.save(tmp_path / "bad.npy", bad)
    assert main(["index", "build", "--codes", str(tmp_path / "bad.npy"), "--bits", "12", "--no-progress",
                 "--out", str(tmp_path / "bad.dhi")]) == 2
    assert "codes: row 4 sets padding bit 15" in capsys.readouterr().err
    assert main(build + ["--bits", "20", "--out", str(tmp_path / "x.dhi")]) == 2
    assert "codes of 20 bits have 3" in capsys.readouterr().err
