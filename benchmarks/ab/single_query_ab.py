"""A/B of two builds of deephash_engine on single-query k-NN latency, in alternating processes.

Each build is a folder that holds a `deephash_engine` package (for a commit:
`git worktree add /tmp/old <commit> && pip install --no-deps --target /tmp/old-pkg /tmp/old`).
The same codes (benchmarks/codes_data.py, queries drawn from the database's distribution) are
written once; each round starts one process per build, in turn, and each process times every
cell: the median latency of single-query `FlatIndex.search` calls, best of a few passes. A cell's
figure is the best over rounds, so a slow spell of the machine hits both builds alike.

    python benchmarks/ab/single_query_ab.py --builds old=/tmp/old-pkg new=/tmp/new-pkg
    python benchmarks/ab/single_query_ab.py --builds old=... new=... --bits 16 256 --sizes 10000 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from codes_data import make_codes  # noqa: E402


def worker(folder: Path, cells: list[list], threads: int, queries: int, passes: int) -> None:
    import deephash_engine as de

    de.set_num_threads(threads)
    out = {}
    for kind, nbits, n in cells:
        stem = folder / f"{kind}_{nbits}_{n}"
        db, qs = np.load(f"{stem}_db.npy"), np.load(f"{stem}_q.npy")[:queries]
        index = de.FlatIndex(nbits)
        index.add(db)
        index.search(qs[:1], 10)
        best = float("inf")
        for _ in range(passes):
            lat = []
            for i in range(len(qs)):
                t0 = time.perf_counter()
                index.search(qs[i:i + 1], 10)
                lat.append(time.perf_counter() - t0)
            best = min(best, float(np.median(lat)))
        out[f"{kind}/{nbits}/{n}"] = best
    print(json.dumps(out))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--builds", nargs=2, required=True, metavar="NAME=DIR",
                   help="two builds: a name and a folder holding the deephash_engine package")
    p.add_argument("--kinds", nargs="+", default=["structured", "uniform"])
    p.add_argument("--bits", nargs="+", type=int, default=[16, 32, 64, 128, 256, 512])
    p.add_argument("--sizes", nargs="+", type=int, default=[10_000, 100_000, 1_000_000])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--passes", type=int, default=3)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    cells = [[kind, nbits, n] for kind in args.kinds for nbits in args.bits for n in args.sizes]
    if args.worker:
        worker(Path(args.worker), cells, args.threads, args.queries, args.passes)
        return 0
    builds = dict(b.split("=", 1) for b in args.builds)
    for name, folder in builds.items():
        if not (Path(folder) / "deephash_engine").is_dir():
            p.error(f"build {name!r}: {folder} holds no deephash_engine package")
    with tempfile.TemporaryDirectory(prefix="deephash-ab-") as tmp:
        folder = Path(tmp)
        for kind, nbits, n in cells:
            stem = folder / f"{kind}_{nbits}_{n}"
            np.save(f"{stem}_db.npy", make_codes(kind, n, nbits, seed=1))
            np.save(f"{stem}_q.npy", make_codes(kind, args.queries, nbits, seed=1, role="queries"))
        best: dict[str, dict[str, float]] = {name: {} for name in builds}
        for r in range(args.rounds):
            for name, pkg in builds.items():
                env = dict(os.environ, PYTHONPATH=str(Path(pkg).resolve()))
                cmd = [sys.executable, __file__, "--worker", str(folder), "--threads", str(args.threads),
                       "--queries", str(args.queries), "--passes", str(args.passes), "--builds", *args.builds,
                       "--kinds", *args.kinds, "--bits", *map(str, args.bits), "--sizes", *map(str, args.sizes)]
                res = json.loads(subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout)
                for cell, s in res.items():
                    best[name][cell] = min(best[name].get(cell, float("inf")), s)
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    a, b = builds
    print(f"# single-query k = 10 latency, best over {args.rounds} rounds of the median of {args.queries} "
          f"calls, {args.threads} threads")
    print(f"| data | bits | n | {a} | {b} | {b} / {a} |")
    print("|---|---|---|---|---|---|")
    for kind, nbits, n in cells:
        cell = f"{kind}/{nbits}/{n}"
        ta, tb = best[a][cell], best[b][cell]
        print(f"| {kind} | {nbits} | {n:,} | {ta * 1e6:.1f} us | {tb * 1e6:.1f} us | {tb / ta:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
