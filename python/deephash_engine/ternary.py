"""Ternary codes searched exactly by the binary engine.

A ternary code has entries in {-1, 0, +1}: DPN's ternary assignment (``deep.losses.dpn.
ternary_assignment``) sets the outputs inside the margin to 0. The DPN authors rank ternary codes
by ``d = (K - a . b) / 2`` (their evaluation code sets the outputs under the threshold to 0 before
the usual ``0.5 (K - a . b)``): a zero entry counts half a mismatch against anything, a zero
against a zero included.

:func:`ternary_codes` turns each entry into four bits, one way for queries and another for the
database::

    entry    query   database
      +1     1111      1111
      -1     0000      0000
       0     1100      1010

so that the Hamming distance between an encoded query and an encoded database item is exactly
``2 (K - a . b) = 4 d`` (per entry: 0 for equal signs, 4 for opposite ones, 2 wherever a zero is;
one shared encoding cannot do it, since a zero would then be at distance 0 from the other side's
zero). Every index
(FlatIndex, MIHIndex, GpuFlatIndex), the metrics and the file format then serve ternary retrieval
unchanged, with the same ranking and ties by id; the codes are 4K bits long.
"""

from __future__ import annotations

import numpy as np

# Four bits per entry (least significant first, as every code here): +1, -1, 0.
_NIBBLES = {
    "query": np.array([0b1111, 0b0000, 0b0011], dtype=np.uint8),
    "database": np.array([0b1111, 0b0000, 0b0101], dtype=np.uint8),
}


def ternary_codes(t, role: str) -> np.ndarray:
    """Packed binary codes (uint8, shape (n, ceil(K / 2)), 4K bits) of ternary codes ``t`` (shape
    (n, K), entries -1, 0 or +1, any numeric dtype or a torch tensor), encoded for ``role`` =
    "query" or "database". The Hamming distance of a query's code to a database item's code is
    ``2 * (K - a . b)``, four times the authors' ternary distance."""
    if role not in _NIBBLES:
        raise ValueError(f"role must be 'query' or 'database', got {role!r}")
    if hasattr(t, "detach"):  # a torch tensor
        t = t.detach().cpu().numpy()
    t = np.asarray(t)
    if t.ndim != 2 or t.shape[1] == 0:
        raise ValueError(f"ternary codes must have shape (n, K) with K >= 1, got {t.shape}")
    bad = ~np.isin(t, (-1, 0, 1))
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ValueError(f"ternary codes hold -1, 0 or +1 only, got {t[row, col].item()!r} at row {row}, entry {col}")
    which = np.where(t > 0, 0, np.where(t < 0, 1, 2))
    nibbles = _NIBBLES[role][which]
    if nibbles.shape[1] % 2:  # an odd K: the last byte's upper four bits are padding (zero)
        nibbles = np.concatenate([nibbles, np.zeros((len(nibbles), 1), np.uint8)], axis=1)
    return np.ascontiguousarray(nibbles[:, 0::2] | (nibbles[:, 1::2] << 4))


def ternary_distance(hamming) -> np.ndarray:
    """The authors' ternary distance ``(K - a . b) / 2`` from the Hamming distance between the
    codes :func:`ternary_codes` gives (a quarter of it)."""
    return np.asarray(hamming) / 4.0
