"""load_index: the engine's own files, and FAISS's binary flat index files (sniffed by their
four-byte type tag)."""

from __future__ import annotations

import os
import stat
from typing import Any

from . import _core
from .faiss_compat import _io
from .faiss_compat._errors import FaissFileError


def load_index(path: str | os.PathLike[str], mmap: bool = False, device: int | None = None) -> Any:
    """Read an index written by ``save()`` (docs/format.md; ``mmap=True`` leaves flat codes in the
    file until the first write), or a FAISS IndexBinaryFlat / IndexBinaryIDMap / IndexBinaryIDMap2
    file, which becomes a FlatIndex read into memory (ids: FAISS's labels; an id map's ids must
    then be unique and >= 0, as FlatIndex requires; faiss_compat.read_index_binary reads any).
    With ``device=N`` the index goes to that CUDA device as a GpuFlatIndex (any index kind: its
    items, ids and next_id)."""
    index = _load(path, mmap)
    if device is None:
        return index
    from .gpu import GpuFlatIndex
    return GpuFlatIndex.from_index(index, device)


def _load(path: str | os.PathLike[str], mmap: bool) -> _core.BinaryIndex:
    tag = _type_tag(path)
    if tag not in _io.READABLE and tag not in _io.OTHER_FAISS_TYPES:
        return _core.load_index(path, mmap)
    image = _io.read_file(path)
    index = _core.FlatIndex(image.d)
    if image.id_map is None:
        index.add(image.codes)
        return index
    try:
        index.add_with_ids(image.codes, image.id_map)
    except ValueError as e:
        raise FaissFileError(
            f"{os.fspath(path)}: this FAISS id map cannot become a FlatIndex ({e}); "
            "read it with deephash_engine.faiss_compat.read_index_binary") from e
    return index


def _type_tag(path: str | os.PathLike[str]) -> bytes:
    """The first four bytes of a regular file; b"" for anything else (a missing or unreadable
    path, a folder, a FIFO, which must not be opened here, a path with a NUL byte): the engine's
    loader reports those."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return b""
        with open(path, "rb") as f:
            return f.read(4)
    except (OSError, ValueError):
        return b""
