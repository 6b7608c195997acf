"""NumPy oracles and data generators shared by the tests (the slow, obvious computations)."""

from __future__ import annotations

import numpy as np


def hamming_matrix(queries: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """(nq, n) Hamming distances, the obvious way: the bits of each XOR counted byte by byte
    (blocks of codes keep the (nq, block, code size) temporary near 4 MB)."""
    out = np.zeros((len(queries), len(codes)), dtype=np.int64)
    block = max(1, 4_000_000 // max(1, len(queries) * queries.shape[1]))
    for b in range(0, len(codes), block):
        out[:, b:b + block] = np.bitwise_count(queries[:, None, :] ^ codes[None, b:b + block, :]).sum(axis=2)
    return out


def oracle_knn(queries, codes, ids, k):
    """k smallest (distance, id) per query with FAISS-style padding."""
    dist = hamming_matrix(queries, codes)
    nq = len(queries)
    D = np.full((nq, k), 2147483647, dtype=np.int32)
    I = np.full((nq, k), -1, dtype=np.int64)
    for i in range(nq):
        order = np.lexsort((ids, dist[i]))[:k]
        D[i, : len(order)] = dist[i][order]
        I[i, : len(order)] = ids[order]
    return D, I


def oracle_range(queries, codes, ids, radius):
    dist = hamming_matrix(queries, codes)
    lims, D, I = [0], [], []
    for i in range(len(queries)):
        sel = np.nonzero(dist[i] <= radius)[0]
        order = sel[np.lexsort((ids[sel], dist[i][sel]))]
        D.append(dist[i][order])
        I.append(ids[order])
        lims.append(lims[-1] + len(order))
    return np.array(lims, dtype=np.int64), np.concatenate(D) if D else np.zeros(0), np.concatenate(I) if I else np.zeros(0)


def clustered_codes(rng, n, nbits, nclusters=20, flip=0.05):
    """Codes near a few random centres: many near-duplicates."""
    centres = rng.integers(0, 2, (nclusters, nbits), dtype=np.uint8)
    bits = centres[rng.integers(0, nclusters, n)]
    bits ^= (rng.random((n, nbits)) < flip).astype(np.uint8)
    return np.packbits(bits, axis=1, bitorder="little")


def duplicate_codes(rng, n, nbits, ndistinct=7):
    base = rng.integers(0, 256, (ndistinct, nbits // 8), dtype=np.uint8)
    return base[rng.integers(0, ndistinct, n)]



def near_duplicate_pairs(codes, radius, chunk=500):
    """Every pair (i < j) of rows within `radius`, sorted, with its distance: (pairs m x 2, distances),
    by brute force over blocks of rows (np.bitwise_count of the XOR, no float matrix)."""
    words = codes.view(np.uint64) if codes.shape[1] % 8 == 0 else codes
    pairs, dists = [], []
    for r0 in range(0, len(codes), chunk):
        dist = np.bitwise_count(words[r0:r0 + chunk, None, :] ^ words[None, :, :]).sum(axis=2, dtype=np.int32)
        i, j = np.nonzero(dist <= radius)
        i = i + r0
        keep = j > i
        pairs.append(np.stack([i[keep], j[keep]], axis=1))
        dists.append(dist[i[keep] - r0, j[keep]])
    return np.concatenate(pairs).astype(np.int64), np.concatenate(dists).astype(np.int32)


def read_parquet_rows(folder, first):
    """The (first, id, distance) columns of a folder of Parquet parts, in part order."""
    import pyarrow.parquet as pq

    from pathlib import Path

    parts = sorted(Path(folder).glob("part-*.parquet"))
    assert parts, f"no Parquet parts in {folder}"
    table = pq.read_table(Path(folder))  # the folder reads as one table
    assert table.column_names == [first, "id", "distance"]
    assert [str(t) for t in table.schema.types] == ["int64", "int64", "int32"]
    columns = [np.concatenate([pq.read_table(p).column(c).to_numpy() for p in parts]) for c in (first, "id", "distance")]
    assert len(columns[0]) == table.num_rows
    return columns
