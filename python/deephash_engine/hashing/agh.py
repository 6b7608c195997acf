"""AGH: Anchor Graph Hashing (Liu, Wang, Kumar & Chang, ICML 2011), one and two layers.

The spectral embedding of the anchor graph A = Z Lambda^{-1} Z^T (see `anchors`) is Y = Z W with
W = Lambda^{-1/2} V Sigma^{-1/2}, where (Sigma, V) are the top non-trivial eigenpairs of the m x m
matrix M = Lambda^{-1/2} Z^T Z Lambda^{-1/2}. Every column of Y sums to zero over the training set
(it is orthogonal to the trivial eigenvector), so thresholding at zero gives balanced bits.
New points get z(x) from the same anchors, s and sigma, and the same W (the paper's Nystrom
extension). Cost: k-means O(n m d T), Z O(n m d), eigensolver O(m^3); no n x n matrix.

Two layers (``layers=2``): nbits/2 eigenvectors; the first layer thresholds y at 0; the second
thresholds the positive side at b+ and the negative side at b-, the values that minimise the
graph cut inside each side (the reference's closed form). Code = [layer-1 bits | layer-2 bits].
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .anchors import AnchorGraphHasher, anchor_spectrum


class AGH(AnchorGraphHasher):
    """Anchor graph hashing.

    Parameters: ``n_anchors`` (m, default 300 k-means anchors), ``n_neighbors`` (s, default 2
    nearest anchors per point), ``sigma`` (Gaussian bandwidth; None = the mean distance to the
    s-th nearest anchor, as in the reference), ``layers`` (1 or 2), ``kmeans_iter`` (Lloyd
    iterations for the anchors, default 10), ``seed`` (k-means initialisation).
    """

    method = "AGH"
    _learned = ("anchors_", "sigma_", "weights_", "thresholds_")

    def __init__(
        self,
        nbits: int,
        n_anchors: int = 300,
        n_neighbors: int = 2,
        sigma: float | None = None,
        layers: int = 1,
        kmeans_iter: int = 10,
        seed: int = 0,
    ) -> None:
        super().__init__(nbits, seed)
        self._set_anchor_params(n_anchors, n_neighbors, sigma, kmeans_iter)
        if layers not in (1, 2) or isinstance(layers, bool):
            raise ValueError(f"layers: expected 1 or 2, got {layers!r}")
        self.layers = int(layers)
        n_eig = self.nbits // self.layers
        if n_eig >= self.n_anchors:
            raise ValueError(
                f"nbits: {self.layers}-layer AGH uses {n_eig} eigenvectors, which needs n_anchors > {n_eig}, "
                f"got n_anchors={self.n_anchors}"
            )

    def _fit(self, X: np.ndarray) -> None:
        Z = self._build_graph(X)
        n_eig = self.nbits // self.layers
        degree, values, vectors = anchor_spectrum(Z, n_eig)
        W = (vectors / np.sqrt(degree)[:, None]) / np.sqrt(values)[None, :]
        if self.layers == 1:
            self.weights_ = W
            self.thresholds_ = np.zeros((0, 2))
            return
        n = X.shape[0]
        W = W * np.sqrt(n)
        Y = Z @ W
        thresholds = np.zeros((n_eig, 2))
        for k in range(n_eig):
            thresholds[k] = _second_layer_thresholds(Z, degree, Y[:, k])
        self.weights_ = W
        self.thresholds_ = thresholds

    def _learned_layout(self):
        n_eig = self.nbits // self.layers
        return {**self._anchor_layout(), "weights_": ("float64", ("anchors", n_eig)),
                "thresholds_": ("float64", (0 if self.layers == 1 else n_eig, 2))}

    def _project(self, X: np.ndarray) -> np.ndarray:
        Y = self._graph(X) @ self.weights_
        if self.layers == 1:
            return Y
        b_pos = self.thresholds_[:, 0][None, :]
        b_neg = self.thresholds_[:, 1][None, :]
        second = np.where(Y > 0, Y - b_pos, -Y + b_neg)
        return np.concatenate([Y, second], axis=1)


def _second_layer_thresholds(Z: sp.csr_matrix, degree: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(b+, b-) for one embedding column y, in the reference's closed form.

    With P+ = {y > 0} (n1 points), A = Z Lambda^{-1} Z^T:
    s1 = 1+^T A |y|, s2 = n1 - 1+^T A 1+ (the cut between the two sides), s3 = sum over P+ of y;
    b+ = (2 s3 + n2 (s3 - s1) / s2) / n and b- = (n1 (s3 - s1) / s2 - 2 s3) / n.
    """
    n = y.shape[0]
    positive = y > 0
    n1 = int(positive.sum())
    n2 = n - n1
    z_pos = np.asarray(Z[positive].sum(axis=0)).ravel()  # Z^T 1+
    z_abs = Z.T @ np.abs(y)  # Z^T |y|
    s1 = float(np.dot(z_abs / degree, z_pos))
    s2 = n1 - float(np.dot(z_pos / degree, z_pos))
    s3 = float(y[positive].sum())
    ratio = (s3 - s1) / s2 if s2 > 1e-12 * max(n1, 1) else 0.0
    return (2 * s3 + n2 * ratio) / n, (n1 * ratio - 2 * s3) / n
