"""Atomic file replacement for every file the Python side writes (hashers, checkpoints, splits,
reports).

:func:`atomic_write` opens a temporary file in the target's folder and yields it; when the
block ends without an exception the data is flushed and fsync'ed, the temporary file is renamed
over the target (atomic on POSIX and Windows) and the folder is fsync'ed where the platform allows,
so a crash leaves either the old file or the new one, never a torn mix. When the block raises,
the temporary file is removed and the target is untouched.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from typing import IO, Iterator


def _fsync_folder(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # folders cannot be opened on some platforms (Windows)
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _create_temporary(folder: str, name: str) -> tuple[int, str]:
    """A new file beside the target, created with the permissions the umask gives (as ``open``
    would give the target itself; ``tempfile.mkstemp`` would make it private)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = os.path.join(folder, f".{name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", encoding: str | None = None) -> Iterator[IO]:
    """``with atomic_write(path) as fh: fh.write(...)``: replace ``path`` atomically.

    ``mode`` is ``"wb"`` or ``"w"`` (text, ``encoding`` defaults to UTF-8).
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode: expected 'wb' or 'w', got {mode!r}")
    target = os.fspath(path)
    if "\x00" in target:
        raise ValueError(f"path: expected no NUL byte, got {target!r}")
    folder = os.path.dirname(os.path.abspath(target))
    fd, tmp = _create_temporary(folder, os.path.basename(target))
    try:
        text = {} if mode == "wb" else {"encoding": encoding or "utf-8"}
        with os.fdopen(fd, mode, **text) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_folder(folder)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Replace ``path`` atomically with ``text`` (UTF-8)."""
    with atomic_write(path, "w") as fh:
        fh.write(text)
