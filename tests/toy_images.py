"""A tiny learnable image set for short training runs: 8 x 8 grey images of 4 classes, each class
a brighter quadrant over noise. At the default contrast a small CNN separates them in a few steps;
at a low one (30) an untrained network does not, so a run must learn to beat it."""

import numpy as np


def quadrant_images(n: int = 96, seed: int = 0, contrast: int = 150) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (n, 8, 8), one-hot targets float32 (n, 4)); item i is of class i % 4, its
    class's quadrant brightened by `contrast` (noise is 0..59)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 4
    images = rng.integers(0, 60, (n, 8, 8)).astype(np.uint8)
    for c in range(4):
        r, q = divmod(c, 2)
        images[y == c, 4 * r:4 * r + 4, 4 * q:4 * q + 4] += contrast
    return images, np.eye(4, dtype=np.float32)[y]


def quadrant_dataset(n: int = 96, seed: int = 0, flip: bool = True):
    """The same images as an ArrayHashingDataset (needs PyTorch)."""
    from deephash_engine.deep.data.datasets import ArrayHashingDataset

    images, targets = quadrant_images(n, seed)
    return ArrayHashingDataset(images, targets, mean=(0.3,), std=(0.3,), flip=flip)
