"""ITQ: Iterative Quantization (Gong & Lazebnik, CVPR 2011).

Centre, project on the top-nbits principal directions (V = (X - mean) P), then find the
orthogonal rotation R that minimises the quantization loss ||B - V R||_F^2 over B in {-1, +1}:
start from a random orthogonal R and alternate B = sgn(V R) (0 maps to +1) with the orthogonal
Procrustes step R = U_A U_B^T, where B^T V = U_B S U_A^T. Each half-step can only lower the
loss, so the recorded loss never increases. Codes are 1[(x - mean) P R >= 0], always computed
with the final R.
"""

from __future__ import annotations

import numpy as np

from ._pca import principal_directions
from .base import Hasher, check_positive_int


def random_rotation(c: int, rng: np.random.Generator) -> np.ndarray:
    """A random c x c orthogonal matrix (left singular vectors of a Gaussian matrix)."""
    u, _, _ = np.linalg.svd(rng.standard_normal((c, c)))
    return u


def _sign_pattern(values: np.ndarray) -> np.ndarray:
    """+1.0 where values >= 0, else -1.0, in place (adding 0.0 turns -0.0 into +0.0 first)."""
    values += 0.0
    return np.copysign(1.0, values, out=values)


class ITQ(Hasher):
    """PCA followed by a learned rotation that minimises the quantization loss.

    Parameters: ``nbits`` (<= n_features), ``n_iter`` (alternations, default 50 as in the
    reference code), ``seed`` (initial rotation). After fit, ``loss_history_`` holds the loss
    ||B - V R||_F^2 / n after every R update (n_iter values, non-increasing).
    """

    method = "ITQ"
    _learned = ("mean_", "components_", "rotation_", "loss_history_")

    def __init__(self, nbits: int, n_iter: int = 50, seed: int = 0) -> None:
        super().__init__(nbits, seed)
        self.n_iter = check_positive_int(n_iter, "n_iter", minimum=0)

    def _min_samples(self) -> int:
        return self.nbits + 1

    def _fit(self, X: np.ndarray) -> None:
        mean, components, _ = principal_directions(X, self.nbits)
        V = X @ components - mean @ components
        R = random_rotation(self.nbits, self._rng())
        n, c = V.shape
        v_energy = float(np.sum(V * V))
        losses = []
        for _ in range(self.n_iter):
            B = _sign_pattern(V @ R)
            C = B.T @ V
            # Orthogonal Procrustes: R = U_A U_B^T maximises tr(B^T V R) for B^T V = U_B S U_A^T.
            u_b, _, u_a_t = np.linalg.svd(C)
            R = u_a_t.T @ u_b.T
            # ||B - V R||^2 = n c - 2 tr(B^T V R) + ||V||^2 since R is orthogonal.
            losses.append((n * c - 2.0 * float(np.sum(C * R.T)) + v_energy) / n)
        self.mean_ = mean
        self.components_ = components
        self.rotation_ = R
        self.loss_history_ = np.asarray(losses, dtype=np.float64)

    def _learned_layout(self):
        d, c = self.n_features_in_, self.nbits
        return {"mean_": ("float64", (d,)), "components_": ("float64", (d, c)),
                "rotation_": ("float64", (c, c)), "loss_history_": ("float64", (self.n_iter,))}

    def _project(self, X: np.ndarray) -> np.ndarray:
        return (X @ self.components_ - self.mean_ @ self.components_) @ self.rotation_

    def quantization_loss(self, X) -> float:
        """Mean squared distance between V R and its sign pattern for the rows of X."""
        VR = self.project(X)
        return float(np.sum((np.where(VR >= 0, 1.0, -1.0) - VR) ** 2)) / VR.shape[0]
