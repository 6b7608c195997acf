"""MIHIndex against Norouzi's reference multi-index hashing code, side by side on the same codes.

The peer is the `mih` program of https://github.com/norouzi/mih (Norouzi, Punjani, Fleet, TPAMI
2014), built separately (see docs/benchmarks.md for the exact build line). It reads its codes from
an HDF5 file (datasets "B" and "Q"), answers every query on one core and writes its per-query CPU
time and results to another HDF5 file. This script writes our synthetic codes (the same generator
and seed as bench_mih.py) in that format, runs the peer once per k with the same table count as
ours, runs MIHIndex on one thread in this process, checks that both returned the exact k-NN
distances (against our FlatIndex), and prints the per-core time per query of each side.

    apt-get install libhdf5-dev && pip install h5py        # once, for the peer and the file
    python benchmarks/bench_mih_norouzi.py --peer /path/to/mih            # 10M x 64-bit, m = 3
    python benchmarks/bench_mih_norouzi.py --peer /path/to/mih --n 1000000 --m 3
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
sys.path.insert(0, str(HERE))

from bench_context import context  # noqa: E402
from codes_data import make_codes  # noqa: E402

import deephash_engine as de  # noqa: E402


def sorted_distances(db: np.ndarray, queries: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Hamming distances of the returned ids to their queries, sorted per row."""
    x = np.bitwise_xor(db[ids], queries[:, None, :])
    return np.sort(np.unpackbits(x, axis=2).sum(axis=2), axis=1)


def run_peer(peer: Path, h5file: Path, out: Path, n: int, nbits: int, nq: int, k: int, m: int):
    import h5py

    cmd = [str(peer), str(h5file), str(out), "-N", str(n), "-B", str(nbits), "-Q", str(nq), "-K", str(k),
           "-m", str(m)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"peer failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    with h5py.File(out, "r") as f:
        row = f["mih"][0]
        ids = f[row["res"]][()].astype(np.int64) - 1  # the peer's ids are 1-based
        stats = f[row["stats"]][()]                     # per query: results, candidates, dups, lookups, rho, s
        return {"ms_per_query": float(row["cput"]) * 1e3, "rss_mib": float(row["rss"]) * 1024,
                "candidates": float(stats[:, 1].mean()), "lookups": float(stats[:, 3].mean()),
                "process_wall_s": wall}, ids


def run_ours(db: np.ndarray, queries: np.ndarray, k: int, m: int, repeats: int):
    index = de.MIHIndex(db.shape[1] * 8, m=m)
    t0 = time.perf_counter()
    index.add(db)
    build = time.perf_counter() - t0
    index.search(queries[:20], k)  # warm the thread's buffers
    best_wall = best_cpu = float("inf")
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        D, I, stats = index.search_with_stats(queries, k)
        best_wall = min(best_wall, time.perf_counter() - w0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    nq = len(queries)
    return {"ms_per_query": best_wall / nq * 1e3, "cpu_ms_per_query": best_cpu / nq * 1e3,
            "candidates": float(np.mean(stats["candidates"])), "lookups": float(np.mean(stats["buckets"])),
            "build_s": build, "memory_mib": index.memory_usage() / 2**20}, I


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peer", type=Path, default=os.environ.get("NOROUZI_MIH"),
                    help="the peer's `mih` executable (or set NOROUZI_MIH)")
    ap.add_argument("--kind", choices=("structured", "uniform"), default="structured")
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--nbits", type=int, default=64)
    ap.add_argument("--nq", type=int, default=1000)
    ap.add_argument("--m", type=int, default=3, help="tables, the same on both sides")
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 10, 100])
    ap.add_argument("--repeats", type=int, default=3, help="our side: best of this many passes")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if args.peer is None or not args.peer.exists():
        ap.error("--peer: the path of Norouzi's built `mih` program is required (see the docstring)")
    try:
        import h5py  # noqa: F401
    except ImportError:
        ap.error("the peer reads HDF5: pip install h5py")

    de.set_num_threads(1)  # the peer is single-threaded: compare one core with one core
    ctx = context(1)
    print(f"# MIHIndex vs Norouzi's mih, one core each: {ctx['cpu']}  simd={ctx['simd_level']}")
    print(f"# {args.kind} codes, n={args.n:,}, {args.nbits} bits, {args.nq} queries, m={args.m} on both sides")
    db = make_codes(args.kind, args.n, args.nbits, seed=3)
    queries = make_codes(args.kind, args.nq, args.nbits, seed=3, role="queries")
    flat = de.FlatIndex(args.nbits)
    flat.add(db)
    de.set_num_threads(os.cpu_count() or 1)  # the exact reference may use every core
    exact = {k: flat.search(queries, k)[0] for k in args.ks}
    de.set_num_threads(1)

    rows = []
    with tempfile.TemporaryDirectory(prefix="deephash-norouzi-") as tmp:
        import h5py

        h5file = Path(tmp) / "codes.h5"
        with h5py.File(h5file, "w") as f:
            f["B"] = db
            f["Q"] = queries
        print(f"{'k':>5} {'peer ms/q':>10} {'ours ms/q':>10} {'ours CPU':>9} {'speed-up':>9} "
              f"{'peer cand':>10} {'our cand':>9}  exact (peer, ours)")
        for k in args.ks:
            peer, peer_ids = run_peer(args.peer, h5file, Path(tmp) / f"out{k}.h5", args.n, args.nbits,
                                      args.nq, k, args.m)
            ours, our_ids = run_ours(db, queries, k, args.m, args.repeats)
            peer_exact = bool(np.array_equal(sorted_distances(db, queries, peer_ids), exact[k]))
            ours_exact = bool(np.array_equal(sorted_distances(db, queries, our_ids), exact[k]))
            row = {"k": k, "peer": peer, "ours": ours, "speedup": peer["ms_per_query"] / ours["ms_per_query"],
                   "peer_exact": peer_exact, "ours_exact": ours_exact}
            rows.append(row)
            print(f"{k:>5} {peer['ms_per_query']:>10.3f} {ours['ms_per_query']:>10.3f} {ours['cpu_ms_per_query']:>9.3f} "
                  f"{row['speedup']:>8.2f}x {peer['candidates']:>10.0f} {ours['candidates']:>9.0f}  "
                  f"{peer_exact}, {ours_exact}", flush=True)
        print(f"# memory: peer RSS {rows[-1]['peer']['rss_mib']:.0f} MiB (whole process, codes included), "
              f"ours {rows[-1]['ours']['memory_mib']:.0f} MiB (memory_usage(), codes included); "
              f"our build {rows[-1]['ours']['build_s']:.2f} s")
    out = args.json or (HERE.parent / "bench_results" / f"mih-norouzi-{time.strftime('%Y%m%d-%H%M%S')}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"context": ctx, "args": {k: str(v) for k, v in vars(args).items()}, "rows": rows},
                              indent=2))
    print(f"# wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
