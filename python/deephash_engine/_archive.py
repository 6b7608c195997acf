"""Reading the .npz archives the package writes (saved hashers): every array, no pickle, one
error type for anything that is not a readable archive, and the format tag and version checked."""

from __future__ import annotations

import os
import zipfile
import zlib

import numpy as np

#: The format tag of a saved ``deep.label_free.FeatureHasher``, here so that code without PyTorch
#: (the service's encoder loader) can tell such a file from a ``hashing.Hasher`` one.
FEATURE_HASHER_FORMAT = "deephash_engine.feature_hasher"

#: What reading a damaged or foreign archive raises: zipfile reports an unsupported zip version,
#: compression or encryption as NotImplementedError or RuntimeError, a bad deflate stream as
#: zlib.error.
ARCHIVE_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, NotImplementedError,
                  RuntimeError, zlib.error)


def read_archive(path: str | os.PathLike, error: type[Exception], what: str) -> dict[str, np.ndarray]:
    """Every array of the .npz archive at ``path`` (FileNotFoundError as is); anything else that
    stops the reading raises ``error`` saying the file is not ``what``."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except FileNotFoundError:
        raise
    except ARCHIVE_ERRORS as exc:
        raise error(f"{os.fspath(path)}: not {what} (expected an .npz archive): {exc}") from exc


def read_tagged_archive(path: str | os.PathLike, error: type[Exception], what: str, tag: str,
                        max_version: int) -> dict[str, np.ndarray]:
    """:func:`read_archive`, then ``error`` unless the archive's ``format`` is ``tag`` and its
    ``format_version`` an integer in [1, max_version]."""
    contents = read_archive(path, error, what)
    got = str(contents["format"]) if "format" in contents else "none"
    if got != tag:
        raise error(f"{os.fspath(path)}: not {what} (expected format tag {tag!r}, got {got!r})")
    stored = contents.get("format_version", np.array(-1))
    version = int(stored) if stored.shape == () and stored.dtype.kind in "iu" else -1
    if not 1 <= version <= max_version:
        raise error(f"{os.fspath(path)}: format version {version} is not supported (this build reads 1..{max_version})")
    return contents
