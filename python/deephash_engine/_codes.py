"""The code layout in Python: any code length nbits >= 1 is stored in ceil(nbits / 8) bytes, bit j
being bit j % 8 of byte j // 8, and the padding bits nbits .. 8 * code_size - 1 (the high bits of the
last byte) are zero. These mirror the core's helpers (cpp/include/deephash/codes.hpp) for the parts
of the package that see codes before an index does (the HTTP service, the sharded index)."""

from __future__ import annotations

import numpy as np


def code_size_for(nbits: int) -> int:
    """Bytes per code of nbits bits: ceil(nbits / 8)."""
    return (int(nbits) + 7) // 8


def padding_mask(nbits: int) -> int:
    """The padding bits of a code's last byte as a mask (0 when nbits is a multiple of 8)."""
    return (0xFF << (nbits % 8)) & 0xFF if nbits % 8 else 0


def padding_error(last_byte: int, nbits: int, row: int | None = None) -> str:
    """The message for a code whose last byte sets padding bits, worded as the core words it."""
    cs = code_size_for(nbits)
    set_bits = [8 * (cs - 1) + b for b in range(8) if (last_byte & padding_mask(nbits)) >> b & 1]
    where = "" if row is None else f"row {row} "
    return (f"{where}sets padding bit{'s' if len(set_bits) > 1 else ''} {', '.join(map(str, set_bits))} "
            f"(a {nbits}-bit code in {cs} bytes: bits {nbits}..{8 * cs - 1} must be zero)")


def check_padding(codes: np.ndarray, nbits: int, name: str) -> None:
    """Raise ValueError naming ``name``, the row and the bits when a row of (n, code_size) uint8
    ``codes`` sets a padding bit. Reads only the last byte of each row."""
    mask = padding_mask(nbits)
    if not mask or codes.shape[0] == 0:
        return
    bad = np.flatnonzero(codes[:, -1] & mask)
    if bad.size:
        row = int(bad[0])
        raise ValueError(f"{name}: {padding_error(int(codes[row, -1]), nbits, row)}")


def nbits_of(codes: np.ndarray, nbits: int | None, name: str = "codes") -> int:
    """The code length of packed (n, code_size) ``codes``: 8 bits per byte when ``nbits`` is None,
    else ``nbits``, which must fit code_size (ValueError naming ``name`` otherwise)."""
    cs = codes.shape[1]
    if nbits is None:
        return 8 * cs
    if isinstance(nbits, bool) or not isinstance(nbits, (int, np.integer)) or nbits < 1:
        raise ValueError(f"nbits must be an int >= 1, got {nbits!r}")
    if code_size_for(nbits) != cs:
        raise ValueError(f"{name} have {cs} bytes per code; codes of {nbits} bits have {code_size_for(nbits)}")
    return int(nbits)
