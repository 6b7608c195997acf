"""The one home of data loading: local dataset readers (never download), NumPy only.

Fashion-MNIST and IDX files, MNIST, CIFAR-10 and image lists as labelled pools
(:mod:`.pools`), and the registry of pool readers (:data:`POOLS`) that the deep-hashing protocols
(:mod:`deephash_engine.deep.data`) draw their splits from.
"""

from .fashion_mnist import CLASSES as FASHION_MNIST_CLASSES
from .fashion_mnist import FashionMNIST, fashion_mnist_dir, load_fashion_mnist
from .idx import read_idx
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
    "NORMALIZATION", "POOLS", "ImageList", "LabelledArrays", "load_cifar10_pool", "load_fashion_mnist_pool",
    "load_mnist_pool", "one_hot", "read_image_list", "register_pool",
]
