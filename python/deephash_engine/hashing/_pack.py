"""Packing real-valued projections into codes, by the package-wide bit contract.

Bit j of a code is bit (j % 8) of byte (j // 8), least significant bit first, and a real value x
becomes bit 1 iff x >= 0. Every hasher computes real projections and hands them to `pack_signs`.
"""

from __future__ import annotations

import numpy as np


def pack_signs(values: np.ndarray) -> np.ndarray:
    """Pack the signs of a real (n, nbits) array into C-contiguous uint8 codes (n, nbits // 8)."""
    values = np.asarray(values)
    return np.ascontiguousarray(np.packbits(values >= 0, axis=1, bitorder="little"))
