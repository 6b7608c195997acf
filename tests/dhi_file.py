"""A reader and writer of the index file format written from docs/format.md alone.

The tests use it to craft files that `save()` never writes (a wrong flag, non-zero padding, a
payload of the wrong size, ...) with a valid checksum, so that each layout rule of the loader is
exercised on its own, and to check that the specification matches what the engine writes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

P1 = 0x9E3779B185EBCA87
P2 = 0xC2B2AE3D27D4EB4F
P3 = 0x165667B19E3779F9
MASK = (1 << 64) - 1
MAGIC = b"DHASHIDX"
HEADER = struct.Struct("<8sIIIIQQQQQ")  # 64 bytes


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & MASK


def _mix(lane: int, word: int) -> int:
    return (_rotl((lane + word * P2) & MASK, 31) * P1) & MASK


def checksum(data: bytes) -> int:
    """The format's 64-bit checksum, step by step as docs/format.md states it."""
    lanes = [(P1 + P2) & MASK, P2, 0, (-P1) & MASK]
    full = len(data) // 32 * 32
    words = struct.unpack_from(f"<{full // 8}Q", data, 0) if full else ()
    for b in range(0, len(words), 4):
        for i in range(4):
            lanes[i] = _mix(lanes[i], words[b + i])
    tail = data[full:] + bytes(32 - (len(data) - full))
    h = (_rotl(lanes[0], 1) + _rotl(lanes[1], 7) + _rotl(lanes[2], 12) + _rotl(lanes[3], 18)) & MASK
    h ^= (len(data) * P3) & MASK
    for t in struct.unpack("<4Q", tail):
        h = _mix(h, t)
    h ^= h >> 33
    h = (h * P2) & MASK
    h ^= h >> 29
    h = (h * P3) & MASK
    h ^= h >> 32
    return h


@dataclass
class IndexFile:
    """The parts of an index file; `to_bytes()` lays them out and appends a valid checksum."""

    version: int
    index_type: int
    nbits: int
    flags: int
    ntotal: int
    next_id: int
    params: bytes
    payload: bytes
    payload_offset: int
    padding: bytes  # the bytes between the parameters and the payload
    params_size: int | None = None  # None: len(params)
    payload_size: int | None = None  # None: len(payload)

    @classmethod
    def parse(cls, data: bytes) -> IndexFile:
        (magic, version, index_type, nbits, flags, ntotal, next_id, params_size, payload_offset,
         payload_size) = HEADER.unpack_from(data, 0)
        assert magic == MAGIC
        assert checksum(data[:-8]) == struct.unpack_from("<Q", data, len(data) - 8)[0]
        params = data[64:64 + params_size]
        return cls(version, index_type, nbits, flags, ntotal, next_id, params,
                   data[payload_offset:payload_offset + payload_size], payload_offset,
                   data[64 + params_size:payload_offset])

    def to_bytes(self) -> bytes:
        params_size = len(self.params) if self.params_size is None else self.params_size
        payload_size = len(self.payload) if self.payload_size is None else self.payload_size
        head = HEADER.pack(MAGIC, self.version, self.index_type, self.nbits, self.flags, self.ntotal,
                           self.next_id, params_size, self.payload_offset, payload_size)
        body = head + self.params + self.padding
        assert len(body) == self.payload_offset, "padding must reach payload_offset"
        body += self.payload
        return body + struct.pack("<Q", checksum(body))

    # Views of a flat payload (codes, zero padding to 8 bytes, int64 ids).
    def code_bytes(self) -> int:
        return self.ntotal * ((self.nbits + 7) // 8)

    def ids(self) -> list[int]:
        start = (self.code_bytes() + 7) // 8 * 8
        return list(struct.unpack_from(f"<{self.ntotal}q", self.payload, start))

    def with_ids(self, ids: list[int]) -> bytes:
        start = (self.code_bytes() + 7) // 8 * 8
        return self.payload[:start] + struct.pack(f"<{len(ids)}q", *ids)
