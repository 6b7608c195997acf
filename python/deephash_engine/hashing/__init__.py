"""Unsupervised (shallow) learning to hash: one interface for eight classic methods.

Every hasher is built as ``Method(nbits, <method parameters>, seed=0)`` (nbits any length >= 1),
learns with ``fit(X) -> self`` on a float array (n, d), and maps any rows to packed uint8 codes of
shape (n, ceil(nbits / 8)) with ``encode(X)`` (bit j = bit j % 8 of byte j // 8, LSB first; a
projection >= 0 gives 1; the padding bits of the last byte are 0). ``save(path)`` / ``Method.load(path)`` keep a fitted hasher in a
versioned .npz file; ``load_hasher(path)`` loads any method.

Methods: LSH, PCAH, ITQ, SH (spectral), SpH (spherical), AGH (anchor graph, 1 or 2 layers),
DGH (discrete graph), SGH (stochastic generative hashing; training needs PyTorch).
"""

from .agh import AGH
from .base import (
    Hasher,
    HasherFileError,
    HasherFormatError,
    NotFittedError,
    load_hasher,
    registered_methods,
)
from .dgh import DGH
from .itq import ITQ
from .lsh import LSH
from .pcah import PCAH
from .sgh import SGH
from .sh import SH
from .sph import SpH

__all__ = [
    "AGH",
    "DGH",
    "ITQ",
    "LSH",
    "PCAH",
    "SGH",
    "SH",
    "Hasher",
    "HasherFileError",
    "HasherFormatError",
    "NotFittedError",
    "SpH",
    "load_hasher",
    "registered_methods",
]
