"""Asymmetric distance (ADC) search over quantization codes: FAISS with the learned codebooks,
and a plain NumPy oracle that shares nothing with it.

ADC compares a query's real-valued embedding with each database item's reconstruction from its
codes. Two cases:

- product quantization with ``metric="l2"``: ``sum_m ||q_m - C_m[b_m]||^2``, searched with a
  ``faiss.IndexPQ`` whose ``pq.centroids`` are overwritten with the learned codebooks and whose
  codes are written directly (so FAISS searches exactly the codes the method chose);
- composite (additive) quantization with ``metric="ip"``: ``<q, sum_m C_m[b_m]>`` (largest
  first), searched with a ``faiss.IndexResidualQuantizer`` whose ``rq.codebooks`` are
  overwritten. Its look-up-table search of inner products needs no stored norms, so FAISS scores
  the learned codebooks unchanged. FAISS's L2 search of additive codes needs a norm encoded with
  each code by FAISS's own encoder, so composite codes are searched by inner product only
  (DVSQ's own similarity).

Tie rule: every result is re-sorted by (score, database id), score being the distance for l2
and minus the inner product for ip; FAISS's heap leaves the order of equal scores open. The
oracle computes reconstructions in float64 and sorts with the same rule; FAISS sums float32
look-up tables, so scores agree within float32 rounding and rankings agree wherever scores
differ by more than that (exactly, when codebook values are exact in float32 sums).
"""

from __future__ import annotations

import numpy as np

METRICS = ("l2", "ip")


def _bits_per_code(codewords: int) -> int:
    bits = int(codewords).bit_length() - 1
    if codewords < 2 or 1 << bits != codewords:
        raise ValueError(f"codewords: expected a power of two >= 2 (FAISS stores log2 K bits per code), got {codewords}")
    return bits


def pack_codes(codes: np.ndarray, codewords: int) -> np.ndarray:
    """(n, M) codes -> FAISS's packed layout: code m in bits [m b, (m + 1) b) of a little-endian
    bit string, b = log2 K, padded to whole bytes. Returns uint8 (n, ceil(M b / 8))."""
    bits = _bits_per_code(codewords)
    codes = np.asarray(codes, dtype=np.int64)
    n, m_count = codes.shape
    if codes.size and (codes.min() < 0 or codes.max() >= codewords):
        raise ValueError(f"codes: expected values in [0, {codewords}), got [{codes.min()}, {codes.max()}]")
    shifts = np.arange(bits, dtype=np.int64)
    bitmat = ((codes[:, :, None] >> shifts) & 1).reshape(n, m_count * bits).astype(np.uint8)
    return np.packbits(bitmat, axis=1, bitorder="little")


def check_search_args(query, codes, codebooks, product: bool, metric: str):
    query = np.ascontiguousarray(query, dtype=np.float32)
    codebooks = np.ascontiguousarray(codebooks, dtype=np.float32)
    codes = np.asarray(codes)
    if metric not in METRICS:
        raise ValueError(f"metric: expected one of {METRICS}, got {metric!r}")
    if codebooks.ndim != 3:
        raise ValueError(f"codebooks: expected (M, K, sub-dimension), got shape {codebooks.shape}")
    m_count, _, sub = codebooks.shape
    dim = m_count * sub if product else sub
    if query.ndim != 2 or query.shape[1] != dim:
        raise ValueError(f"query: expected shape (n, {dim}), got {query.shape}")
    if codes.ndim != 2 or codes.shape[1] != m_count:
        raise ValueError(f"codes: expected shape (n, {m_count}), got {codes.shape}")
    if not product and metric != "ip":
        raise ValueError("metric: composite codes are searched by inner product ('ip'); FAISS's L2 search "
                         "of additive codes needs norms from its own encoder, got 'l2'")
    return query, codes.astype(np.int64), codebooks


def oracle_scores(query, codes, codebooks, product: bool, metric: str = "l2") -> np.ndarray:
    """(nq, n) float64 ADC scores, straight from the float64 reconstructions: squared L2
    distances for ``"l2"``, inner products for ``"ip"``."""
    q, codes, books = check_search_args(query, codes, codebooks, product, metric)
    books = books.astype(np.float64)
    parts = [books[m][codes[:, m]] for m in range(books.shape[0])]
    recon = np.concatenate(parts, axis=1) if product else np.sum(parts, axis=0)
    q = q.astype(np.float64)
    if metric == "ip":
        return q @ recon.T
    return ((q[:, None, :] - recon[None, :, :]) ** 2).sum(2)


def sort_results(scores: np.ndarray, ids: np.ndarray, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows re-sorted by (score, id), score negated for ``"ip"`` (the tie rule above)."""
    key = -scores if metric == "ip" else scores
    order = np.lexsort((ids, key), axis=1)
    return np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1)


def oracle_search(query, codes, codebooks, product: bool, metric: str = "l2", k: int | None = None):
    """(scores, ids), (nq, k) each, best first under the tie rule: the reference of
    :func:`adc_search`."""
    scores = oracle_scores(query, codes, codebooks, product, metric)
    ids = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
    scores, ids = sort_results(scores, ids, metric)
    k = scores.shape[1] if k is None else k
    return scores[:, :k], ids[:, :k]


def build_faiss_index(codes, codebooks, product: bool, metric: str = "l2"):
    """A FAISS index holding ``codes`` under the learned ``codebooks`` (see the module doc)."""
    import faiss

    _, codes, books = check_search_args(np.zeros((1, books_dim(codebooks, product)), np.float32),
                                         codes, codebooks, product, metric)
    m_count, k_count, sub = books.shape
    bits = _bits_per_code(k_count)
    faiss_metric = faiss.METRIC_INNER_PRODUCT if metric == "ip" else faiss.METRIC_L2
    if product:
        index = faiss.IndexPQ(m_count * sub, m_count, bits, faiss_metric)
        faiss.copy_array_to_vector(books.ravel(), index.pq.centroids)
        index.pq.sync_transposed_centroids()
    else:
        index = faiss.IndexResidualQuantizer(sub, m_count, bits, faiss_metric)
        faiss.copy_array_to_vector(books.ravel(), index.rq.codebooks)
        index.rq.is_trained = True
    index.is_trained = True
    packed = pack_codes(codes, k_count)
    if packed.shape[1] != index.code_size:
        raise AssertionError(f"packed code size {packed.shape[1]} != FAISS code size {index.code_size}")
    if packed.shape[0]:
        faiss.copy_array_to_vector(packed.ravel(), index.codes)
    index.ntotal = packed.shape[0]
    return index


def books_dim(codebooks, product: bool) -> int:
    shape = np.shape(codebooks)
    if len(shape) != 3:
        raise ValueError(f"codebooks: expected (M, K, sub-dimension), got shape {shape}")
    return shape[0] * shape[2] if product else shape[2]


def adc_search(index, query, metric: str = "l2", k: int | None = None, block: int = 256):
    """(scores, ids) of the best ``k`` (default: all) database items per query from a FAISS
    index of :func:`build_faiss_index`, searched ``block`` queries at a time, under the tie rule."""
    q = np.ascontiguousarray(query, dtype=np.float32)
    k = index.ntotal if k is None else min(int(k), index.ntotal)
    scores = np.empty((q.shape[0], k), dtype=np.float32)
    ids = np.empty((q.shape[0], k), dtype=np.int64)
    for start in range(0, q.shape[0], block):
        s, i = index.search(q[start:start + block], k)
        scores[start:start + block], ids[start:start + block] = sort_results(s, i, metric)
    return scores, ids
