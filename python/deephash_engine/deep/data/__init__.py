"""Datasets yielding ``(input, target, index)`` and named, seeded retrieval protocols."""

from .datasets import (
    NORMALIZATION,
    ArrayHashingDataset,
    ImageListHashingDataset,
    ProtocolData,
    load_protocol,
    make_loader,
)
from .protocols import PROTOCOLS, Protocol, Split, get_protocol
from .sources import (
    ImageList,
    LabelledArrays,
    load_cifar10_pool,
    load_fashion_mnist_pool,
    load_mnist_pool,
    one_hot,
    read_image_list,
    stratified_pick,
)

__all__ = [
    "NORMALIZATION", "ArrayHashingDataset", "ImageListHashingDataset", "ProtocolData",
    "load_protocol", "make_loader", "PROTOCOLS", "Protocol", "Split", "get_protocol",
    "ImageList", "LabelledArrays", "load_cifar10_pool", "load_fashion_mnist_pool",
    "load_mnist_pool", "one_hot", "read_image_list", "stratified_pick",
]
