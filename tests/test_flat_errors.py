"""Bad input raises at once, names the problem, and leaves the index exactly as it was."""

import numpy as np
import pytest

import deephash_engine as de


def snapshot(index):
    q = np.zeros((1, index.code_size), dtype=np.uint8)
    D, I = index.search(q, max(1, index.ntotal))
    return index.ntotal, index.next_id, D.tolist(), I.tolist()


@pytest.fixture
def index(rng):
    idx = de.FlatIndex(32)
    idx.add(rng.integers(0, 256, (20, 4), dtype=np.uint8))
    idx.add_with_ids(rng.integers(0, 256, (3, 4), dtype=np.uint8), [100, 50, 70])
    return idx


@pytest.mark.parametrize("nbits", [0, -8, -1, de.MAX_NBITS + 1])
def test_nbits_must_be_positive_and_at_most_the_limit(nbits):
    with pytest.raises(ValueError, match="nbits must be (a positive number of bits|at most)"):
        de.FlatIndex(nbits)


@pytest.mark.parametrize("bad, exc, match", [
    (np.zeros((2, 4), dtype=np.float64), TypeError, "uint8"),
    (np.zeros((2, 4), dtype=np.int64), TypeError, "int64"),
    (np.zeros((2, 4), dtype=bool), TypeError, "bool"),
    (np.zeros((2, 5), dtype=np.uint8), ValueError, "4 bytes per code.*got 5"),
    (np.zeros((2, 2, 2), dtype=np.uint8), ValueError, "2-D"),
    ([[1, 2, 3, 4]], TypeError, "numpy uint8 array"),
])
def test_bad_codes_change_nothing(index, bad, exc, match):
    before = snapshot(index)
    with pytest.raises(exc, match=match):
        index.add(bad)
    with pytest.raises(exc, match=match):
        index.add_with_ids(bad, np.arange(1000, 1000 + len(bad)))
    with pytest.raises(exc, match=match):
        index.search(bad, 3)
    with pytest.raises(exc, match=match):
        index.range_search(bad, 3)
    assert snapshot(index) == before


@pytest.mark.parametrize("ids, match", [
    ([200, 200], "unique"),
    ([-1, 300], ">= 0"),
    ([300, 50], "already in the index"),
    ([300], "one entry per code"),
])
def test_bad_ids_change_nothing(index, ids, match):
    before = snapshot(index)
    with pytest.raises(ValueError, match=match):
        index.add_with_ids(np.zeros((2, 4), dtype=np.uint8), ids)
    assert snapshot(index) == before


def test_float_ids_are_a_type_error(index):
    with pytest.raises(TypeError, match="integer"):
        index.add_with_ids(np.zeros((1, 4), dtype=np.uint8), [1.5])


def test_k_and_radius(index):
    q = np.zeros((1, 4), dtype=np.uint8)
    for k in (0, -3):
        with pytest.raises(ValueError, match=f"k must be > 0, got {k}"):
            index.search(q, k)
    with pytest.raises(ValueError, match="radius must be >= 0, got -1"):
        index.range_search(q, -1)


def test_unknown_id_in_reconstruct(index):
    with pytest.raises(KeyError, match="999"):
        index.reconstruct(999)
    assert index.reconstruct(50).shape == (4,)


def test_non_contiguous_codes_are_copied(rng):
    wide = rng.integers(0, 256, (10, 8), dtype=np.uint8)
    view = wide[:, ::2]  # (10, 4), not contiguous
    index = de.FlatIndex(32)
    index.add(view)
    for i in range(10):
        np.testing.assert_array_equal(index.reconstruct(i), view[i])
    D, I = index.search(view[::-1], 1)
    assert (D[:, 0] == 0).all()
    assert I[:, 0].tolist() == list(range(9, -1, -1))


def test_an_equal_dtype_from_another_instance_is_accepted(rng):
    """Arrays rebuilt by pickle or shared memory (Ray, multiprocessing) carry a uint8 dtype that
    is equal to, but not the same object as, NumPy's canonical one."""
    import pickle

    codes = rng.integers(0, 256, (10, 2), dtype=np.uint8)
    other = np.frombuffer(codes.tobytes(), dtype=pickle.loads(pickle.dumps(np.dtype("uint8")))).reshape(10, 2)
    index = de.FlatIndex(16)
    index.add(other)
    np.testing.assert_array_equal(index.search(other[:3], 2)[1], index.search(codes[:3], 2)[1])
