"""DGH: Discrete Graph Hashing (Liu, Mu, Kumar & Chang, NIPS 2014).

Learns the training codes B in {-1, +1}^{n x r} directly on the anchor graph A = Z Lambda^{-1} Z^T
(see `anchors`), maximising

    Q(B, Y) = tr(B^T A B) + rho tr(B^T Y)   subject to   1^T Y = 0, Y^T Y = n I,

where Y is a continuous, balanced and decorrelated relaxation that B is pulled towards. It
alternates two exact-or-monotone steps, so Q never decreases:

* B-step (signed gradient): B <- sgn(2 A B + rho Y), keeping the old bit where the gradient is 0;
  A B is computed as Z (Lambda^{-1} (Z^T B)), never forming A. Q is convex in B, so each step
  cannot lower it. Repeated until B stops changing or ``b_iter`` steps.
* Y-step: Y = sqrt(n) U V^T from the thin SVD of the centred codes J B = U S V^T (the maximiser of
  tr(B^T Y) under the constraints); a rank-deficient J B is completed with random orthonormal
  directions orthogonal to 1 and U.

Initialisation ``init="rotation"`` (the paper's DGH-R, the default) rotates the AGH embedding H
(top non-trivial eigenvectors of A) to fit its signs; ``init="eigen"`` (DGH-I) uses sgn(H).
Out of sample: b(x) = sgn(z(x)^T W) with W = Lambda^{-1} Z^T B, the minimiser of the graph-weighted
Hamming distance to the training codes. Cost per B-step O(n s r); Y-step O(n r^2 + r^3).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .anchors import AnchorGraphHasher, anchor_spectrum
from .base import check_positive_float, check_positive_int

_INITS = ("rotation", "eigen")


def _signs(values: np.ndarray, previous: np.ndarray | None = None) -> np.ndarray:
    """+1 / -1 by sign; zeros keep `previous` (or become +1 without one)."""
    out = np.where(values > 0, 1.0, -1.0)
    zero = values == 0
    if previous is not None:
        out[zero] = previous[zero]
    else:
        out[zero] = 1.0
    return out


class DGH(AnchorGraphHasher):
    """Discrete graph hashing on an anchor graph.

    Parameters: ``n_anchors`` (300 k-means anchors), ``n_neighbors`` (s = 3, as in the DGH demo
    code read), ``sigma`` (None = automatic, as AGH), ``rho`` (0.1), ``init`` ("rotation" or
    "eigen"), ``outer_iter`` (T_G = 20), ``b_iter`` (T_B = 300), ``tol`` (1e-4: stop when Q rises
    by less than this fraction), ``kmeans_iter`` (10), ``seed``.
    After fit, ``objective_history_`` holds -Q(B, Y) / n after the initialisation and after every
    outer iteration: a non-increasing sequence.
    """

    method = "DGH"
    _learned = ("anchors_", "sigma_", "weights_", "objective_history_")

    def __init__(
        self,
        nbits: int,
        n_anchors: int = 300,
        n_neighbors: int = 3,
        sigma: float | None = None,
        rho: float = 0.1,
        init: str = "rotation",
        outer_iter: int = 20,
        b_iter: int = 300,
        tol: float = 1e-4,
        kmeans_iter: int = 10,
        seed: int = 0,
    ) -> None:
        super().__init__(nbits, seed)
        self._set_anchor_params(n_anchors, n_neighbors, sigma, kmeans_iter)
        if self.nbits >= self.n_anchors:
            raise ValueError(f"nbits: DGH needs n_anchors > nbits={self.nbits}, got n_anchors={self.n_anchors}")
        self.rho = check_positive_float(rho, "rho", allow_zero=True)
        if init not in _INITS:
            raise ValueError(f"init: expected one of {_INITS}, got {init!r}")
        self.init = init
        self.outer_iter = check_positive_int(outer_iter, "outer_iter", minimum=0)
        self.b_iter = check_positive_int(b_iter, "b_iter", minimum=1)
        self.tol = check_positive_float(tol, "tol", allow_zero=True)

    def _fit(self, X: np.ndarray) -> None:
        rng = self._rng()
        Z = self._build_graph(X)
        n, r = X.shape[0], self.nbits
        degree, values, vectors = anchor_spectrum(Z, r)
        inv_degree = 1.0 / degree
        H = Z @ ((vectors / np.sqrt(degree)[:, None]) / np.sqrt(values)[None, :])
        B, Y = self._initialise(H, values, n)
        history = [-self._objective(Z, inv_degree, B, Y) / n]
        for _ in range(self.outer_iter):
            B = self._b_step(Z, inv_degree, B, Y)
            Y = self._y_step(B, rng)
            history.append(-self._objective(Z, inv_degree, B, Y) / n)
            if history[-2] - history[-1] <= self.tol * abs(history[-2]):
                break
        self.weights_ = inv_degree[:, None] * (Z.T @ B)
        self.objective_history_ = np.asarray(history)
        self.train_codes_ = B  # the learned +1/-1 training codes (kept in memory, not saved)

    def _initialise(self, H: np.ndarray, values: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        if self.init == "eigen":
            return _signs(H), np.sqrt(n) * H
        # DGH-R: maximise tr(B^T H Theta R) alternately over B (signs) and orthogonal R.
        R = np.eye(H.shape[1])
        HT = H * values[None, :]
        B = _signs(HT @ R)
        for _ in range(100):
            u, _, vt = np.linalg.svd(HT.T @ B)
            R = u @ vt
            B_new = _signs(HT @ R, B)
            if np.array_equal(B_new, B):
                break
            B = B_new
        return B, np.sqrt(n) * (H @ R)

    def _objective(self, Z: sp.csr_matrix, inv_degree: np.ndarray, B: np.ndarray, Y: np.ndarray) -> float:
        ZtB = Z.T @ B
        return float(np.sum(inv_degree[:, None] * ZtB * ZtB) + self.rho * np.sum(B * Y))

    def _b_step(self, Z: sp.csr_matrix, inv_degree: np.ndarray, B: np.ndarray, Y: np.ndarray) -> np.ndarray:
        for _ in range(self.b_iter):
            gradient = 2.0 * (Z @ (inv_degree[:, None] * (Z.T @ B))) + self.rho * Y
            B_new = _signs(gradient, B)
            if np.array_equal(B_new, B):
                break
            B = B_new
        return B

    def _y_step(self, B: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n, r = B.shape
        JB = B - B.mean(axis=0, keepdims=True)
        sq, V = np.linalg.eigh(JB.T @ JB)
        order = np.argsort(sq)[::-1]
        sq, V = sq[order], V[:, order]
        rank = int(np.sum(sq > 1e-10 * max(sq[0], 1.0)))
        U = JB @ (V[:, :rank] / np.sqrt(sq[:rank])[None, :])
        if rank < r:
            # Complete U with random directions orthogonal to 1 and to U (Gram-Schmidt via QR).
            basis = np.concatenate([np.full((n, 1), 1.0 / np.sqrt(n)), U], axis=1)
            extra = rng.standard_normal((n, r - rank))
            extra -= basis @ (basis.T @ extra)
            extra -= basis @ (basis.T @ extra)
            q, _ = np.linalg.qr(extra)
            U = np.concatenate([U, q], axis=1)
        return np.sqrt(n) * (U @ V.T)

    def _learned_layout(self):
        return {**self._anchor_layout(), "weights_": ("float64", ("anchors", self.nbits)),
                "objective_history_": ("float64", ("history",))}

    def _project(self, X: np.ndarray) -> np.ndarray:
        return self._graph(X) @ self.weights_
