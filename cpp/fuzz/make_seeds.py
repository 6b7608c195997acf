"""Writes the seed corpus of the loader harness: small files as save() writes them, one per shape
the format can take (flat and MIH, implicit, increasing and shuffled ids, tombstones dropped on
save, an id at INT64_MAX, the widest step of nbits the seeds can afford). Run from the project
root with the package installed:

    python cpp/fuzz/make_seeds.py cpp/fuzz/corpus/load
"""

import shutil
import sys
from pathlib import Path

import numpy as np

import deephash_engine as de

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures"


def seeds():
    rng = np.random.default_rng(7)

    def codes(n, nbits):
        return rng.integers(0, 256, (n, nbits // 8), dtype=np.uint8)

    yield "flat_empty_8", de.FlatIndex(8)
    index = de.FlatIndex(16)
    index.add(codes(12, 16))
    yield "flat_implicit_16", index
    index = de.FlatIndex(24)
    index.add(codes(9, 24))
    index.remove_ids([0, 4])
    yield "flat_removed_24", index
    index = de.FlatIndex(40)
    index.add_with_ids(codes(6, 40), [50, 3, 9, 1000, 7, 2])
    yield "flat_shuffled_40", index
    index = de.FlatIndex(64)
    index.add_with_ids(codes(2, 64), [1, 2**63 - 1])
    yield "flat_int64_max_64", index
    index = de.FlatIndex(256)
    index.add(codes(5, 256))
    yield "flat_256", index
    index = de.MIHIndex(32, m=2)
    index.add(codes(30, 32))
    index.remove_ids([5, 6])
    yield "mih_m2_32", index
    index = de.MIHIndex(64)
    index.add_with_ids(codes(10, 64), list(range(20, 0, -2)))
    yield "mih_auto_64", index


def main(out):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name, index in seeds():
        index.save(out / f"{name}.dhi")
    shutil.copy(FIXTURES / "flat_v1.dhi", out / "fixture_flat_v1.dhi")


if __name__ == "__main__":
    main(sys.argv[1])
