"""SH: Spectral Hashing (Weiss, Torralba & Fergus, NIPS 2008), as in the authors' release.

Project centred data on its top min(nbits, d) principal directions; treat each direction j as a
uniform distribution on [mn_j, mx_j] (training minimum and maximum, range R_j). The analytical
eigenfunctions of the 1-D Laplacian on that interval are cos(k pi (t - mn_j) / R_j), k = 1, 2, ...
with eigenvalue growing with (k / R_j)^2. Enumerate those modes over every direction, sort them by
(k / R_j)^2 ascending (the smoothest first), and keep the first nbits. Bit i is
1[cos(k_i pi (t_{j_i} - mn_{j_i}) / R_{j_i}) >= 0].
"""

from __future__ import annotations

import numpy as np

from ._pca import principal_directions
from .base import Hasher

_EPS = np.finfo(np.float64).eps


class SH(Hasher):
    """Spectral hashing with the analytical eigenfunctions of a uniform box.

    After fit: ``mean_``, ``components_`` (d, npca), ``lower_`` and ``range_`` per direction,
    ``modes_`` (nbits, 2) integer rows (direction, frequency k) in eigenvalue order and
    ``eigenvalues_`` (the (k / R)^2 of each kept mode, non-decreasing).
    """

    method = "SH"
    _learned = ("mean_", "components_", "lower_", "range_", "modes_", "eigenvalues_")

    def __init__(self, nbits: int, seed: int = 0) -> None:
        super().__init__(nbits, seed)

    def _min_samples(self) -> int:
        return 2

    def _fit(self, X: np.ndarray) -> None:
        npca = min(self.nbits, X.shape[1], X.shape[0] - 1)
        mean, components, _ = principal_directions(X, npca)
        T = (X - mean) @ components
        lower = T.min(axis=0) - _EPS
        upper = T.max(axis=0) + _EPS
        span = upper - lower
        if np.any(span <= 2 * _EPS):
            raise ValueError("X: spectral hashing needs variation along every kept principal direction")
        # Enough frequencies per direction that the nbits smoothest modes are all enumerated.
        max_mode = np.ceil((self.nbits + 1) * span / span.max()).astype(np.int64)
        dims, freqs = [], []
        for j in range(npca):
            ks = np.arange(1, max_mode[j] + 1)
            dims.append(np.full(ks.shape, j))
            freqs.append(ks)
        dims = np.concatenate(dims)
        freqs = np.concatenate(freqs)
        eig = (freqs / span[dims]) ** 2
        order = np.lexsort((freqs, dims, eig))[: self.nbits]
        if order.size < self.nbits:
            raise ValueError(f"nbits: only {order.size} spectral modes available, asked for {self.nbits}")
        self.mean_ = mean
        self.components_ = components
        self.lower_ = lower
        self.range_ = span
        self.modes_ = np.stack([dims[order], freqs[order]], axis=1).astype(np.int64)
        self.eigenvalues_ = eig[order]

    def _learned_layout(self):
        d, c = self.n_features_in_, self.nbits
        return {"mean_": ("float64", (d,)), "components_": ("float64", (d, "npca")),
                "lower_": ("float64", ("npca",)), "range_": ("float64", ("npca",)),
                "modes_": ("int64", (c, 2)), "eigenvalues_": ("float64", (c,))}

    def _check_learned_values(self):
        npca = self.components_.shape[1]
        if npca > min(self.nbits, self.n_features_in_):
            return f"learned/components_: expected at most min(nbits, n_features_in) directions, got {npca}"
        if not np.all(self.range_ > 0):
            return "learned/range_: expected positive ranges"
        dims, freqs = self.modes_[:, 0], self.modes_[:, 1]
        if dims.min() < 0 or dims.max() >= npca or freqs.min() < 1:
            return f"learned/modes_: expected directions in [0, {npca}) and frequencies >= 1"
        return None

    def _project(self, X: np.ndarray) -> np.ndarray:
        T = (X - self.mean_) @ self.components_
        dims = self.modes_[:, 0]
        freqs = self.modes_[:, 1]
        phase = (T[:, dims] - self.lower_[dims]) / self.range_[dims]
        return np.cos(np.pi * freqs * phase)
