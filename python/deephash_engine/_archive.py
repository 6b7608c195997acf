"""Reading the .npz archives the package writes (saved hashers): every array, no pickle, and one
error type for anything that is not a readable archive."""

from __future__ import annotations

import os
import zipfile
import zlib

import numpy as np

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
