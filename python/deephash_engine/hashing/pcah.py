"""PCAH: PCA hashing.

Bit i of x is 1[(x - mean) . p_i >= 0], where p_1, p_2, ... are the principal directions of the
training data, largest variance first. Needs nbits <= n_features; quality falls as nbits grows
because the later directions carry little variance.
"""

from __future__ import annotations

import numpy as np

from ._pca import principal_directions
from .base import Hasher


class PCAH(Hasher):
    """Signs of the top-nbits principal components (centred with the training mean)."""

    method = "PCAH"
    _learned = ("mean_", "components_", "explained_variance_")

    def __init__(self, nbits: int, seed: int = 0) -> None:
        super().__init__(nbits, seed)

    def _min_samples(self) -> int:
        return self.nbits + 1

    def _fit(self, X: np.ndarray) -> None:
        self.mean_, self.components_, self.explained_variance_ = principal_directions(X, self.nbits)

    def _learned_layout(self):
        d, c = self.n_features_in_, self.nbits
        return {"mean_": ("float64", (d,)), "components_": ("float64", (d, c)),
                "explained_variance_": ("float64", (c,))}

    def _project(self, X: np.ndarray) -> np.ndarray:
        return X @ self.components_ - self.mean_ @ self.components_
