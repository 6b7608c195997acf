"""FAISS's file format for IndexBinaryFlat and IndexBinaryIDMap / IDMap2 over it.

Written from the layout FAISS's index_write.cpp produces (little-endian, no padding):

    fourcc        4 bytes   "IBxF" flat, "IBMp" id map, "IBM2" id map 2
    header       21 bytes   d int32, code_size int32, ntotal int64, is_trained uint8,
                            metric_type int32 (1 for binary indexes)
    flat:         codes     size uint64 (= ntotal * code_size), then the bytes
    id maps:      the inner index (a whole flat record), then size uint64 (= ntotal), ntotal int64 ids

The reader trusts nothing: every length is checked against the bytes left before anything is
allocated, every field against what FAISS writes, and bytes after the index are refused.
"""

from __future__ import annotations

import os
import stat
import struct
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

from ._errors import FaissFileError

FLAT, IDMAP, IDMAP2 = b"IBxF", b"IBMp", b"IBM2"
READABLE = (FLAT, IDMAP, IDMAP2)
# Other binary index records FAISS writes, named in the error when one turns up.
OTHER_FAISS_TYPES = {
    b"IBwF": "IndexBinaryIVF", b"IBFf": "IndexBinaryFromFloat", b"IBHf": "IndexBinaryHNSW",
    b"IBHc": "IndexBinaryHNSWCagra", b"IBHh": "IndexBinaryHash", b"IBHm": "IndexBinaryMultiHash",
}
HEADER = struct.Struct("<iiqBi")
SIZE = struct.Struct("<Q")
METRIC_L2 = 1


@dataclass
class FaissImage:
    """A parsed file: the record type, d, the codes in storage order and (id maps) the id map."""

    kind: bytes
    d: int
    codes: npt.NDArray[np.uint8]
    id_map: npt.NDArray[np.int64] | None


class _Cursor:
    def __init__(self, buf: npt.NDArray[np.uint8], name: str) -> None:
        self.buf, self.name, self.pos = buf, name, 0

    def fail(self, problem: str) -> FaissFileError:
        return FaissFileError(f"{self.name}: {problem}")

    def take(self, nbytes: int, what: str) -> npt.NDArray[np.uint8]:
        left = len(self.buf) - self.pos
        if nbytes > left:
            raise self.fail(f"truncated: {what} needs {nbytes} bytes at offset {self.pos}, {left} left")
        out = self.buf[self.pos:self.pos + nbytes]
        self.pos += nbytes
        return out

    def unpack(self, fmt: struct.Struct, what: str) -> tuple[Any, ...]:
        return fmt.unpack(self.take(fmt.size, what).tobytes())


def _header(cur: _Cursor, kind: bytes) -> tuple[int, int]:
    d, code_size, ntotal, is_trained, metric = cur.unpack(HEADER, f"the {kind.decode()} header")
    if d <= 0 or d % 8:
        raise cur.fail(f"d must be a positive multiple of 8, got {d}")
    if code_size != d // 8:
        raise cur.fail(f"code_size {code_size} does not match d / 8 = {d // 8}")
    if ntotal < 0:
        raise cur.fail(f"ntotal must be >= 0, got {ntotal}")
    if is_trained != 1:
        raise cur.fail(f"is_trained byte must be 1 for a binary flat index, got {is_trained}")
    if metric != METRIC_L2:
        raise cur.fail(f"metric_type must be {METRIC_L2} (what FAISS writes for binary indexes), got {metric}")
    return d, ntotal


def _vector_size(cur: _Cursor, expected: int, what: str) -> None:
    size, = cur.unpack(SIZE, f"the length of {what}")
    if size != expected:
        raise cur.fail(f"{what} holds {size} entries, the header announces {expected}")


def _record(cur: _Cursor, nested: bool) -> FaissImage:
    kind = cur.take(4, "the index type").tobytes()
    if kind not in READABLE:
        if kind in OTHER_FAISS_TYPES:
            raise cur.fail(f"FAISS {OTHER_FAISS_TYPES[kind]} ({kind.decode()}) is not supported: only "
                           "IndexBinaryFlat and IndexBinaryIDMap / IDMap2 over it")
        raise cur.fail(f"not a FAISS binary index of a supported type (starts with {kind!r})")
    if nested and kind != FLAT:
        raise cur.fail(f"an id map must wrap an IndexBinaryFlat, found {kind.decode()} inside")
    d, ntotal = _header(cur, kind)
    if kind == FLAT:
        nbytes = ntotal * (d // 8)
        _vector_size(cur, nbytes, "the code array")
        codes = cur.take(nbytes, f"{ntotal} codes of {d // 8} bytes").reshape(ntotal, d // 8)
        return FaissImage(kind, d, codes, None)
    inner = _record(cur, nested=True)
    if inner.d != d or len(inner.codes) != ntotal:
        raise cur.fail(f"the inner index (d={inner.d}, ntotal={len(inner.codes)}) does not match "
                       f"the id map (d={d}, ntotal={ntotal})")
    _vector_size(cur, ntotal, "the id map")
    id_map = cur.take(8 * ntotal, f"{ntotal} ids").view("<i8")
    return FaissImage(kind, d, inner.codes, id_map)


def parse(buf: npt.NDArray[np.uint8], name: str) -> FaissImage:
    """Validate and parse one whole FAISS binary index held in ``buf`` (views into it are returned:
    copy before the buffer goes)."""
    cur = _Cursor(buf, name)
    image = _record(cur, nested=False)
    if cur.pos != len(buf):
        raise cur.fail(f"{len(buf) - cur.pos} unexpected bytes after the index (at offset {cur.pos})")
    return image


def read_file(path: str | os.PathLike[str]) -> FaissImage:
    """Parse a FAISS binary index file. The codes stay a read-only view of the mapped file (the
    index built from them copies them); the id map is copied."""
    name = os.fspath(path)
    info = os.stat(name)
    if not stat.S_ISREG(info.st_mode):
        raise FaissFileError(f"{name}: not a regular file")
    if info.st_size == 0:
        raise FaissFileError(f"{name}: empty file")
    image = parse(np.memmap(name, dtype=np.uint8, mode="r"), name)
    if image.id_map is not None:
        image.id_map = image.id_map.astype(np.int64)
    return image


def image_bytes(image: FaissImage) -> list[bytes | npt.NDArray[Any]]:
    """The pieces of a file, in order (codes and ids as arrays, not copied into one bytes)."""
    n, code_size = image.codes.shape
    flat = [FLAT, HEADER.pack(image.d, code_size, n, 1, METRIC_L2), SIZE.pack(n * code_size),
            np.ascontiguousarray(image.codes)]
    if image.kind == FLAT:
        return flat
    return [image.kind, HEADER.pack(image.d, code_size, n, 1, METRIC_L2), *flat, SIZE.pack(n),
            np.ascontiguousarray(image.id_map, dtype="<i8")]


def write_pieces(pieces: list[bytes | npt.NDArray[Any]], out: BinaryIO) -> None:
    for piece in pieces:
        out.write(piece if isinstance(piece, bytes) else piece.reshape(-1).data)
