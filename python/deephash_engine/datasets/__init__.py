"""Local dataset readers (never download)."""

from .fashion_mnist import CLASSES as FASHION_MNIST_CLASSES
from .fashion_mnist import FashionMNIST, fashion_mnist_dir, load_fashion_mnist
from .idx import read_idx

__all__ = ["FASHION_MNIST_CLASSES", "FashionMNIST", "fashion_mnist_dir", "load_fashion_mnist", "read_idx"]
