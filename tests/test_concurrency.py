"""Searches from many Python threads while another thread adds: every result must be the exact
answer for some prefix of the adds (writers exclude readers; searches release the GIL)."""

import threading

import numpy as np

import deephash_engine as de
from oracles import oracle_knn


def test_search_during_add_sees_a_consistent_prefix(rng):
    nbits, batch, nbatches = 64, 2000, 12
    batches = [rng.integers(0, 256, (batch, nbits // 8), dtype=np.uint8) for _ in range(nbatches)]
    all_codes = np.concatenate(batches)
    queries = rng.integers(0, 256, (4, nbits // 8), dtype=np.uint8)
    k = 5
    # Expected answer after each prefix of batches.
    expected = [oracle_knn(queries, all_codes[: (p + 1) * batch], np.arange((p + 1) * batch), k)
                for p in range(nbatches)]
    index = de.FlatIndex(nbits)
    index.add(batches[0])
    observed, errors = [], []
    done = threading.Event()

    def reader():
        try:
            while not done.is_set():
                observed.append(index.search(queries, k))
        except Exception as exc:  # surfaced below
            errors.append(exc)

    readers = [threading.Thread(target=reader) for _ in range(3)]
    for t in readers:
        t.start()
    for b in batches[1:]:
        index.add(b)
    done.set()
    for t in readers:
        t.join(timeout=60)
    assert not errors
    assert len(observed) > 0
    for D, I in observed:
        assert any(np.array_equal(D, eD) and np.array_equal(I, eI) for eD, eI in expected)
    np.testing.assert_array_equal(index.search(queries, k)[1], expected[-1][1])


def test_concurrent_searches_agree(rng):
    index = de.FlatIndex(128)
    index.add(rng.integers(0, 256, (50000, 16), dtype=np.uint8))
    queries = rng.integers(0, 256, (8, 16), dtype=np.uint8)
    reference = index.search(queries, 10)
    results = [None] * 6

    def worker(i):
        results[i] = index.search(queries, 10)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for D, I in results:
        np.testing.assert_array_equal(D, reference[0])
        np.testing.assert_array_equal(I, reference[1])
