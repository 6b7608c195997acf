"""Shared builders for the metrics tests: codes at chosen distances and seeded random cases."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest


def codes_at(distances) -> np.ndarray:
    """8-bit database codes whose distances to the all-zero query are exactly `distances`."""
    return np.array([[(1 << d) - 1] for d in distances], dtype=np.uint8)


def zero_query(n: int = 1) -> np.ndarray:
    return np.zeros((n, 1), dtype=np.uint8)


def random_case(seed, nq, n_db, nbits, labels="class", n_classes=5, n_columns=12, clustered=False):
    """Seeded random codes and labels. clustered=True draws codes near a few centres, which makes
    large tie groups at small distances (the hard case for tie handling)."""
    rng = np.random.default_rng(seed)
    nbytes = nbits // 8
    if clustered:
        centres = rng.integers(0, 256, (4, nbytes), dtype=np.uint8)
        def draw(n):
            base = centres[rng.integers(0, 4, n)]
            flips = np.packbits(rng.random((n, nbits)) < 0.05, axis=1, bitorder="little")
            return base ^ flips
        q, db = draw(nq), draw(n_db)
    else:
        q = rng.integers(0, 256, (nq, nbytes), dtype=np.uint8)
        db = rng.integers(0, 256, (n_db, nbytes), dtype=np.uint8)
    if labels == "class":
        ql = rng.integers(0, n_classes, nq)
        dl = rng.integers(0, n_classes, n_db)
    else:
        ql = (rng.random((nq, n_columns)) < 2.0 / n_columns).astype(np.int64)
        dl = (rng.random((n_db, n_columns)) < 2.0 / n_columns).astype(np.int64)
    return q, db, ql, dl


@pytest.fixture
def mk():
    """The builders above, as a fixture (test modules cannot import conftest under importlib mode)."""
    return SimpleNamespace(codes_at=codes_at, zero_query=zero_query, random_case=random_case)
