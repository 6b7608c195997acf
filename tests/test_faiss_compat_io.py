"""FAISS's file format both ways against the installed faiss-cpu, and damaged files refused cleanly."""

import os
import struct

import numpy as np
import pytest

import deephash_engine as de
from deephash_engine import faiss_compat as fc

faiss = pytest.importorskip("faiss", reason="faiss-cpu is installed by `make test`")

KINDS = ["IndexBinaryFlat", "IndexBinaryIDMap", "IndexBinaryIDMap2"]


def build(module, kind, codes, ids=None):
    nbits = codes.shape[1] * 8
    if kind == "IndexBinaryFlat":
        index = module.IndexBinaryFlat(nbits)
        index.add(codes)
        return index
    index = getattr(module, kind)(module.IndexBinaryFlat(nbits))
    index.add_with_ids(codes, np.arange(100, 100 + len(codes)) if ids is None else ids)
    return index


def faiss_bytes(kind, codes, ids=None):
    return bytes(faiss.serialize_index_binary(build(faiss, kind, codes, ids)))


def assert_same_answers(ours, ref, queries):
    for k in (1, 5, 40):
        for a, b in zip(ours.search(queries, k), ref.search(queries, k)):
            np.testing.assert_array_equal(a, b)
    for a, b in zip(ours.range_search(queries, 9), ref.range_search(queries, 9)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n", [0, 1, 300])
def test_reads_what_faiss_writes(kind, n, rng, tmp_path):
    codes = rng.integers(0, 4, (n, 5), dtype=np.uint8)
    ids = rng.integers(-3, 50, n)  # repeats and negatives: FAISS allows them in id maps
    ref = build(faiss, kind, codes, ids)
    path = tmp_path / "faiss.index"
    faiss.write_index_binary(ref, str(path))
    ours = fc.read_index_binary(path)
    assert type(ours).__name__ == kind and ours.ntotal == n and ours.d == 40
    queries = rng.integers(0, 4, (6, 5), dtype=np.uint8)
    assert_same_answers(ours, ref, queries)
    again = fc.deserialize_index_binary(faiss.serialize_index_binary(ref))
    assert_same_answers(again, ref, queries)


@pytest.mark.parametrize("kind", KINDS)
def test_writes_what_faiss_reads_byte_for_byte(kind, rng, tmp_path):
    codes = rng.integers(0, 256, (257, 3), dtype=np.uint8)
    ids = rng.integers(-3, 500, 257)
    ours = build(fc, kind, codes, ids)
    path = tmp_path / "ours.index"
    fc.write_index_binary(ours, path)
    assert path.read_bytes() == faiss_bytes(kind, codes, ids)
    assert bytes(fc.serialize_index_binary(ours)) == path.read_bytes()
    ref = faiss.read_index_binary(str(path))
    assert type(ref).__name__ == kind
    assert_same_answers(ours, ref, codes[:7])
    assert os.listdir(tmp_path) == ["ours.index"]  # the temporary file was renamed away


def test_write_after_removals_keeps_faiss_numbering(rng, tmp_path):
    codes = rng.integers(0, 256, (500, 4), dtype=np.uint8)
    ours, ref = build(fc, "IndexBinaryFlat", codes), build(faiss, "IndexBinaryFlat", codes)
    ours.remove_ids(np.arange(0, 500, 4))
    ref.remove_ids(np.arange(0, 500, 4))
    assert bytes(fc.serialize_index_binary(ours)) == bytes(faiss.serialize_index_binary(ref))


def test_write_to_file_object_and_overwrite(rng, tmp_path):
    codes = rng.integers(0, 256, (20, 2), dtype=np.uint8)
    path = tmp_path / "x.index"
    path.write_bytes(b"old contents")
    fc.write_index_binary(build(fc, "IndexBinaryIDMap2", codes), path)
    with open(tmp_path / "y.index", "wb") as f:
        fc.write_index_binary(build(fc, "IndexBinaryIDMap2", codes), f)
    assert path.read_bytes() == (tmp_path / "y.index").read_bytes() == faiss_bytes("IndexBinaryIDMap2", codes)
    with pytest.raises(TypeError, match="faiss_compat index"):
        fc.write_index_binary(faiss.IndexBinaryFlat(16), tmp_path / "z.index")


def test_load_index_accepts_faiss_files(rng, tmp_path):
    codes = rng.integers(0, 256, (300, 8), dtype=np.uint8)
    flat_path, map_path = tmp_path / "flat.index", tmp_path / "map.index"
    faiss.write_index_binary(build(faiss, "IndexBinaryFlat", codes), str(flat_path))
    ids = rng.permutation(10_000)[:300]
    faiss.write_index_binary(build(faiss, "IndexBinaryIDMap2", codes, ids), str(map_path))
    reference = de.FlatIndex(64)
    reference.add(codes)
    flat = de.load_index(flat_path)
    assert isinstance(flat, de.FlatIndex) and flat.ntotal == 300
    for a, b in zip(flat.search(codes[:9], 10), reference.search(codes[:9], 10)):
        np.testing.assert_array_equal(a, b)
    mapped = de.load_index(map_path, mmap=True)
    np.testing.assert_array_equal(mapped.reconstruct(int(ids[17])), codes[17])
    D, I = mapped.search(codes[:9], 1)
    np.testing.assert_array_equal(I[:, 0], ids[:9])
    # The engine's own files still load, mapped or not.
    reference.save(tmp_path / "own.dhi")
    assert de.load_index(tmp_path / "own.dhi", mmap=True).is_mmapped


def test_load_index_explains_id_maps_a_flat_index_cannot_hold(rng, tmp_path):
    codes = rng.integers(0, 256, (4, 2), dtype=np.uint8)
    path = tmp_path / "dup.index"
    path.write_bytes(faiss_bytes("IndexBinaryIDMap", codes, np.array([1, 2, 2, 3])))
    with pytest.raises(de.IndexFileError, match="read_index_binary"):
        de.load_index(path)
    assert fc.read_index_binary(path).ntotal == 4


def test_other_faiss_index_types_are_named(rng, tmp_path):
    codes = rng.integers(0, 256, (400, 4), dtype=np.uint8)
    ivf = faiss.IndexBinaryIVF(faiss.IndexBinaryFlat(32), 32, 4)
    ivf.cp.min_points_per_centroid = 1
    ivf.train(codes)
    path = tmp_path / "ivf.index"
    faiss.write_index_binary(ivf, str(path))
    for read in (fc.read_index_binary, de.load_index):
        with pytest.raises(fc.FaissFileError, match="IndexBinaryIVF .IBwF. is not supported"):
            read(path)


SMALL = np.array([[1, 2], [3, 4], [5, 6]], dtype=np.uint8)


SMALL_FILES = {kind: faiss_bytes(kind, SMALL) for kind in KINDS}


@pytest.mark.parametrize("kind, cut", [(kind, cut) for kind in KINDS for cut in range(len(SMALL_FILES[kind]))])
def test_every_truncation_is_refused(kind, cut, tmp_path):
    piece = SMALL_FILES[kind][:cut]
    path = tmp_path / "cut.index"
    path.write_bytes(piece)
    with pytest.raises(fc.FaissFileError, match="truncated|empty file"):
        fc.read_index_binary(path)
    with pytest.raises(fc.FaissFileError, match="truncated"):
        fc.deserialize_index_binary(np.frombuffer(piece, dtype=np.uint8))
    with pytest.raises(de.IndexFileError):  # the FAISS reader from the tag on, the engine's before
        de.load_index(path)


def test_the_uncut_small_files_read():
    for kind, data in SMALL_FILES.items():
        index = fc.deserialize_index_binary(data)
        assert type(index).__name__ == kind
        np.testing.assert_array_equal(index.search(SMALL, 1)[0][:, 0], [0, 0, 0])


def patched(data, offset, fmt, value):
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


FLAT = faiss_bytes("IndexBinaryFlat", SMALL)
IDMAP = faiss_bytes("IndexBinaryIDMap2", SMALL)
# Offsets: tag 0, d 4, code_size 8, ntotal 12, is_trained 20, metric 21, then (flat) the code
# count at 25 and codes at 33; an id map's inner flat record starts at 25, its id count at 64.
CORRUPTIONS = [
    ("d odd", patched(FLAT, 4, "<i", 12), "d must be a positive multiple of 8, got 12"),
    ("d zero", patched(FLAT, 4, "<i", 0), "d must be a positive multiple of 8, got 0"),
    ("d negative", patched(FLAT, 4, "<i", -16), "d must be a positive multiple of 8"),
    ("code_size", patched(FLAT, 8, "<i", 3), "code_size 3 does not match d / 8 = 2"),
    ("ntotal negative", patched(FLAT, 12, "<q", -1), "ntotal must be >= 0, got -1"),
    ("ntotal larger", patched(FLAT, 12, "<q", 4), "code array holds 6 entries, the header announces 8"),
    ("ntotal huge", patched(patched(FLAT, 12, "<q", 2**62), 25, "<Q", 2**63), "truncated"),
    ("is_trained", patched(FLAT, 20, "<B", 2), "is_trained byte must be 1"),
    ("metric", patched(FLAT, 21, "<i", 0), "metric_type must be 1"),
    ("code count", patched(FLAT, 25, "<Q", 8), "code array holds 8 entries, the header announces 6"),
    ("trailing byte", FLAT + b"\0", "1 unexpected bytes after the index"),
    ("unknown tag", b"IBzz" + FLAT[4:], "not a FAISS binary index of a supported type"),
    ("float index", b"IxF2" + FLAT[4:], "not a FAISS binary index of a supported type"),
    ("outer code_size", patched(IDMAP, 4, "<i", 24), "code_size 2 does not match d / 8 = 3"),
    ("outer ntotal", patched(IDMAP, 12, "<q", 2), "inner index .d=16, ntotal=3. does not match the id map .d=16, ntotal=2."),
    ("inner d", patched(patched(IDMAP, 29, "<i", 24), 33, "<i", 3), "code array holds 6 entries, the header announces 9"),
    ("outer d", patched(patched(IDMAP, 4, "<i", 24), 8, "<i", 3), "inner index .d=16, ntotal=3. does not match the id map .d=24"),
    ("nested map", IDMAP[:25] + IDMAP, "an id map must wrap an IndexBinaryFlat, found IBM2 inside"),
    ("id count", patched(IDMAP, 64, "<Q", 2), "id map holds 2 entries, the header announces 3"),
    ("ids cut", IDMAP[:-8], "truncated: 3 ids"),
    ("id map trailing", IDMAP + b"\1\2", "2 unexpected bytes after the index"),
]


@pytest.mark.parametrize("name, data, message", CORRUPTIONS, ids=[c[0] for c in CORRUPTIONS])
def test_corrupted_files_are_refused_with_the_problem_named(name, data, message, tmp_path):
    path = tmp_path / "bad.index"
    path.write_bytes(data)
    for read in (lambda: fc.read_index_binary(path), lambda: fc.deserialize_index_binary(data)):
        with pytest.raises(fc.FaissFileError, match=message) as err:
            read()
        assert isinstance(err.value, ValueError) and isinstance(err.value, RuntimeError)
        assert isinstance(err.value, de.IndexFileError)


def test_special_files_are_refused_without_being_opened(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)  # opening it for reading would wait for a writer forever
    with pytest.raises(fc.FaissFileError, match="not a regular file"):
        fc.read_index_binary(fifo)
    with pytest.raises(fc.FaissFileError, match="not a regular file"):
        fc.read_index_binary(tmp_path)


def test_load_index_leaves_other_paths_to_the_engines_loader(tmp_path):
    (tmp_path / "short.dhi").write_bytes(b"IB")
    for path in (tmp_path, tmp_path / "missing.dhi", tmp_path / "short.dhi"):
        with pytest.raises(Exception) as ours:
            de.load_index(path)
        with pytest.raises(Exception) as engine:
            de._core.load_index(path)
        assert type(ours.value) is type(engine.value) and str(ours.value) == str(engine.value)


def test_empty_file_and_bad_arguments(tmp_path):
    path = tmp_path / "empty.index"
    path.write_bytes(b"")
    with pytest.raises(fc.FaissFileError, match="empty file"):
        fc.read_index_binary(path)
    with pytest.raises(ValueError, match="io_flags"):
        fc.read_index_binary(path, io_flags=1)
    with pytest.raises(TypeError):
        fc.deserialize_index_binary(np.zeros(8, dtype=np.int32))
