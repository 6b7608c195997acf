"""Principal directions of training data, shared by PCAH, ITQ and SH."""

from __future__ import annotations

import numpy as np


def principal_directions(X: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean (d,), top-k principal directions (d, k) and their variances (k,), largest first.

    The covariance is formed in d x d (never n x n), as X^T X / n - mean mean^T (no centred copy
    of X is made), and diagonalised with a symmetric solver. Each
    direction's sign is fixed so that its largest-magnitude entry is positive, which makes the
    result independent of the LAPACK build.
    """
    n, d = X.shape
    if not 1 <= k <= d:
        raise ValueError(f"nbits: principal directions need 1 <= k <= n_features={d}, got k={k}")
    mean = X.mean(axis=0)
    cov = (X.T @ X - n * np.outer(mean, mean)) / max(n - 1, 1)
    values, vectors = np.linalg.eigh(cov)
    order = np.argsort(values)[::-1][:k]
    values = np.clip(values[order], 0.0, None)
    vectors = vectors[:, order]
    pivot = np.argmax(np.abs(vectors), axis=0)
    signs = np.sign(vectors[pivot, np.arange(k)])
    signs[signs == 0] = 1.0
    return mean, np.ascontiguousarray(vectors * signs), values
