"""Defects found by review of the index files and the Python entry points (one test per defect).

Each test failed before its fix: files that save() wrote but load_index() refused, layout rules
of docs/format.md the loader skipped, ids handed out twice, paths cut at a NUL byte, failed calls
that changed the index, and a mapped file truncated under a reader.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import deephash_engine as de
from dhi_file import IndexFile

INT64_MAX = 2**63 - 1


def saved(tmp_path, index, name="index.dhi"):
    path = tmp_path / name
    index.save(path)
    return path


def flat(rng, nbits=24, n=5, **kw):
    index = de.FlatIndex(nbits)
    index.add(rng.integers(0, 256, (n, nbits // 8), dtype=np.uint8))
    return index


def write(tmp_path, f: IndexFile, name="crafted.dhi"):
    path = tmp_path / name
    path.write_bytes(f.to_bytes())
    return path


# ---- the format specification ------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["flat", "mih"])
def test_the_specification_describes_what_save_writes(tmp_path, rng, kind):
    """dhi_file.py is written from docs/format.md alone; it parses and rewrites saved files exactly."""
    index = de.FlatIndex(24) if kind == "flat" else de.MIHIndex(24)
    index.add(rng.integers(0, 256, (7, 3), dtype=np.uint8))
    index.remove_ids([2])
    data = saved(tmp_path, index).read_bytes()
    f = IndexFile.parse(data)
    assert f.to_bytes() == data
    assert f.ids() == [0, 1, 3, 4, 5, 6]
    assert de.load_index(write(tmp_path, f)).ntotal == 6


# ---- defect 1: one nbits limit for constructors, save and load --------------------------------


@pytest.mark.parametrize("cls", [de.FlatIndex, de.MIHIndex])
def test_nbits_above_the_file_limit_is_refused_at_construction(cls):
    with pytest.raises(ValueError, match="at most 1048576"):
        cls(2**20 + 8)


def test_the_widest_index_saves_and_loads(tmp_path, rng):
    index = de.FlatIndex(2**20)
    codes = rng.integers(0, 256, (2, 2**17), dtype=np.uint8)
    index.add(codes)
    loaded = de.load_index(saved(tmp_path, index))
    np.testing.assert_array_equal(loaded.reconstruct(1), codes[1])


@pytest.mark.parametrize("value", [2**40, 2**64])
def test_huge_nbits_is_a_value_error(value):
    with pytest.raises(ValueError):
        de.FlatIndex(value)


# ---- defect 2: a mapped file truncated or rewritten under a reader ----------------------------

MAPPED_SCRIPT = textwrap.dedent("""
    import os, sys
    import numpy as np
    import deephash_engine as de
    path, action = sys.argv[1], sys.argv[2]
    index = de.load_index(path, mmap=True)
    assert index.is_mmapped
    q = np.zeros((1, 8), dtype=np.uint8)
    before = index.search(q, 5)
    if action == "truncate":
        os.truncate(path, 4096)
    else:  # overwrite some code bytes in place, as a careless writer would
        with open(path, "r+b") as f:
            f.seek(64 + 8 * 100)
            f.write(bytes(range(1, 65)))
    for call in (lambda: index.search(q, 5), lambda: index.range_search(q, 3),
                 lambda: index.reconstruct(5), lambda: index.add(q),
                 lambda: index.save(path + ".copy")):
        try:
            call()
        except de.IndexFileError as e:
            assert ("truncated" if action == "truncate" else "modified in place") in str(e), e
        else:
            raise SystemExit("no error after " + action)
    print("ok")
""")


@pytest.mark.parametrize("kind", ["flat", "mih"])
@pytest.mark.parametrize("action", ["truncate", "overwrite"])
def test_a_mapped_file_changed_by_another_process_raises_instead_of_crashing(tmp_path, rng, kind, action):
    index = de.FlatIndex(64) if kind == "flat" else de.MIHIndex(64)
    index.add(rng.integers(0, 256, (20000, 8), dtype=np.uint8))
    path = saved(tmp_path, index)
    # In a child process: before the fix, the truncated case died of SIGBUS.
    out = subprocess.run([sys.executable, "-c", MAPPED_SCRIPT, str(path), action],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, (out.returncode, out.stdout, out.stderr)
    assert out.stdout.strip() == "ok"


def test_a_file_replaced_by_save_keeps_serving_its_mapped_readers(tmp_path, rng):
    path = saved(tmp_path, flat(rng, 64, 100))
    mapped = de.load_index(path, mmap=True)
    before = mapped.search(np.zeros((1, 8), dtype=np.uint8), 5)
    flat(rng, 64, 300).save(path)  # rename over the path: the mapped inode is untouched
    after = mapped.search(np.zeros((1, 8), dtype=np.uint8), 5)
    np.testing.assert_array_equal(before[1], after[1])


# ---- defect 4: next_id at the top of the id range --------------------------------------------


def test_next_id_below_a_stored_int64_max_id_is_refused(tmp_path, rng):
    index = flat(rng, 24, 0)
    index.add_with_ids(rng.integers(0, 256, (2, 3), dtype=np.uint8), [5, INT64_MAX])
    f = IndexFile.parse(saved(tmp_path, index).read_bytes())
    assert f.next_id == INT64_MAX
    assert de.load_index(write(tmp_path, f, "ok.dhi")).next_id == INT64_MAX
    f.next_id = 3  # add() would hand out 3, 4, 5: a duplicate of 5
    with pytest.raises(de.IndexFileError, match="next id 3 is not above"):
        de.load_index(write(tmp_path, f))


def test_a_saturated_index_refuses_add_instead_of_repeating_ids(rng):
    index = flat(rng, 24, 0)
    index.add_with_ids(rng.integers(0, 256, (1, 3), dtype=np.uint8), [INT64_MAX])
    with pytest.raises(ValueError, match="overflow"):
        index.add(rng.integers(0, 256, (1, 3), dtype=np.uint8))
    assert index.ntotal == 1


# ---- defect 5: the layout rules of docs/format.md ---------------------------------------------


@pytest.fixture
def flat_file(tmp_path, rng):
    index = de.FlatIndex(24)
    index.add(rng.integers(0, 256, (5, 3), dtype=np.uint8))  # 15 code bytes: 1 byte of padding
    return IndexFile.parse(saved(tmp_path, index).read_bytes())


def test_payload_must_hold_exactly_the_codes_and_ids(tmp_path, flat_file):
    flat_file.payload += bytes(8)
    with pytest.raises(de.IndexFileError, match="does not hold exactly"):
        de.load_index(write(tmp_path, flat_file))


def test_payload_with_fewer_items_announced_is_refused(tmp_path, flat_file):
    flat_file.ntotal = 4
    with pytest.raises(de.IndexFileError, match="does not hold exactly"):
        de.load_index(write(tmp_path, flat_file))


@pytest.mark.parametrize("flags", [2, 1 << 31, 3])
def test_unknown_flag_bits_are_refused(tmp_path, flat_file, flags):
    flat_file.flags = flags
    with pytest.raises(de.IndexFileError, match="unknown flag bits"):
        de.load_index(write(tmp_path, flat_file))


def test_padding_after_the_codes_must_be_zero(tmp_path, flat_file):
    payload = bytearray(flat_file.payload)
    payload[15] = 0xFF
    flat_file.payload = bytes(payload)
    with pytest.raises(de.IndexFileError, match="non-zero padding"):
        de.load_index(write(tmp_path, flat_file))


def test_padding_before_the_payload_must_be_zero(tmp_path, flat_file):
    flat_file.payload_offset = 128
    flat_file.padding = b"\x00" * 63 + b"\x01"
    with pytest.raises(de.IndexFileError, match="non-zero padding"):
        de.load_index(write(tmp_path, flat_file))
    flat_file.padding = bytes(64)  # the same layout with zero padding is valid
    assert de.load_index(write(tmp_path, flat_file)).ntotal == 5


def test_a_flat_index_has_no_parameter_block(tmp_path, flat_file):
    flat_file.params = bytes(8)
    flat_file.payload_offset = 128
    flat_file.padding = bytes(56)
    with pytest.raises(de.IndexFileError, match="no parameters"):
        de.load_index(write(tmp_path, flat_file))


# ---- defect 6: empty id lists ------------------------------------------------------------------


@pytest.mark.parametrize("cls", [de.FlatIndex, de.MIHIndex])
def test_empty_python_lists_of_ids_are_valid(rng, cls):
    index = cls(16)
    index.add(rng.integers(0, 256, (10, 2), dtype=np.uint8))
    assert index.remove_ids([]) == 0
    assert index.remove_ids(()) == 0
    index.add_with_ids(np.empty((0, 2), dtype=np.uint8), [])
    assert index.ntotal == 10


def test_empty_ids_with_codes_is_still_a_length_mismatch(rng):
    with pytest.raises(ValueError, match="one entry per code"):
        de.FlatIndex(16).add_with_ids(rng.integers(0, 256, (2, 2), dtype=np.uint8), [])


# ---- defect 7: NUL bytes in paths ---------------------------------------------------------------


def test_a_path_with_a_nul_byte_is_refused_on_load(tmp_path, rng):
    path = saved(tmp_path, flat(rng))
    with pytest.raises(ValueError, match="NUL"):
        de.load_index(str(path) + "\x00b")


@pytest.mark.parametrize("cls", [de.FlatIndex, de.MIHIndex])
def test_a_path_with_a_nul_byte_is_refused_on_save(tmp_path, cls):
    with pytest.raises(ValueError, match="NUL"):
        cls(16).save(str(tmp_path / "a.dhi") + "\x00b")
    assert os.listdir(tmp_path) == []


# ---- defect 8: a refused MIH add_with_ids changes nothing --------------------------------------


def mih_state(index):
    return (index.ntotal, index.tail_size, index.tombstones, index.m, index.memory_usage(), index.next_id)


def test_refused_mih_add_with_ids_changes_nothing(rng):
    index = de.MIHIndex(32)
    index.add(rng.integers(0, 256, (5000, 4), dtype=np.uint8))
    index.remove_ids(np.arange(0, 500, 2))  # tombstones, below the compaction threshold
    index.add(rng.integers(0, 256, (100, 4), dtype=np.uint8))  # a tail
    before = mih_state(index)
    assert before[1] > 0 and before[2] > 0
    for bad in ([7, 7], [9], [-1, 10**9]):
        with pytest.raises(ValueError):
            index.add_with_ids(rng.integers(0, 256, (len(bad), 4), dtype=np.uint8), bad)
        assert mih_state(index) == before


def test_mih_add_with_ids_may_reuse_a_removed_id(rng):
    index = de.MIHIndex(32)
    codes = rng.integers(0, 256, (3000, 4), dtype=np.uint8)
    index.add(codes)
    index.remove_ids([10])
    index.add_with_ids(codes[:1], [10])
    np.testing.assert_array_equal(index.reconstruct(10), codes[0])
    assert index.ntotal == 3000


# ---- save over links and special files ---------------------------------------------------------


def test_save_through_a_symlink_replaces_its_target(tmp_path, rng):
    target = saved(tmp_path, flat(rng, 16, 3), "real.dhi")
    link = tmp_path / "link.dhi"
    link.symlink_to(target)
    flat(rng, 16, 8).save(link)
    assert link.is_symlink() and link.resolve() == target.resolve()
    assert de.load_index(target).ntotal == 8
    assert sorted(os.listdir(tmp_path)) == ["link.dhi", "real.dhi"]


def test_save_to_a_dangling_symlink_is_refused(tmp_path, rng):
    link = tmp_path / "dangling.dhi"
    link.symlink_to(tmp_path / "missing" / "x.dhi")
    with pytest.raises(de.IndexFileError, match="symlink"):
        flat(rng).save(link)
    assert link.is_symlink()


def test_save_over_a_fifo_or_folder_is_refused(tmp_path, rng):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(de.IndexFileError, match="not a regular file"):
        flat(rng).save(fifo)
    assert Path(fifo).is_fifo()
    (tmp_path / "folder").mkdir()
    with pytest.raises(de.IndexFileError, match="not a regular file"):
        flat(rng).save(tmp_path / "folder")


# ---- integer arguments -------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [de.FlatIndex, de.MIHIndex])
def test_k_and_radius_beyond_int64_are_value_errors(rng, cls):
    index = cls(16)
    index.add(rng.integers(0, 256, (10, 2), dtype=np.uint8))
    q = np.zeros((1, 2), dtype=np.uint8)
    with pytest.raises(ValueError, match="must fit in int64"):
        index.search(q, 2**64)
    with pytest.raises(ValueError, match="must fit in int64"):
        index.range_search(q, 2**70)
    with pytest.raises(ValueError, match="must fit in int64"):
        index.reconstruct(2**64)


@pytest.mark.parametrize("cls", [de.FlatIndex, de.MIHIndex])
def test_bool_is_not_an_int_argument(rng, cls):
    index = cls(16)
    index.add(rng.integers(0, 256, (10, 2), dtype=np.uint8))
    q = np.zeros((1, 2), dtype=np.uint8)
    with pytest.raises(TypeError, match="bool"):
        index.search(q, True)
    with pytest.raises(TypeError, match="bool"):
        index.range_search(q, False)
    with pytest.raises(TypeError, match="bool"):
        cls(True)


def test_numpy_integers_are_int_arguments(rng):
    index = flat(rng, 16, 10)
    q = np.zeros((1, 2), dtype=np.uint8)
    assert index.search(q, np.int64(3))[0].shape == (1, 3)
    assert index.range_search(q, np.uint8(16))[0][-1] == 10
    with pytest.raises(TypeError):
        index.search(q, 3.0)
