"""Exact Hamming k-NN: deephash_engine.FlatIndex against faiss.IndexBinaryFlat, side by side.

Same data, same thread count, one run. Each engine runs in its own process (both may load an
OpenMP runtime) over the same .npy files; results are compared for equality. Both processes hold
their index at once and take turns: every cell is timed in rounds, one engine then the other, so
a change in the machine's speed during the run (clock, other tenants) falls on both alike. A cell's
figure is the median over its rounds.

    python benchmarks/bench_flat.py                    # the full grid of docs/benchmarks.md
    python benchmarks/bench_flat.py --preset demo      # about a minute (used by `make demo`)
    python benchmarks/bench_flat.py --preset widths    # every width 8..1024 bits, nq = 200 and 1
    python benchmarks/bench_flat.py --preset widths --bits 16 32 256   # some of them
    python benchmarks/bench_flat.py --preset latency   # single queries, 10k..10M codes, ours on 1 and 2 threads
    python benchmarks/bench_flat.py --preset latency-short   # the same at 16, 32 and 48 bits
    python benchmarks/bench_flat.py --preset latency-wide    # the same at 128, 512 and 1024 bits
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
sys.path.insert(0, str(HERE))  # the benchmark helpers beside this script

from bench_context import context, timed  # noqa: E402
from codes_data import make_codes  # noqa: E402

PRESETS = {
    # (kind, n, nbits) datasets, then (nq, k) cells run on each
    "demo": {
        "datasets": [("structured", 1_000_000, 64), ("uniform", 1_000_000, 64), ("structured", 1_000_000, 256)],
        "cells": [(1000, 10), (1, 10)],
        "repeats": 2, "single_queries": 50,
    },
    "256": {  # the 256-bit rows at nq = 1000 alone
        "datasets": [("structured", 1_000_000, 256), ("uniform", 1_000_000, 256)],
        "cells": [(1000, 1), (1000, 10), (1000, 100)],
        "repeats": 5, "single_queries": 30,
    },
    "10m": {  # the 10M x 64-bit row alone
        "datasets": [("structured", 10_000_000, 64)],
        "cells": [(1000, 10), (1, 10)],
        "repeats": 2, "single_queries": 30,
    },
    "full": {
        "datasets": [(kind, 1_000_000, nbits) for nbits in (16, 32, 48, 64, 128, 256)
                     for kind in ("structured", "uniform")]
        + [("structured", 10_000_000, 64)],
        "cells": [(1000, 1), (1000, 10), (1000, 100), (1, 1), (1, 10), (1, 100)],
        "repeats": 3, "single_queries": 100,
    },
    "widths": {  # every code width from 8 to 1024 bits
        "datasets": [("uniform", 1_000_000, nbits) for nbits in range(8, 1032, 8)],
        "cells": [(200, 10), (1, 10)],
        "repeats": 2, "single_queries": 30,
    },
    "latency": {  # single queries from 10k to 10M codes; ours also on one thread
        "datasets": [("structured", n, nbits) for nbits in (64, 256)
                     for n in (10_000, 30_000, 100_000, 300_000, 1_000_000, 3_000_000, 10_000_000)],
        "cells": [(1, 10)],
        "repeats": 3, "single_queries": 200,
        "engines": ["ours", "ours-1t", "faiss"],
    },
    "latency-wide": {  # the same sweep at the wider widths (128 bits and codes of 64 and 128 bytes)
        "datasets": [("structured", n, nbits) for nbits in (128, 512, 1024)
                     for n in (10_000, 30_000, 100_000, 300_000, 1_000_000, 3_000_000, 10_000_000)],
        "cells": [(1, 10)],
        "repeats": 3, "single_queries": 200,
        "engines": ["ours", "ours-1t", "faiss"],
    },
    "latency-short": {  # the same sweep at the short widths deep-hashing papers report most
        "datasets": [("structured", n, nbits) for nbits in (16, 32, 48)
                     for n in (10_000, 100_000, 1_000_000, 10_000_000)],
        "cells": [(1, 10)],
        "repeats": 3, "single_queries": 200,
        "engines": ["ours", "ours-1t", "faiss"],
    },
}


# ---- worker: one engine, one dataset; the driver sends one command per line ----------------------

def run_worker(engine: str, folder: Path, threads: int, single_queries: int) -> None:
    db = np.load(folder / "db.npy", mmap_mode="r")
    queries = np.load(folder / "queries.npy")
    nbits = db.shape[1] * 8
    if engine == "ours-1t":
        threads = 1
    t0 = time.perf_counter()
    if engine.startswith("ours"):
        import deephash_engine as de

        de.set_num_threads(threads)
        index = de.FlatIndex(nbits)
        index.add(np.ascontiguousarray(db))
    else:
        import faiss

        faiss.omp_set_num_threads(threads)
        index = faiss.IndexBinaryFlat(nbits)
        index.add(np.ascontiguousarray(db))
    search = index.search
    build = time.perf_counter() - t0
    # One full pass before any cell is timed: right after the build the first cell ran measurably
    # slower than the same search later in the process (memory just written, pages settling).
    search(queries[: min(len(queries), 1000)], 10)
    reply({"engine": engine, "build_s": build})
    for line in sys.stdin:
        cmd = json.loads(line)
        nq, k = cmd["nq"], cmd["k"]
        if cmd["op"] == "time":
            if nq == 1:  # median latency of single-query calls, the first one untimed
                qs = queries[:single_queries]
                search(qs[:1], k)
                lat = [timed(lambda: search(qs[i:i + 1], k), repeats=1, warmup=0) for i in range(len(qs))]
                reply({"seconds": float(np.median(lat))})
            else:
                reply({"seconds": timed(lambda: search(queries[:nq], k), repeats=1, warmup=0)})
        else:  # "save": the answers for the equality check (single queries answered one by one)
            if nq == 1:
                rows = [search(queries[i:i + 1], k) for i in range(single_queries)]
                D, I = np.concatenate([r[0] for r in rows]), np.concatenate([r[1] for r in rows])
            else:
                D, I = search(queries[:nq], k)
            np.savez(folder / f"{engine}_{nq}_{k}.npz", D=D, I=I)
            reply({"saved": True})


def reply(obj) -> None:
    print(json.dumps(obj), flush=True)


# ---- driver -----------------------------------------------------------------------------------

class Worker:
    """One engine's process, holding its index until closed."""

    def __init__(self, engine, folder, args):
        cmd = [sys.executable, __file__, "--worker", engine, "--folder", str(folder), "--threads", str(args.threads),
               "--single-queries", str(args.single_queries)]
        self.engine = engine
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.build_s = self._read()["build_s"]

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.engine} worker exited with status {self.proc.wait()}")
        return json.loads(line)

    def ask(self, op, nq, k):
        self.proc.stdin.write(json.dumps({"op": op, "nq": nq, "k": k}) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def time_cell(workers, nq, k, rounds) -> dict:
    """Median seconds per engine over `rounds` rounds; within a round the engines take turns and
    the order flips from one round to the next. A short pause before each turn lets the other
    engine's threads go idle (OpenMP workers spin for a while after a parallel region)."""
    times = {w.engine: [] for w in workers}
    for r in range(rounds):
        for w in (workers if r % 2 == 0 else workers[::-1]):
            time.sleep(0.05)
            times[w.engine].append(w.ask("time", nq, k)["seconds"])
    return {e: float(np.median(t)) for e, t in times.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="full")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeats", type=int, default=None, help="timed rounds per cell (median reported)")
    ap.add_argument("--single-queries", type=int, default=None)
    ap.add_argument("--json", type=Path, default=None, help="where to write the results (default: bench_results/)")
    ap.add_argument("--bits", type=int, nargs="+", default=None,
                    help="keep only the preset's datasets of these code widths (e.g. --preset widths --bits 16 32 256)")
    ap.add_argument("--worker", choices=["ours", "ours-1t", "faiss"], help=argparse.SUPPRESS)
    ap.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    preset = PRESETS[args.preset]
    args.repeats = args.repeats or preset["repeats"]
    args.single_queries = args.single_queries or preset["single_queries"]
    if args.bits:
        preset = dict(preset, datasets=[d for d in preset["datasets"] if d[2] in set(args.bits)])
        if not preset["datasets"]:
            ap.error(f"--preset {args.preset} has no dataset of {args.bits} bits")

    if args.worker:
        run_worker(args.worker, args.folder, args.threads, args.single_queries)
        return 0

    try:
        import faiss  # noqa: F401
    except ImportError:
        print("faiss-cpu is needed for the side-by-side run: pip install faiss-cpu==1.15.1", file=sys.stderr)
        return 2

    ctx = context(args.threads)
    print(f"# FlatIndex vs faiss.IndexBinaryFlat: {ctx['cpu']} ({ctx['cores']} cores, flags: {' '.join(ctx['cpu_flags'])})")
    print(f"# threads={args.threads}  simd={ctx['simd_level']}  deephash_engine {ctx['deephash_engine']}  "
          f"faiss {ctx['faiss']}  rounds={args.repeats}, engines alternating (median)  nq=1 rows: "
          f"median latency of {args.single_queries} single-query calls")
    engines = preset.get("engines", ["ours", "faiss"])
    one_thread = "ours-1t" in engines
    header = (f"{'data':<11}{'n':>11}{'bits':>6}{'nq':>6}{'k':>5} | {'ours':>12} "
              + (f"{'ours 1 thread':>14} " if one_thread else "")
              + f"{'faiss':>12} {'speedup':>8} | {'ours codes/s/core':>18}  same")
    print(header)
    print("-" * len(header))
    rows = []
    for kind, n, nbits in preset["datasets"]:
        with tempfile.TemporaryDirectory(prefix="deephash-bench-") as tmp:
            folder = Path(tmp)
            np.save(folder / "db.npy", make_codes(kind, n, nbits, seed=1))
            # enough queries for the largest batch and for the single-query calls (the latency
            # presets have no batch: one query timed once a round before this was counted)
            n_queries = max(max(c[0] for c in preset["cells"]), args.single_queries)
            np.save(folder / "queries.npy", make_codes(kind, n_queries, nbits, seed=1, role="queries"))
            workers = [Worker(e, folder, args) for e in engines]
            try:
                for nq, k in preset["cells"]:
                    secs = time_cell(workers, nq, k, args.repeats)
                    for w in workers:
                        w.ask("save", nq, k)
                    ref = np.load(folder / f"faiss_{nq}_{k}.npz")
                    same = True
                    for e in engines:
                        a = np.load(folder / f"{e}_{nq}_{k}.npz")
                        same &= bool(np.array_equal(a["D"], ref["D"]) and np.array_equal(a["I"], ref["I"]))

                    def show(sec):
                        return f"{sec * 1e3:9.3f} ms" if nq == 1 else f"{nq / sec:8.0f} q/s"

                    so, sf = secs["ours"], secs["faiss"]
                    rate = n * nq / so / args.threads
                    extra = f"{show(secs['ours-1t']):>14} " if one_thread else ""
                    print(f"{kind:<11}{n:>11,}{nbits:>6}{nq:>6}{k:>5} | {show(so):>12} {extra}{show(sf):>12} "
                          f"{sf / so:7.2f}x | {rate / 1e9:14.2f} G/s  {'yes' if same else 'NO'}", flush=True)
                    row = {"data": kind, "n": n, "nbits": nbits, "nq": nq, "k": k, "ours_s": so,
                           "faiss_s": sf, "speedup": sf / so, "ours_codes_per_s_per_core": rate,
                           "identical": same, "ours_build_s": workers[0].build_s,
                           "faiss_build_s": workers[-1].build_s}
                    if one_thread:
                        row["ours_1t_s"] = secs["ours-1t"]
                    rows.append(row)
            finally:
                for w in workers:
                    w.close()
    out = args.json or (HERE.parent / "bench_results" / f"flat-{args.preset}-{time.strftime('%Y%m%d-%H%M%S')}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"context": ctx, "preset": args.preset, "rows": rows}, indent=2))
    print(f"# results: {out}")
    return 0 if all(r["identical"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
