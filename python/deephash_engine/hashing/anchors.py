"""Anchor graphs (Liu, He & Chang, ICML 2010), shared by AGH and DGH.

The n x n similarity A = Z Lambda^{-1} Z^T is never formed. Z (n x m, sparse) links each point to
its s nearest anchors (k-means centres) with Gaussian weights exp(-D / sigma^2) normalised to sum
to one per row; Lambda = diag(Z^T 1). The non-trivial eigenvectors of A follow from the m x m
matrix M = Lambda^{-1/2} Z^T Z Lambda^{-1/2}.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .base import Hasher, check_matrix, check_positive_float, check_positive_int

_CHUNK = 8192


def squared_distances(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """(n, m) squared Euclidean distances, clipped at zero against round-off."""
    sq = (points * points).sum(axis=1)[:, None] - 2.0 * points @ centres.T
    sq += (centres * centres).sum(axis=1)[None, :]
    return np.maximum(sq, 0.0)


def _nearest(points: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of and squared distance to the nearest centre, row by row, in chunks."""
    n = points.shape[0]
    labels = np.empty(n, dtype=np.int64)
    dists = np.empty(n)
    for start in range(0, n, _CHUNK):
        block = squared_distances(points[start : start + _CHUNK], centres)
        labels[start : start + _CHUNK] = block.argmin(axis=1)
        dists[start : start + _CHUNK] = block[np.arange(block.shape[0]), labels[start : start + _CHUNK]]
    return labels, dists


def kmeans(X: np.ndarray, k: int, n_iter: int, rng: np.random.Generator) -> np.ndarray:
    """Lloyd's k-means from k distinct random points; an emptied cluster takes the farthest point.

    Distances are computed in float32 (the centres only seed the anchor graph, whose weights are
    computed in float64), chunk by chunk so memory stays O(chunk * k).
    """
    n = X.shape[0]
    data = X.astype(np.float32)
    centres = data[np.sort(rng.choice(n, size=k, replace=False))].copy()
    for _ in range(n_iter):
        labels, dists = _nearest(data, centres)
        counts = np.bincount(labels, minlength=k)
        sums = _cluster_sums(labels, data, k)
        empty = np.flatnonzero(counts == 0)
        moved = sums[counts > 0] / counts[counts > 0, None]
        centres[counts > 0] = moved.astype(np.float32)
        if empty.size:
            far = np.argsort(dists)[::-1][: empty.size]
            centres[empty] = data[far]
    return centres.astype(np.float64)


def _cluster_sums(labels: np.ndarray, data: np.ndarray, k: int) -> np.ndarray:
    """Per-cluster row sums (k, d), through a sparse one-hot product (faster than np.add.at)."""
    n = data.shape[0]
    onehot = sp.csr_matrix((np.ones(n, dtype=data.dtype), (labels, np.arange(n))), shape=(k, n))
    return np.asarray(onehot @ data, dtype=np.float64)


def auto_sigma(X: np.ndarray, anchors: np.ndarray, s: int) -> float:
    """The reference bandwidth: mean over points of the distance to the s-th nearest anchor."""
    total = 0.0
    for start in range(0, X.shape[0], _CHUNK):
        block = squared_distances(X[start : start + _CHUNK], anchors)
        kth = np.partition(block, s - 1, axis=1)[:, s - 1]
        total += float(np.sqrt(kth).sum())
    sigma = total / X.shape[0]
    if sigma <= 0:
        raise ValueError("X: every point coincides with its nearest anchors; cannot choose sigma")
    return sigma


def anchor_graph(X: np.ndarray, anchors: np.ndarray, s: int, sigma: float) -> sp.csr_matrix:
    """Sparse Z (n, m): s non-zeros per row, exp(-D / sigma^2) weights that sum to one."""
    n, m = X.shape[0], anchors.shape[0]
    cols = np.empty((n, s), dtype=np.int64)
    vals = np.empty((n, s))
    for start in range(0, n, _CHUNK):
        block = squared_distances(X[start : start + _CHUNK], anchors)
        idx = np.argpartition(block, s - 1, axis=1)[:, :s] if s < m else np.tile(np.arange(m), (block.shape[0], 1))
        d = np.take_along_axis(block, idx, axis=1)
        # Subtracting the row minimum cancels in the normalisation and avoids underflow.
        w = np.exp(-(d - d.min(axis=1, keepdims=True)) / (sigma * sigma))
        cols[start : start + _CHUNK] = idx
        vals[start : start + _CHUNK] = w / w.sum(axis=1, keepdims=True)
    indptr = np.arange(0, n * s + 1, s, dtype=np.int64)
    Z = sp.csr_matrix((vals.ravel(), cols.ravel(), indptr), shape=(n, m))
    Z.sort_indices()
    return Z


def build_anchor_graph(
    X: np.ndarray, n_anchors: int, s: int, sigma: float | None, kmeans_iter: int, rng: np.random.Generator
) -> tuple[np.ndarray, float, sp.csr_matrix]:
    """Anchors, bandwidth and Z for training data; anchors no point links to are dropped.

    An anchor outside every point's s nearest would get degree 0 and an infinite
    Lambda^{-1/2}; it is removed and Z recomputed on the anchors that remain.
    """
    anchors = kmeans(X, n_anchors, kmeans_iter, rng)
    if sigma is None:
        sigma = auto_sigma(X, anchors, s)
    Z = anchor_graph(X, anchors, s, sigma)
    degree = np.asarray(Z.sum(axis=0)).ravel()
    if np.any(degree <= 0):
        anchors = anchors[degree > 0]
        Z = anchor_graph(X, anchors, min(s, anchors.shape[0]), sigma)
    return anchors, float(sigma), Z


def anchor_spectrum(Z: sp.csr_matrix, k: int, tol: float = 1e-3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Degrees lambda (m,), and the top-k non-trivial eigenpairs of M, largest first.

    Eigenvalues outside (0, 1 - tol) are discarded: 1 is the trivial constant eigenvector (and
    values near 1 come from disconnected groups of anchors). Raises ValueError when fewer than
    k remain, naming nbits.
    """
    degree = np.asarray(Z.sum(axis=0)).ravel()
    inv_sqrt = 1.0 / np.sqrt(degree)
    ZtZ = np.asarray((Z.T @ Z).todense())
    M = inv_sqrt[:, None] * ZtZ * inv_sqrt[None, :]
    values, vectors = np.linalg.eigh((M + M.T) / 2)
    order = np.argsort(values)[::-1]
    values, vectors = values[order], vectors[:, order]
    keep = (values > 1e-10) & (values < 1.0 - tol)
    values, vectors = values[keep], vectors[:, keep]
    if values.size < k:
        raise ValueError(
            f"nbits: the anchor graph has {values.size} usable eigenvectors (< n_anchors="
            f"{Z.shape[1]}), fewer than the {k} needed; use more anchors or fewer bits"
        )
    vectors = vectors[:, :k]
    pivot = np.argmax(np.abs(vectors), axis=0)
    signs = np.sign(vectors[pivot, np.arange(k)])
    signs[signs == 0] = 1.0
    return degree, values[:k], vectors * signs


class AnchorGraphHasher(Hasher):
    """Shared plumbing of the anchor-graph methods (AGH, DGH): parameters and out-of-sample Z.

    Subclasses store ``anchors_`` and ``sigma_`` when they fit and call `_graph(X)` to get the
    anchor weights of any rows with the training anchors, s and sigma.
    """

    def _set_anchor_params(
        self, n_anchors: int, n_neighbors: int, sigma: float | None, kmeans_iter: int
    ) -> None:
        self.n_anchors = check_positive_int(n_anchors, "n_anchors", minimum=2)
        self.n_neighbors = check_positive_int(n_neighbors, "n_neighbors", minimum=1)
        if self.n_neighbors > self.n_anchors:
            raise ValueError(
                f"n_neighbors: expected at most n_anchors={self.n_anchors}, got {self.n_neighbors}"
            )
        self.sigma = None if sigma is None else check_positive_float(sigma, "sigma")
        self.kmeans_iter = check_positive_int(kmeans_iter, "kmeans_iter", minimum=0)

    def _min_samples(self) -> int:
        return self.n_anchors

    def _build_graph(self, X: np.ndarray) -> sp.csr_matrix:
        """Fit anchors and sigma on X (stored as anchors_, sigma_) and return its Z."""
        anchors, sigma, Z = build_anchor_graph(
            X, self.n_anchors, self.n_neighbors, self.sigma, self.kmeans_iter, self._rng()
        )
        self.anchors_ = anchors
        self.sigma_ = np.float64(sigma)
        return Z

    def _anchor_layout(self) -> dict:
        """The learned arrays every anchor-graph hasher stores (see Hasher._learned_layout)."""
        return {"anchors_": ("float64", ("anchors", self.n_features_in_)), "sigma_": ("float64", ())}

    def _check_learned_values(self):
        return None if self.sigma_ > 0 else f"learned/sigma_: expected > 0, got {float(self.sigma_)}"

    def _graph(self, X: np.ndarray) -> sp.csr_matrix:
        s = min(self.n_neighbors, self.anchors_.shape[0])
        return anchor_graph(X, self.anchors_, s, float(self.sigma_))

    def anchor_graph(self, X) -> sp.csr_matrix:
        """The sparse (n, m) anchor weights Z of the rows of X (rows sum to one)."""
        self._check_fitted()
        X = check_matrix(X, "X")
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X: expected {self.n_features_in_} features (as in fit), got {X.shape[1]}")
        return self._graph(X)
