"""MIHIndex against FlatIndex in one process, the two alternating, for builds in alternating processes.

bench_mih.py runs each engine in a process of its own, one after the other; on a shared machine
whose speed drifts by 10-20% within minutes, the ratio of two such figures says little about a
5% difference. Here both indexes hold the same codes in one process and take turns on the same
queries (best of `--rounds` passes each); with `--builds`, one process per build runs in turn,
so that a slow spell hits both builds alike. Codes and queries are bench_mih.py's
(benchmarks/codes_data.py, seed 3).

    python benchmarks/ab/mih_flat_ab.py --data uniform,1000000,128 --cells k1 k10 k100 --single
    python benchmarks/ab/mih_flat_ab.py --data structured,1000000,128 --cells k100 r16 \\
        --builds old=/tmp/old-pkg new=/tmp/new-pkg --repeat 2

A cell is k<k> (k-NN) or r<radius> (range search). `--single` sends one query per call (a
service's traffic; 200 queries), else one batch of 1,000. A build is a folder holding a
`deephash_engine` package (`pip install --no-deps --target <folder> <checkout>`).
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


def worker(folder: Path, nbits: int, cells: list[str], single: bool, rounds: int, threads: int) -> None:
    import deephash_engine as de

    de.set_num_threads(threads)
    db, queries = np.load(folder / "db.npy"), np.load(folder / "queries.npy")
    queries = queries[:200] if single else queries
    flat, mih = de.FlatIndex(nbits), de.MIHIndex(nbits)
    flat.add(db)
    mih.add(db)
    out = {}
    for cell in cells:
        p = int(cell[1:])

        def call(index, q):
            return index.search(q, p) if cell[0] == "k" else index.range_search(q, p)

        def run(index):
            start = time.perf_counter()
            if single:
                for i in range(len(queries)):
                    call(index, queries[i:i + 1])
            else:
                call(index, queries)
            return time.perf_counter() - start

        mih.reset_stats()
        best = {"flat": float("inf"), "mih": float("inf")}
        for _ in range(rounds):
            for name, index in (("flat", flat), ("mih", mih)):
                best[name] = min(best[name], run(index))
        stats = mih.stats()
        out[cell] = {"flat_qps": len(queries) / best["flat"], "mih_qps": len(queries) / best["mih"],
                     "scanned": stats["linear_scans"] / max(1, stats["queries"]),
                     "unprobed": stats.get("unprobed_scans", 0) / max(1, stats["queries"])}
    print(json.dumps(out))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="uniform,1000000,128", help="kind,n,nbits")
    ap.add_argument("--cells", nargs="+", default=["k1", "k10", "k100"])
    ap.add_argument("--single", action="store_true", help="one query per call (200 queries)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=1, help="processes per build, in turn")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--builds", nargs="*", default=[], help="name=folder holding a deephash_engine package")
    ap.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    parts = args.data.split(",")
    if len(parts) != 3 or parts[0] not in ("uniform", "structured") or not (parts[1].isdigit() and parts[2].isdigit()):
        ap.error(f"--data: expected kind,n,nbits with kind uniform or structured, got {args.data!r}")
    kind, n, nbits = parts[0], int(parts[1]), int(parts[2])
    for cell in args.cells:
        if cell[:1] not in ("k", "r") or not cell[1:].isdigit():
            ap.error(f"--cells: expected k<k> or r<radius>, got {cell!r}")
    if args.worker:
        worker(args.worker, nbits, args.cells, args.single, args.rounds, args.threads)
        return 0
    builds = dict(b.split("=", 1) for b in args.builds) or {"installed": ""}
    with tempfile.TemporaryDirectory(prefix="deephash-mihab-") as tmp:
        folder = Path(tmp)
        np.save(folder / "db.npy", make_codes(kind, n, nbits, seed=3))
        np.save(folder / "queries.npy", make_codes(kind, 1000, nbits, seed=3, role="queries"))
        print(f"# {kind} {n:,} x {nbits} bits, {'single queries' if args.single else 'batches of 1,000'}, "
              f"{args.threads} threads, best of {args.rounds} alternating passes")
        for rep in range(args.repeat):
            for name, path in builds.items():
                env = dict(os.environ)
                if path:
                    env["PYTHONPATH"] = os.pathsep.join(p for p in (path, env.get("PYTHONPATH", "")) if p)
                cmd = [sys.executable, __file__, "--worker", str(folder), "--data", args.data, "--rounds",
                       str(args.rounds), "--threads", str(args.threads), "--cells", *args.cells]
                res = subprocess.run(cmd + (["--single"] if args.single else []), env=env, capture_output=True,
                                     text=True)
                if res.returncode != 0:
                    raise RuntimeError(f"{name} worker failed:\n{res.stderr}")
                cells = json.loads(res.stdout.strip().splitlines()[-1])
                line = "  ".join(f"{c}: flat {v['flat_qps']:,.0f} mih {v['mih_qps']:,.0f} q/s = "
                                 f"{v['mih_qps'] / v['flat_qps']:.2f}x (scanned {v['scanned']:.0%}, "
                                 f"unprobed {v['unprobed']:.0%})" for c, v in cells.items())
                print(f"{name:>10} [{rep + 1}]  {line}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
