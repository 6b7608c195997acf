"""Packing real-valued projections into codes, by the package-wide bit contract.

Bit j of a code is bit (j % 8) of byte (j // 8), least significant bit first, and a real value x
becomes bit 1 iff x >= 0. Every hasher computes real projections and hands them to `pack_signs`,
which calls the compiled `deephash_engine.pack_bits`.
"""

from __future__ import annotations

import numpy as np

from .. import pack_bits


def pack_signs(values: np.ndarray) -> np.ndarray:
    """Pack the signs of a real (n, nbits) array into C-contiguous uint8 codes (n, ceil(nbits / 8)),
    the padding bits of the last byte 0."""
    return pack_bits(np.ascontiguousarray(values, dtype=np.float64))
