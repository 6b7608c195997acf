"""SpH: Spherical Hashing (Heo, Lee, He, Chang & Yoon, CVPR 2012), as in Heo's release.

Each bit is a hypersphere: 1 iff ||x - c_i|| <= r_i (1 = inside). On a training subset of N points
the centres start as means of 5 random points; each radius is set so that the sphere holds half the
points, and centres are pushed apart (or pulled together) pairwise until every pair of spheres
shares about a quarter of the points: the loop stops once mean |o_ij - N/4| <= eps_mean * N/4 and
std(o_ij) <= eps_std * N/4 over pairs i < j, or after max_iter rounds (the reference code has no
cap). Codes are compared with plain Hamming distance here, like the common wrappers.
"""

from __future__ import annotations

import numpy as np

from .anchors import squared_distances
from .base import Hasher, check_positive_float, check_positive_int


def sphere_overlaps(inside: np.ndarray) -> np.ndarray:
    """Counts o_ij of training points inside both sphere i and sphere j, from a bool (n, c)."""
    as_float = inside.astype(np.float64)
    return as_float.T @ as_float


class SpH(Hasher):
    """Spherical hashing with the balance criterion of the reference implementation.

    Parameters: ``n_train`` (training subset size, default 20000), ``eps_mean`` (0.10) and
    ``eps_std`` (0.15) for the stopping rule, ``max_iter`` (cap on rounds, default 100), ``seed``.
    After fit: ``centers_`` (nbits, d), ``radii_`` (nbits,), ``n_iter_``, ``converged_`` (the
    criterion held), ``overlap_mean_error_`` and ``overlap_std_`` (both relative to N/4).
    """

    method = "SpH"
    _learned = ("centers_", "radii_", "n_iter_", "converged_", "overlap_mean_error_", "overlap_std_")

    def __init__(
        self,
        nbits: int,
        n_train: int = 20000,
        eps_mean: float = 0.10,
        eps_std: float = 0.15,
        max_iter: int = 100,
        seed: int = 0,
    ) -> None:
        super().__init__(nbits, seed)
        self.n_train = check_positive_int(n_train, "n_train", minimum=2)
        self.eps_mean = check_positive_float(eps_mean, "eps_mean")
        self.eps_std = check_positive_float(eps_std, "eps_std")
        self.max_iter = check_positive_int(max_iter, "max_iter", minimum=0)

    def _min_samples(self) -> int:
        # Each initial centre averages 5 distinct training points.
        return 5

    def _statistics(self, points: np.ndarray, centres: np.ndarray):
        n = points.shape[0]
        sq = squared_distances(points, centres)
        half = n // 2 - 1 if n >= 2 else 0
        radii_sq = np.partition(sq, half, axis=0)[half]
        inside = sq <= radii_sq[None, :]
        overlaps = sphere_overlaps(inside)
        return radii_sq, overlaps

    def _balance(self, overlaps: np.ndarray, n: int) -> tuple[float, float]:
        iu = np.triu_indices(overlaps.shape[0], k=1)
        pair = overlaps[iu]
        if pair.size == 0:  # one sphere (nbits = 1): no pair to balance
            return 0.0, 0.0
        quarter = n / 4.0
        return float(np.mean(np.abs(pair - quarter)) / quarter), float(np.std(pair) / quarter)

    def _fit(self, X: np.ndarray) -> None:
        rng = self._rng()
        n_all = X.shape[0]
        if n_all > self.n_train:
            points = X[np.sort(rng.choice(n_all, size=self.n_train, replace=False))]
        else:
            points = X
        n = points.shape[0]
        c = self.nbits
        centres = np.empty((c, X.shape[1]))
        for i in range(c):
            centres[i] = points[rng.choice(n, size=5, replace=False)].mean(axis=0)
        quarter = n / 4.0
        radii_sq, overlaps = self._statistics(points, centres)
        mean_err, std = self._balance(overlaps, n)
        iterations = 0
        converged = mean_err <= self.eps_mean and std <= self.eps_std
        while not converged and iterations < self.max_iter:
            # Pairwise forces f_ij = 1/2 (o_ij - N/4) / (N/4) (c_i - c_j); c_i += (sum_j f_ij) / c.
            alpha = 0.5 * (overlaps - quarter) / quarter
            np.fill_diagonal(alpha, 0.0)
            forces = alpha.sum(axis=1)[:, None] * centres - alpha @ centres
            centres = centres + forces / c
            radii_sq, overlaps = self._statistics(points, centres)
            mean_err, std = self._balance(overlaps, n)
            iterations += 1
            converged = mean_err <= self.eps_mean and std <= self.eps_std
        self.centers_ = centres
        self.radii_ = np.sqrt(radii_sq)
        self.n_iter_ = np.int64(iterations)
        self.converged_ = np.bool_(converged)
        self.overlap_mean_error_ = np.float64(mean_err)
        self.overlap_std_ = np.float64(std)

    def _learned_layout(self):
        d, c = self.n_features_in_, self.nbits
        return {"centers_": ("float64", (c, d)), "radii_": ("float64", (c,)), "n_iter_": ("int64", ()),
                "converged_": ("bool", ()), "overlap_mean_error_": ("float64", ()),
                "overlap_std_": ("float64", ())}

    def _project(self, X: np.ndarray) -> np.ndarray:
        # radius - distance: >= 0 exactly when the point is inside the sphere.
        dist = np.sqrt(squared_distances(X, self.centers_))
        return self.radii_[None, :] - dist
