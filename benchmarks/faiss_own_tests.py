"""Run FAISS's own Python tests for the flat binary index with deephash_engine.faiss_compat standing
in for FAISS's classes.

FAISS's test files are read from a FAISS source tree given on the command line (for example a
checkout of facebookresearch/faiss at the tag of the installed faiss-cpu), copied into a temporary
folder outside this project, and run there by pytest in this process after the names below have
been pointed at faiss_compat in the imported `faiss` module. Everything else in those files (SIMD
level helpers, datasets, popcount) stays FAISS's own.

    python benchmarks/faiss_own_tests.py --faiss-src /path/to/faiss            # with faiss_compat
    python benchmarks/faiss_own_tests.py --faiss-src /path/to/faiss --reference  # FAISS itself

Not part of `make test`: it needs FAISS's sources, which the project never copies.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

import faiss
import pytest

from deephash_engine import faiss_compat

# The FAISS names faiss_compat provides. The I/O functions are shared with FAISS's other binary
# indexes (hash, IVF), so those dispatch: compat indexes and the file types faiss_compat reads go to
# faiss_compat, everything else to FAISS's original function.
CLASSES = ["IndexBinaryFlat", "IndexBinaryIDMap", "IndexBinaryIDMap2", "IDSelectorBatch", "IDSelectorRange",
           "index_binary_factory"]
WRITERS = ["write_index_binary", "serialize_index_binary"]


def file_tag(f) -> bytes:
    """The type tag of a file given by path (FAISS also passes its own IOReader objects)."""
    if not isinstance(f, (str, os.PathLike)):
        return b""
    with open(f, "rb") as handle:
        return handle.read(4)


READERS = {"read_index_binary": file_tag, "deserialize_index_binary": lambda data: bytes(data[:4])}
PATCHED = CLASSES + WRITERS + list(READERS)

# FAISS's tests of those classes: the flat binary index, its I/O, the factory strings, the binary
# id map, and the tests that use the flat index as ground truth. (The other tests in these files
# exercise IVF, HNSW, hashing or PQ indexes.)
FILES = ["common_faiss_tests.py", "test_index_binary.py", "test_binary_io.py", "test_binary_factory.py",
         "test_index_composite.py", "test_binary_hashindex.py"]
SELECTION = [
    ("test_index_binary.py", "TestBinaryFlat"),  # one class per SIMD level FAISS has here
    ("test_binary_io.py", "TestBinaryFlat or TestObjectOwnership"),
    ("test_binary_factory.py", "test_factory_Flat or test_factory_IDMap2_prefix or test_factory_IDMap2_suffix"),
    ("test_index_composite.py", "test_remove_id_map_binary"),
    # FAISS's hash indexes checked against IndexBinaryFlat as the reference: here, ours.
    ("test_binary_hashindex.py", "test_hash or test_multihash"),
]


def patch_faiss() -> None:
    for name in CLASSES:
        setattr(faiss, name, getattr(faiss_compat, name))
    for name in WRITERS:
        ours, theirs = getattr(faiss_compat, name), getattr(faiss, name)
        setattr(faiss, name, lambda index, *rest, ours=ours, theirs=theirs:
                (ours if isinstance(index, faiss_compat.IndexBinary) else theirs)(index, *rest))
    for name, tag_of in READERS.items():
        ours, theirs = getattr(faiss_compat, name), getattr(faiss, name)
        setattr(faiss, name, lambda source, *rest, ours=ours, theirs=theirs, tag_of=tag_of:
                (ours if tag_of(source) in (b"IBxF", b"IBMp", b"IBM2") else theirs)(source, *rest))


class Tally:
    """Counts outcomes over the pytest runs (a test fails if any of its phases fails)."""

    def __init__(self) -> None:
        self.outcomes: dict[str, str] = {}

    def pytest_runtest_logreport(self, report) -> None:
        if report.failed or report.nodeid not in self.outcomes:
            if report.when == "call" or report.failed or report.skipped:
                self.outcomes[report.nodeid] = report.outcome


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--faiss-src", required=True, type=Path, help="root of a FAISS source tree (holds tests/)")
    ap.add_argument("--reference", action="store_true", help="run the same tests against FAISS itself")
    args = ap.parse_args()
    source = args.faiss_src / "tests"
    missing = [f for f in FILES if not (source / f).is_file()]
    if missing:
        ap.error(f"{source} lacks {', '.join(missing)}")

    print(f"faiss {faiss.__version__} from {Path(faiss.__file__).parent}")
    if not args.reference:
        patch_faiss()
        print("faiss." + ", faiss.".join(PATCHED) + " -> deephash_engine.faiss_compat "
              "(I/O functions: for faiss_compat indexes and flat / id map files)")
    folder = Path(tempfile.mkdtemp(prefix="faiss-tests-"))
    try:
        for f in FILES:
            shutil.copy(source / f, folder / f)
        (folder / "pytest.ini").write_text("[pytest]\n")  # keep this project's pytest settings out
        status, tally = 0, Tally()
        for file, keyword in SELECTION:
            print(f"\n== {file} -k '{keyword}'", flush=True)
            code = pytest.main([str(folder / file), "-k", keyword, "-q", "-rA", "-p", "no:cacheprovider",
                                "--rootdir", str(folder), "-c", str(folder / "pytest.ini")], plugins=[tally])
            status = status or int(code)
            sys.modules.pop(Path(file).stem, None)
        counts = {o: list(tally.outcomes.values()).count(o) for o in ("passed", "failed", "skipped")}
        print("\ntotal: " + ", ".join(f"{n} {o}" for o, n in counts.items()))
        return status
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
