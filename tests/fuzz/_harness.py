"""Shared driver of the Python loader fuzz harnesses (atheris, libFuzzer's engine for Python).

Each harness gives a ``check(data: bytes)`` that writes the input where the loader reads it,
calls the loader, uses what loaded, and lets through only the exception types the loader
documents. Any other exception (TypeError, KeyError, IndexError, ...) propagates: atheris
reports it as a crash and writes the input to ``crash-<sha1>``. A crash of the process itself
(a signal in the compiled core) is reported by libFuzzer the same way.

Run one by hand: ``python tests/fuzz/fuzz_hasher_load.py [libFuzzer flags] [corpus folders]``
(``make fuzz-python`` runs each for a while on a corpus seeded by ``seed_corpus.py``).
"""

from __future__ import annotations

import os
import sys
import tempfile
from typing import Callable


def scratch_path(name: str) -> str:
    """A file path in a private folder that lives as long as the process."""
    folder = tempfile.mkdtemp(prefix="deephash-fuzz-")
    return os.path.join(folder, name)


def write(path: str, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)


def main(check: Callable[[bytes], None]) -> None:
    import atheris

    atheris.Setup(sys.argv, check)
    atheris.Fuzz()
