"""save / load_index / mmap round trips, the committed format-1 fixture, and damaged files."""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import deephash_engine as de
from fixtures.make_fixtures import build_flat_v1  # the operations that wrote flat_v1.dhi

FIXTURES = Path(__file__).parent / "fixtures"


def same_results(a, b, queries, k=10):
    Da, Ia = a.search(queries, k)
    Db, Ib = b.search(queries, k)
    np.testing.assert_array_equal(Da, Db)
    np.testing.assert_array_equal(Ia, Ib)
    for x, y in zip(a.range_search(queries, a.nbits // 3), b.range_search(queries, b.nbits // 3)):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("mmap", [False, True])
def test_format_1_fixture_still_loads(mmap):
    loaded = de.load_index(FIXTURES / "flat_v1.dhi", mmap=mmap)
    assert isinstance(loaded, de.FlatIndex)
    assert (loaded.nbits, loaded.ntotal, loaded.next_id) == (24, 50, 1001)
    assert loaded.is_mmapped == mmap
    expected = build_flat_v1()
    queries = np.random.default_rng(0).integers(0, 256, (20, 3), dtype=np.uint8)
    same_results(loaded, expected, queries, k=60)
    np.testing.assert_array_equal(loaded.reconstruct(500), expected.reconstruct(500))
    with pytest.raises(KeyError):
        loaded.reconstruct(3)


@pytest.mark.parametrize("mmap", [False, True])
@pytest.mark.parametrize("nbits", [8, 64, 200, 1024])
def test_round_trip(tmp_path, rng, mmap, nbits):
    index = de.FlatIndex(nbits)
    codes = rng.integers(0, 256, (3000, nbits // 8), dtype=np.uint8)
    index.add(codes)
    index.remove_ids(np.arange(0, 3000, 7))
    path = tmp_path / "index.dhi"
    index.save(str(path))
    loaded = de.load_index(path, mmap=mmap)
    assert loaded.is_mmapped == mmap
    assert (loaded.ntotal, loaded.next_id) == (index.ntotal, index.next_id)
    same_results(index, loaded, codes[:25])
    # writes on a mapped index copy it into memory first; the file is untouched
    loaded.add(codes[:5])
    loaded.remove_ids([1, 2])
    assert not loaded.is_mmapped
    same_results(de.load_index(path), index, codes[:25])


def test_empty_index_round_trip(tmp_path):
    path = tmp_path / "empty.dhi"
    de.FlatIndex(16).save(path)
    for mmap in (False, True):
        loaded = de.load_index(path, mmap=mmap)
        assert loaded.ntotal == 0 and loaded.nbits == 16


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path, rng):
    path = tmp_path / "a.dhi"
    index = de.FlatIndex(32)
    index.add(rng.integers(0, 256, (100, 4), dtype=np.uint8))
    index.save(path)
    mapped = de.load_index(path, mmap=True)  # a reader holding the old file keeps working
    index.add(rng.integers(0, 256, (100, 4), dtype=np.uint8))
    index.save(path)
    assert mapped.ntotal == 100 and de.load_index(path).ntotal == 200
    assert mapped.search(np.zeros((1, 4), dtype=np.uint8), 3)[1].shape == (1, 3)
    assert sorted(os.listdir(tmp_path)) == ["a.dhi"]


def test_save_into_missing_folder_raises_oserror(tmp_path):
    with pytest.raises(OSError, match="cannot create"):
        de.FlatIndex(8).save(tmp_path / "no" / "such" / "dir.dhi")


@pytest.fixture
def good_file(tmp_path, rng):
    path = tmp_path / "good.dhi"
    index = de.FlatIndex(64)
    index.add(rng.integers(0, 256, (500, 8), dtype=np.uint8))
    index.save(path)
    return path


@pytest.mark.parametrize("cut", [0, 3, 8, 63, 64, 100, -9, -1])
def test_truncated_file(good_file, tmp_path, cut):
    data = good_file.read_bytes()
    bad = tmp_path / "bad.dhi"
    bad.write_bytes(data[:cut] if cut >= 0 else data[:len(data) + cut])
    with pytest.raises(de.IndexFileError, match="truncated|not a deephash|corrupted"):
        de.load_index(bad)


@pytest.mark.parametrize("offset", [8, 13, 17, 25, 33, 49, 64, 1000, 4063, -3])
def test_bit_flip_anywhere_is_detected(good_file, tmp_path, offset):
    data = bytearray(good_file.read_bytes())
    data[offset] ^= 0x04
    bad = tmp_path / "flipped.dhi"
    bad.write_bytes(bytes(data))
    with pytest.raises(de.IndexFileError):
        de.load_index(bad, mmap=True)


def test_wrong_magic_and_newer_version(good_file, tmp_path):
    data = bytearray(good_file.read_bytes())
    foreign = tmp_path / "foreign.bin"
    foreign.write_bytes(b"PK\x03\x04" + bytes(data[4:]))
    with pytest.raises(de.IndexFileError, match="not a deephash index file"):
        de.load_index(foreign)
    newer = bytearray(data)
    newer[8:12] = (2).to_bytes(4, "little")
    path = tmp_path / "newer.dhi"
    path.write_bytes(bytes(newer))
    with pytest.raises(de.IndexFileError, match="newer"):
        de.load_index(path)


def test_file_errors_are_oserrors_and_deephash_errors(tmp_path):
    with pytest.raises(OSError):
        de.load_index(tmp_path / "missing.dhi")
    assert issubclass(de.IndexFileError, de.DeepHashError)
    assert issubclass(de.IndexFileError, OSError)
    with pytest.raises(de.IndexFileError, match="not a regular file"):
        de.load_index(tmp_path)


def test_fixture_copy_is_byte_identical_after_resave(tmp_path):
    """Saving what was loaded writes the same bytes: the format has no hidden state."""
    src = FIXTURES / "flat_v1.dhi"
    shutil.copy(src, tmp_path / "copy.dhi")
    de.load_index(tmp_path / "copy.dhi").save(tmp_path / "resaved.dhi")
    assert (tmp_path / "resaved.dhi").read_bytes() == src.read_bytes()
