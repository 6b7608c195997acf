"""Errors of the FAISS drop-in.

FAISS signals the same mistake differently depending on where it is caught: its Python layer uses
bare ``assert`` (AssertionError), its C++ core throws RuntimeError, and it rarely checks a position
at all. Code written for FAISS catches those; code written for deephash_engine catches ValueError,
KeyError, IndexError and IndexFileError. Each error below derives from both sets, so either kind of
caller keeps working.
"""

from __future__ import annotations

from .._core import IndexFileError


class InvalidArgumentError(ValueError, AssertionError, RuntimeError):
    """A bad argument: wrong shape or width, k <= 0, bad d, an unknown factory description.

    FAISS raises AssertionError (Python layer) or RuntimeError (C++ core) for these."""


class UnknownIdError(KeyError, IndexError, RuntimeError):
    """A position or id the index does not hold (FAISS: RuntimeError for an id map, and no check at
    all for a flat index, which reads past its codes)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class FaissFileError(IndexFileError, ValueError, RuntimeError):
    """A FAISS index file or buffer that is damaged, truncated or of a kind this module does not
    read (FAISS raises RuntimeError)."""
