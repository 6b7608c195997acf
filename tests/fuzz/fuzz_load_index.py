"""Fuzz ``deephash_engine.load_index``. The input is an index file as it is (first byte not 0x01)
or, first byte 0x01, the recipe of a mutated index built here: a small FlatIndex or MIHIndex is
saved, header fields and payload bytes are overwritten from the input and, mostly, the
checksum is recomputed (docs/format.md) so that the checks after it are reached. The core is
compiled without coverage feedback (only this harness's Python is instrumented), so this recipe
is what takes inputs past the checksum.

Each input is read copied and memory-mapped; whatever loads is searched, range-searched and
reconstructed. Documented errors: OSError (with IndexFileError), DeepHashError, ValueError."""

from __future__ import annotations

import functools
import struct

import atheris
import numpy as np

import _harness

with atheris.instrument_imports(include=["deephash_engine"]):
    import deephash_engine as de

PATH = _harness.scratch_path("input.dhi")
SEED_PATH = _harness.scratch_path("seed.dhi")
ALLOWED = (OSError, de.DeepHashError, ValueError)
MASK = (1 << 64) - 1
P1, P2, P3 = 0x9E3779B185EBCA87, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9
#: (offset, size) of the header fields: version, type, nbits, flags, ntotal, next_id,
#: params_size, payload_offset, payload_size.
FIELDS = ((8, 4), (12, 4), (16, 4), (20, 4), (24, 8), (32, 8), (40, 8), (48, 8), (56, 8))
INTERESTING = (0, 1, 2, 7, 8, 16, 63, 64, 65, 255, 1 << 20, (1 << 31) - 1, 1 << 32, (1 << 63) - 1,
               1 << 63, MASK)


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & MASK


def checksum(data: bytes) -> int:
    lanes = [(P1 + P2) & MASK, P2, 0, (-P1) & MASK]
    whole = len(data) // 32 * 32
    for start in range(0, whole, 32):
        words = struct.unpack_from("<4Q", data, start)
        lanes = [(_rotl((lane + w * P2) & MASK, 31) * P1) & MASK for lane, w in zip(lanes, words)]
    tail = struct.unpack("<4Q", data[whole:] + bytes(32 - (len(data) - whole)))
    h = (_rotl(lanes[0], 1) + _rotl(lanes[1], 7) + _rotl(lanes[2], 12) + _rotl(lanes[3], 18)) & MASK
    h ^= (len(data) * P3) & MASK
    for t in tail:
        h = (_rotl((h + t * P2) & MASK, 31) * P1) & MASK
    h ^= h >> 33
    h = (h * P2) & MASK
    h ^= h >> 29
    h = (h * P3) & MASK
    return h ^ (h >> 32)


def _seed_index(fdp) -> bytes:
    """The bytes of a small saved index, chosen by the input (built once per choice: saving
    fsyncs, which would otherwise dominate every run)."""
    nbits = fdp.ConsumeIntInRange(1, 64)  # any length: whole bytes or not
    fewest = -(-nbits // 32)
    mih_m = fdp.ConsumeIntInRange(fewest, max(fewest, nbits // 8)) if fdp.ConsumeBool() else 0
    n = fdp.ConsumeIntInRange(0, 12)
    return _saved_index(fdp.ConsumeIntInRange(0, 3), nbits, mih_m, n, fdp.ConsumeBool(),
                        bool(n) and fdp.ConsumeBool())


@functools.lru_cache(maxsize=4096)
def _saved_index(seed: int, nbits: int, mih_m: int, n: int, caller_ids: bool, remove_one: bool) -> bytes:
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 256, (n, (nbits + 7) // 8), dtype=np.uint8)
    if nbits % 8 and n:
        codes[:, -1] &= (1 << (nbits % 8)) - 1  # padding bits zero
    index = de.MIHIndex(nbits, mih_m) if mih_m else de.FlatIndex(nbits)
    if caller_ids:
        index.add_with_ids(codes, rng.permutation(4 * n + 1)[:n].astype(np.int64))
    else:
        index.add(codes)
    if remove_one:
        index.remove_ids(index.search(codes[:1], 1)[1][0])
    index.save(SEED_PATH)
    with open(SEED_PATH, "rb") as fh:
        return fh.read()


@atheris.instrument_func
def built_index(fdp) -> bytes:
    data = bytearray(_seed_index(fdp))
    for _ in range(fdp.ConsumeIntInRange(0, 3)):
        offset, size = FIELDS[fdp.ConsumeIntInRange(0, len(FIELDS) - 1)]
        value = (INTERESTING[fdp.ConsumeIntInRange(0, len(INTERESTING) - 1)] if fdp.ConsumeBool()
                 else fdp.ConsumeInt(8 * size))
        data[offset:offset + size] = (value % (1 << (8 * size))).to_bytes(size, "little")
    for _ in range(fdp.ConsumeIntInRange(0, 3)):
        if len(data) > 8:
            data[fdp.ConsumeIntInRange(0, len(data) - 9)] = fdp.ConsumeIntInRange(0, 255)
    if fdp.ConsumeBool() and len(data) > 8:
        cut = fdp.ConsumeIntInRange(8, len(data))
        data = data[:cut]
    if fdp.ConsumeIntInRange(0, 7) and len(data) >= 8:
        data[-8:] = checksum(bytes(data[:-8])).to_bytes(8, "little")
    return bytes(data)


@atheris.instrument_func
def use(index) -> None:
    if index.ntotal > 100_000 or index.nbits > 4096:
        return
    query = np.zeros((2, index.code_size), np.uint8)
    query[1] = de.pack_bits(np.ones(index.nbits, bool))[0]  # every code bit set, no padding bit
    distances, ids = index.search(query, 3)
    assert distances.shape == ids.shape == (2, 3)
    lims, _, found = index.range_search(query, 2)
    assert lims.shape == (3,) and found.shape[0] == lims[-1]
    if index.ntotal:
        assert index.reconstruct(int(ids[0, 0])).shape == (index.code_size,)


@atheris.instrument_func
def check(data: bytes) -> None:
    if data[:1] == b"\x01":
        data = built_index(atheris.FuzzedDataProvider(data[1:]))
    _harness.write(PATH, data)
    for mmap in (False, True):
        try:
            index = de.load_index(PATH, mmap=mmap)
        except ALLOWED:
            continue
        use(index)
        del index


if __name__ == "__main__":
    _harness.main(check)
