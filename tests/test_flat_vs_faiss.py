"""Cross-check against faiss.IndexBinaryFlat (k-NN, and range search with radius + 1)."""

import numpy as np
import pytest

import deephash_engine as de
from oracles import clustered_codes, duplicate_codes

faiss = pytest.importorskip("faiss", reason="faiss-cpu is installed by `make test`")


def sort_rows(D, I):
    order = np.array([np.lexsort((i, d)) for d, i in zip(D, I)])
    return np.take_along_axis(D, order, 1), np.take_along_axis(I, order, 1)


@pytest.mark.parametrize("kind", ["uniform", "clustered", "duplicates"])
@pytest.mark.parametrize("nbits", [64, 128, 256, 512])
def test_knn_and_range_match_faiss(kind, nbits, rng):
    n, nq = 20000, 30
    codes = {"uniform": lambda: rng.integers(0, 256, (n, nbits // 8), dtype=np.uint8),
             "clustered": lambda: clustered_codes(rng, n, nbits),
             "duplicates": lambda: duplicate_codes(rng, n, nbits)}[kind]()
    queries = codes[rng.integers(0, n, nq)].copy()
    queries[:, 0] ^= 0x5
    ours = de.FlatIndex(nbits)
    ours.add(codes)
    ref = faiss.IndexBinaryFlat(nbits)
    ref.add(codes)
    for k in (1, 10, 100):
        D, I = ours.search(queries, k)
        fD, fI = ref.search(queries, k)
        np.testing.assert_array_equal(D, fD)
        fD, fI = sort_rows(fD, fI)
        np.testing.assert_array_equal(I, fI)
    radius = nbits // 8
    lims, D, I = ours.range_search(queries, radius)
    flims, fD, fI = ref.range_search(queries, radius + 1)  # FAISS binary range search is strict (<)
    np.testing.assert_array_equal(lims, flims)
    for i in range(nq):
        a, b = lims[i], lims[i + 1]
        order = np.lexsort((fI[a:b], fD[a:b]))
        np.testing.assert_array_equal(D[a:b], fD[a:b][order])
        np.testing.assert_array_equal(I[a:b], fI[a:b][order])
