"""Synthetic code sets for the benchmarks (shared by every bench_*.py script).

- uniform: every bit an independent fair coin (the worst case for multi-index hashing);
- structured: signs of random projections of a Gaussian mixture, which behave like learned codes
  (correlated bits, clusters, many near neighbours).
Queries are fresh draws from the same distribution as the database, never database members.
"""

from __future__ import annotations

import numpy as np


class GaussianMixtureHasher:
    """A Gaussian mixture in `dim` dimensions and `nbits` random projections, fixed by `seed`."""

    def __init__(self, nbits: int, seed: int, dim: int = 32, clusters: int = 64, spread: float = 0.35):
        rng = np.random.default_rng(seed)
        self.centres = rng.standard_normal((clusters, dim)).astype(np.float32)
        self.proj = rng.standard_normal((dim, nbits)).astype(np.float32)
        self.spread = spread

    def sample(self, n: int, rng: np.random.Generator, chunk: int = 1 << 18) -> np.ndarray:
        nbits = self.proj.shape[1]
        out = np.empty((n, nbits // 8), dtype=np.uint8)
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            points = self.centres[rng.integers(0, len(self.centres), m)]
            points = points + self.spread * rng.standard_normal(points.shape).astype(np.float32)
            out[start:start + m] = np.packbits(points @ self.proj >= 0, axis=1, bitorder="little")
        return out


def make_codes(kind: str, n: int, nbits: int, seed: int, role: str = "database") -> np.ndarray:
    """`role` = "database" or "queries": the same distribution, independent draws."""
    draw = np.random.default_rng([seed, 0 if role == "database" else 1])
    if kind == "uniform":
        return draw.integers(0, 256, (n, nbits // 8), dtype=np.uint8)
    if kind == "structured":
        return GaussianMixtureHasher(nbits, seed).sample(n, draw)
    raise ValueError(f"kind must be 'uniform' or 'structured', got {kind!r}")
