"""Ternary codes through the binary engine: the Hamming distance of the encoded codes is exactly
2 (K - a . b), so every index ranks them as the DPN authors' ternary distance does, ties by id."""

import numpy as np
import pytest
import torch

import deephash_engine as de
from deephash_engine.deep.losses.dpn import ternary_assignment
from deephash_engine.ternary import ternary_codes, ternary_distance


def hamming(a, b):
    x = np.unpackbits(a, axis=1, bitorder="little").astype(np.int64)
    y = np.unpackbits(b, axis=1, bitorder="little").astype(np.int64)
    return (x[:, None, :] != y[None, :, :]).sum(axis=2)


@pytest.mark.parametrize("K", [1, 2, 7, 16, 33])
def test_hamming_distance_is_twice_k_minus_the_dot_product(rng, K):
    a = rng.integers(-1, 2, (40, K))
    b = rng.integers(-1, 2, (50, K))
    qa, db = ternary_codes(a, "query"), ternary_codes(b, "database")
    assert qa.dtype == np.uint8 and qa.shape == (40, (K + 1) // 2) and db.shape == (50, (K + 1) // 2)
    np.testing.assert_array_equal(hamming(qa, db), 2 * (K - a @ b.T))
    np.testing.assert_array_equal(ternary_distance(hamming(qa, db)), 0.5 * (K - a @ b.T))
    # every pair of entries, one at a time: 0 for equal signs, 4 for opposite, 2 with a zero
    one = np.array([[1], [-1], [0]])
    np.testing.assert_array_equal(hamming(ternary_codes(one, "query"), ternary_codes(one, "database")),
                                  [[0, 4, 2], [4, 0, 2], [2, 2, 2]])


@pytest.mark.parametrize("cls", [de.FlatIndex, de.MIHIndex])
def test_an_index_ranks_as_the_ternary_distance_with_ties_by_id(rng, cls):
    K = 24  # 96-bit codes
    u = torch.as_tensor(rng.normal(0, 1.2, (3000, K)), dtype=torch.float32)
    t = ternary_assignment(u, 1.0).numpy()  # about a third of the entries are 0
    assert (t == 0).mean() > 0.2
    db, queries = t[:2900], t[2900:]
    index = cls(4 * K)
    index.add(ternary_codes(db, "database"))
    D, I = index.search(ternary_codes(queries, "query"), 20)
    dist = K - queries.astype(np.int64) @ db.astype(np.int64).T
    order = np.lexsort((np.broadcast_to(np.arange(len(db)), dist.shape), dist), axis=1)[:, :20]
    np.testing.assert_array_equal(I, order)
    np.testing.assert_array_equal(D, 2 * np.take_along_axis(dist, order, axis=1))


def test_refuses_what_is_not_a_ternary_code():
    with pytest.raises(ValueError, match="role must be"):
        ternary_codes(np.zeros((2, 3)), "queries")
    with pytest.raises(ValueError, match=r"-1, 0 or \+1 only, got 2 at row 1, entry 0"):
        ternary_codes(np.array([[1, 0], [2, 0]]), "query")
    with pytest.raises(ValueError, match=r"shape \(n, K\)"):
        ternary_codes(np.zeros(4), "database")
    with pytest.raises(ValueError, match=r"-1, 0 or \+1 only"):
        ternary_codes(np.array([[0.5, 1.0]]), "database")
