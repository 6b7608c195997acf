"""The FAISS drop-in's cost: FlatIndex, faiss_compat.IndexBinaryFlat and faiss.IndexBinaryFlat side
by side in one run.

The compat index and the FlatIndex it wraps are timed in this process on the same index (the
compat object's own FlatIndex), in alternating turns, so the difference is the compat layer alone:
argument checks and (after removals only) id translation. The overhead column is the median of
the per-turn ratios compat / FlatIndex. FAISS runs in its own process
(bench_flat.py's worker) on the same codes. Batches: median of the rounds; nq = 1: median latency
of single-query calls, the two in-process engines taking each query in turn. Answers are compared:
compat must equal FAISS exactly (ties included) and equal the FlatIndex.

    python benchmarks/bench_faiss_compat.py            # 1M x 64 and 1M x 256 bits, nq 1000 and 1, k 10
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the benchmark helpers beside this script

from bench_context import context, machine_line, print_table_header, timed  # noqa: E402
from bench_flat import Worker  # noqa: E402
from codes_data import make_codes  # noqa: E402

DATASETS = [("structured", 1_000_000, 64), ("structured", 1_000_000, 256)]
CELLS = [(1000, 10), (1, 10)]


def time_pair(searches: dict, queries: np.ndarray, nq: int, k: int, rounds: int, single: int) -> dict:
    """Median seconds of each in-process search in alternating turns (a turn: the batch, or one
    single query), and the compat layer's overhead."""
    times = {name: [] for name in searches}
    turns = [queries[:nq]] * rounds if nq > 1 else [queries[i:i + 1] for i in range(single)]
    for r, batch in enumerate(turns):  # the order flips from one turn to the next
        for name in (list(searches) if r % 2 == 0 else list(searches)[::-1]):
            times[name].append(timed(lambda: searches[name](batch, k), repeats=1, warmup=0))
    medians = {name: float(np.median(t)) for name, t in times.items()}
    # Overhead from paired turns (compat against the FlatIndex call next to it), so a change in
    # the machine's speed during the run (other tenants) cancels out.
    medians["overhead"] = float(np.median(np.array(times["compat"]) / np.array(times["flat"]))) - 1
    return medians


def per_call_cost(faiss_compat, calls: int = 20000) -> dict:
    """Seconds per search call on a 10-code index (best of 5 runs of `calls` calls), FlatIndex and
    compat: the layer's fixed cost, which the big cells can only bound through their noise."""
    compat = faiss_compat.IndexBinaryFlat(64)
    compat.add(np.zeros((10, 8), dtype=np.uint8))
    query = np.zeros((1, 8), dtype=np.uint8)
    out = {}
    for name, search in (("flat", compat._flat.search), ("compat", compat.search)):
        out[name] = min(timed(lambda: [search(query, 10) for _ in range(calls)], repeats=1, warmup=0)
                        for _ in range(5)) / calls
    return out


def answers(search, queries, nq, k, single):
    if nq > 1:
        return search(queries[:nq], k)
    rows = [search(queries[i:i + 1], k) for i in range(single)]
    return np.concatenate([r[0] for r in rows]), np.concatenate([r[1] for r in rows])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--rounds", type=int, default=15, help="timed rounds per batch cell, ours and compat")
    ap.add_argument("--faiss-rounds", type=int, default=3, help="timed rounds per batch cell, FAISS")
    ap.add_argument("--single-queries", type=int, default=200)
    ap.add_argument("--json", type=Path, default=None, help="where to write the results (default: bench_results/)")
    args = ap.parse_args()

    import deephash_engine as de
    from deephash_engine import faiss_compat

    de.set_num_threads(args.threads)
    ctx = context(args.threads)
    print(f"# FlatIndex vs faiss_compat.IndexBinaryFlat vs faiss.IndexBinaryFlat: {machine_line(ctx)}")
    print(f"# threads={args.threads}  simd={ctx['simd_level']}  deephash_engine {ctx['deephash_engine']}  "
          f"faiss {ctx['faiss']}  batches: median of {args.rounds} rounds (FAISS {args.faiss_rounds}); "
          f"nq=1: median of {args.single_queries} single-query calls")
    cost = per_call_cost(faiss_compat)
    print(f"# per search call on a 10-code index: FlatIndex {cost['flat'] * 1e6:.2f} us, "
          f"compat {cost['compat'] * 1e6:.2f} us (the layer: {(cost['compat'] - cost['flat']) * 1e6:.2f} us)")
    print_table_header(f"{'data':<11}{'n':>10}{'bits':>5}{'nq':>6}{'k':>4} | {'FlatIndex':>12} {'compat':>12} "
                       f"{'overhead':>9} | {'faiss':>12} {'compat speedup':>15} | same")
    rows = []
    for kind, n, nbits in DATASETS:
        with tempfile.TemporaryDirectory(prefix="deephash-bench-") as tmp:
            folder = Path(tmp)
            db = make_codes(kind, n, nbits, seed=1)
            queries = make_codes(kind, max(nq for nq, _ in CELLS), nbits, seed=1, role="queries")
            np.save(folder / "db.npy", db)
            np.save(folder / "queries.npy", queries)
            compat = faiss_compat.IndexBinaryFlat(nbits)
            compat.add(db)
            searches = {"flat": compat._flat.search, "compat": compat.search}
            compat.search(queries, 10)  # first pass untimed (pages settling), as bench_flat's workers do
            ref = Worker("faiss", folder, SimpleNamespace(threads=args.threads, single_queries=args.single_queries))
            try:
                for nq, k in CELLS:
                    secs = time_pair(searches, queries, nq, k, args.rounds, args.single_queries)
                    faiss_s = float(np.median([ref.ask("time", nq, k)["seconds"] for _ in range(args.faiss_rounds)]))
                    ref.ask("save", nq, k)
                    theirs = np.load(folder / f"faiss_{nq}_{k}.npz")
                    D, I = answers(compat.search, queries, nq, k, args.single_queries)
                    fD, fI = answers(compat._flat.search, queries, nq, k, args.single_queries)
                    same = bool(np.array_equal(D, theirs["D"]) and np.array_equal(I, theirs["I"])
                                and np.array_equal(D, fD) and np.array_equal(I, fI))

                    def show(sec):
                        return f"{sec * 1e3:9.3f} ms" if nq == 1 else f"{nq / sec:8.0f} q/s"

                    overhead = secs["overhead"]
                    print(f"{kind:<11}{n:>10,}{nbits:>5}{nq:>6}{k:>4} | {show(secs['flat']):>12} "
                          f"{show(secs['compat']):>12} {overhead * 100:+8.1f}% | {show(faiss_s):>12} "
                          f"{faiss_s / secs['compat']:14.2f}x | {'yes' if same else 'NO'}", flush=True)
                    rows.append({"data": kind, "n": n, "nbits": nbits, "nq": nq, "k": k,
                                 "flat_s": secs["flat"], "compat_s": secs["compat"], "faiss_s": faiss_s,
                                 "compat_overhead": overhead, "compat_speedup_vs_faiss": faiss_s / secs["compat"],
                                 "identical": same})
            finally:
                ref.close()
    out = args.json or (HERE.parent / "bench_results" / f"faiss-compat-{time.strftime('%Y%m%d-%H%M%S')}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"context": ctx, "per_call_s": cost, "rows": rows}, indent=2))
    print(f"# results: {out}")
    return 0 if all(r["identical"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
