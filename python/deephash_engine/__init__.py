"""deephash_engine: learned binary codes and exact, fast Hamming search.

The search core is compiled C++ (SIMD popcount kernels chosen at run time); this package
re-exports it with NumPy-friendly signatures. Codes are uint8 arrays of shape (n, ceil(nbits / 8)),
any nbits from 1 to MAX_NBITS: bit j is bit j % 8 of byte j / 8 (least significant first), exactly
FAISS's binary layout, and the padding bits nbits .. 8 * code_size - 1 are zero.
"""

from __future__ import annotations

from ._core import (
    MAX_NBITS,
    BinaryIndex,
    DeepHashError,
    FlatIndex,
    IdSelector,
    IndexFileError,
    MIHIndex,
    available_simd_levels,
    build_info,
    cuda_device_count,
    get_num_threads,
    get_thread_spin,
    pack_bits,
    set_num_threads,
    set_simd_level,
    set_thread_spin,
    simd_level,
    simd_plan,
    unpack_bits,
)
from ._load_index import load_index
from .gpu import GpuFlatIndex, cuda_available

__version__ = build_info()["version"]

__all__ = [
    "MAX_NBITS",
    "BinaryIndex",
    "DeepHashError",
    "FlatIndex",
    "GpuFlatIndex",
    "IdSelector",
    "IndexFileError",
    "MIHIndex",
    "__version__",
    "available_simd_levels",
    "build_info",
    "cuda_available",
    "cuda_device_count",
    "get_num_threads",
    "get_thread_spin",
    "load_index",
    "pack_bits",
    "set_num_threads",
    "set_simd_level",
    "set_thread_spin",
    "simd_level",
    "simd_plan",
    "unpack_bits",
]
