"""Shared data for the hashing tests: a seeded synthetic mixture and a Fashion-MNIST subset."""

from __future__ import annotations

import numpy as np
import pytest

from deephash_engine.datasets import fashion_mnist_dir, load_fashion_mnist
from deephash_engine.hashing import AGH, DGH, ITQ, LSH, PCAH, SGH, SH, SpH


def make_blobs(n: int, d: int, n_clusters: int, seed: int, spread: float = 1.0):
    """Gaussian clusters with random centres: (X float64 (n, d), labels int64 (n,))."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(n_clusters, d))
    labels = rng.integers(0, n_clusters, size=n)
    X = centres[labels] + rng.normal(scale=spread, size=(n, d))
    return X, labels.astype(np.int64)


# One small configuration per method, quick to fit on a few hundred points of dimension 24.
SMALL_CONFIGS = {
    "LSH": lambda seed=0: LSH(16, seed=seed),
    "PCAH": lambda seed=0: PCAH(16, seed=seed),
    "ITQ": lambda seed=0: ITQ(16, seed=seed),
    "SH": lambda seed=0: SH(16, seed=seed),
    "SpH": lambda seed=0: SpH(16, n_train=300, seed=seed),
    "AGH1": lambda seed=0: AGH(16, n_anchors=40, seed=seed),
    "AGH2": lambda seed=0: AGH(16, n_anchors=40, layers=2, seed=seed),
    "DGH": lambda seed=0: DGH(16, n_anchors=40, seed=seed),
    "SGH": lambda seed=0: SGH(16, n_iter=30, batch_size=100, device="cpu", num_threads=1, seed=seed),
}
# Methods whose result depends on the seed (PCAH and SH are deterministic functions of the data).
RANDOMISED = ("LSH", "ITQ", "SpH", "AGH1", "AGH2", "DGH", "SGH")


@pytest.fixture(scope="session")
def blobs():
    return make_blobs(600, 24, 6, seed=1)


@pytest.fixture(scope="session")
def fashion():
    """The Fashion-MNIST arrays, or None when the dataset is not installed."""
    return load_fashion_mnist() if fashion_mnist_dir() is not None else None


@pytest.fixture(scope="session")
def fmnist(fashion):
    """3,000 training images (database) and 300 test images (queries), pixels in [0, 1]."""
    if fashion is None:
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
    db = fashion.train_images[:3000].reshape(3000, -1) / 255.0
    queries = fashion.test_images[:300].reshape(300, -1) / 255.0
    return db, fashion.train_labels[:3000], queries, fashion.test_labels[:300]


@pytest.fixture(scope="session")
def labelled_data(fashion):
    """(db, db_labels, queries, query_labels): the Fashion-MNIST subset above or, when the dataset
    is absent, a clustered stand-in (10 anisotropic Gaussian clusters in 64-d)."""
    if fashion is not None:
        db = fashion.train_images[:3000].reshape(3000, -1) / 255.0
        queries = fashion.test_images[:300].reshape(300, -1) / 255.0
        return db, fashion.train_labels[:3000], queries, fashion.test_labels[:300]
    rng = np.random.default_rng(0)
    basis = rng.normal(size=(8, 64))
    centres = rng.normal(scale=3.0, size=(10, 8)) @ basis
    labels = rng.integers(0, 10, size=3300)
    X = centres[labels] + rng.normal(scale=2.0, size=(3300, 8)) @ basis + rng.normal(size=(3300, 64))
    return X[:3000], labels[:3000], X[3000:], labels[3000:]


def pytest_generate_tests(metafunc):
    """`method_name` runs a test once per method; `random_method_name` once per seeded method."""
    if "method_name" in metafunc.fixturenames:
        metafunc.parametrize("method_name", list(SMALL_CONFIGS))
    if "random_method_name" in metafunc.fixturenames:
        metafunc.parametrize("random_method_name", RANDOMISED)


@pytest.fixture(scope="session")
def small_hasher():
    """small_hasher(name, seed=0) -> an unfitted hasher of that method in its small configuration."""
    return lambda name, seed=0: SMALL_CONFIGS[name](seed)


@pytest.fixture(scope="session")
def unpack():
    """unpack(codes) -> (n, nbits) 0/1 bits, bit j = bit j % 8 of byte j // 8 (LSB first)."""
    return lambda codes: np.unpackbits(codes, axis=1, bitorder="little")
