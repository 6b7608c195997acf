"""LSH: sign random projections (Charikar 2002).

Nothing is learned but the training mean: W has i.i.d. N(0, 1) entries and bit i of x is
1[(x - mean) . w_i >= 0]. Centring keeps the bits balanced on non-negative data such as pixels.
"""

from __future__ import annotations

import numpy as np

from .base import Hasher


class LSH(Hasher):
    """Sign random projections of (optionally) centred data.

    Parameters: ``nbits`` (any length >= 1), ``center`` (subtract the training mean first; default
    True), ``seed`` (draws the projection matrix).
    """

    method = "LSH"
    _learned = ("mean_", "projection_")

    def __init__(self, nbits: int, center: bool = True, seed: int = 0) -> None:
        super().__init__(nbits, seed)
        if not isinstance(center, (bool, np.bool_)):
            raise TypeError(f"center: expected a bool, got {type(center).__name__}")
        self.center = bool(center)

    def _min_samples(self) -> int:
        return 1

    def _fit(self, X: np.ndarray) -> None:
        d = X.shape[1]
        self.mean_ = X.mean(axis=0) if self.center else np.zeros(d)
        self.projection_ = self._rng().standard_normal((d, self.nbits))

    def _learned_layout(self):
        d, c = self.n_features_in_, self.nbits
        return {"mean_": ("float64", (d,)), "projection_": ("float64", (d, c))}

    def _project(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean_) @ self.projection_
