"""The one home of data loading: local dataset readers (never download), NumPy only.

Fashion-MNIST and IDX files, MNIST, CIFAR-10 and image lists as labelled pools
(:mod:`.pools`), the registry of pool readers (:data:`POOLS`) that the deep-hashing protocols
(:mod:`deephash_engine.deep.data`) draw their splits from, and multi-label 2 x 2 mosaics built
from a single-label pool (:mod:`.mosaic`).
"""

from .fashion_mnist import CLASSES as FASHION_MNIST_CLASSES
from .fashion_mnist import FashionMNIST, fashion_mnist_dir, load_fashion_mnist
from .idx import read_idx
from .mosaic import MosaicPool, build_mosaic_pool, tile_2x2
from .pools import (
    NORMALIZATION,
    POOLS,
    ImageList,
    LabelledArrays,
    load_cifar10_pool,
    load_fashion_mnist_pool,
    load_mnist_pool,
    one_hot,
    read_image_list,
    register_pool,
)

__all__ = [
    "FASHION_MNIST_CLASSES", "FashionMNIST", "fashion_mnist_dir", "load_fashion_mnist", "read_idx",
    "MosaicPool", "build_mosaic_pool", "tile_2x2",
    "NORMALIZATION", "POOLS", "ImageList", "LabelledArrays", "load_cifar10_pool", "load_fashion_mnist_pool",
    "load_mnist_pool", "one_hot", "read_image_list", "register_pool",
]
