"""A FAISS drop-in for binary flat indexes: ``from deephash_engine import faiss_compat as faiss``.

``IndexBinaryFlat``, ``IndexBinaryIDMap`` and ``IndexBinaryIDMap2`` have FAISS's Python surface and
result conventions (int32 distances, int64 labels, -1 / 2147483647 padding, strict range radius,
renumbering after remove_ids on a bare flat index) and run on the engine's FlatIndex. Index files
are FAISS's own format both ways. Differences from FAISS are listed in the README ("Coming from
FAISS").
"""

from __future__ import annotations

import os
import re
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

from . import _io
from ._base import METRIC_L2, IndexBinary
from ._errors import FaissFileError, InvalidArgumentError, UnknownIdError
from ._flat import IndexBinaryFlat
from ._idmap import IndexBinaryIDMap, IndexBinaryIDMap2
from ._selectors import IDSelector, IDSelectorBatch, IDSelectorRange

__all__ = [
    "METRIC_L2",
    "FaissFileError",
    "IDSelector",
    "IDSelectorBatch",
    "IDSelectorRange",
    "IndexBinary",
    "IndexBinaryFlat",
    "IndexBinaryIDMap",
    "IndexBinaryIDMap2",
    "InvalidArgumentError",
    "UnknownIdError",
    "deserialize_index_binary",
    "index_binary_factory",
    "read_index_binary",
    "serialize_index_binary",
    "write_index_binary",
]


def index_binary_factory(d: int, description: str) -> IndexBinary:
    """FAISS's binary factory for the descriptions this module builds: "BFlat", and "IDMap" or
    "IDMap2" before or after it ("IDMap2,BFlat", "BFlat,IDMap"). Anything else raises
    InvalidArgumentError (FAISS: RuntimeError) naming what is supported."""
    if not isinstance(description, str):
        raise TypeError(f"description must be a str, got {type(description).__name__}")
    if description == "BFlat":
        return IndexBinaryFlat(d)
    for wrapper, cls in (("IDMap2", IndexBinaryIDMap2), ("IDMap", IndexBinaryIDMap)):
        m = re.fullmatch(rf"(.+),{wrapper}|{wrapper},(.+)", description)
        if m:
            inner = m.group(1) or m.group(2)
            if inner != "BFlat":
                break
            return cls(IndexBinaryFlat(d))
    raise InvalidArgumentError(
        f"description {description!r} did not generate an index: faiss_compat builds 'BFlat', "
        "'IDMap,BFlat', 'IDMap2,BFlat', 'BFlat,IDMap' and 'BFlat,IDMap2'")


def _image_of(index: IndexBinary) -> _io.FaissImage:
    if isinstance(index, IndexBinaryIDMap):
        kind = _io.IDMAP2 if isinstance(index, IndexBinaryIDMap2) else _io.IDMAP
        return _io.FaissImage(kind, index.d, index.index.reconstruct_n(), index.id_map)
    if isinstance(index, IndexBinaryFlat):
        return _io.FaissImage(_io.FLAT, index.d, index.reconstruct_n(), None)
    raise TypeError(f"write_index_binary takes a faiss_compat index, got {type(index).__name__}")


def _index_of(image: _io.FaissImage) -> IndexBinary:
    flat = IndexBinaryFlat(image.d)
    if image.id_map is None:
        flat.add(image.codes)
        return flat
    cls = IndexBinaryIDMap2 if image.kind == _io.IDMAP2 else IndexBinaryIDMap
    index = cls(flat)
    index.add_with_ids(image.codes, image.id_map)
    return index


def write_index_binary(index: IndexBinary, f: str | os.PathLike[str] | BinaryIO) -> None:
    """Write ``index`` in FAISS's format to a path (atomically: a temporary file in the same
    folder, fsynced, then renamed) or to a binary file object."""
    pieces = _io.image_bytes(_image_of(index))
    if hasattr(f, "write"):
        _io.write_pieces(pieces, f)  # type: ignore[arg-type]
        return
    path = os.fspath(f)  # type: ignore[arg-type]
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as out:
            _io.write_pieces(pieces, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def read_index_binary(f: str | os.PathLike[str], io_flags: int = 0) -> IndexBinary:
    """Read an IndexBinaryFlat / IndexBinaryIDMap / IndexBinaryIDMap2 file that FAISS (or
    write_index_binary) wrote. A damaged or unsupported file raises FaissFileError (a ValueError,
    an IndexFileError and a RuntimeError) naming the problem."""
    if io_flags != 0:
        raise InvalidArgumentError(f"io_flags are not supported (got {io_flags}); the index is read into memory")
    return _index_of(_io.read_file(f))


def serialize_index_binary(index: IndexBinary) -> npt.NDArray[np.uint8]:
    """The bytes write_index_binary would write, as a uint8 array (FAISS's serialize_index_binary)."""
    pieces = _io.image_bytes(_image_of(index))
    return np.concatenate([np.frombuffer(p, dtype=np.uint8) if isinstance(p, bytes)
                           else p.reshape(-1).view(np.uint8) for p in pieces])


def deserialize_index_binary(data: Any) -> IndexBinary:
    """An index from serialize_index_binary's bytes (a uint8 array or any bytes-like object)."""
    buf = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data
    if buf.dtype != np.uint8 or buf.ndim != 1:
        raise TypeError(f"data must be a 1-D uint8 array or bytes, got {buf.dtype} of shape {buf.shape}")
    return _index_of(_io.parse(buf, "serialized index"))
