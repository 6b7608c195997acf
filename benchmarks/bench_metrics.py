"""Retrieval metrics: deephash_engine.metrics against a NumPy DeepHash-pytorch-style evaluator.

Two cases (issue 3):
  small  mAP@all,  10,000 queries x 60,000 database codes, 64 bits
  large  mAP@1000,  5,000 queries x 1,000,000 database codes, 64 bits
The peer restates DeepHash-pytorch's CalcTopMap with NumPy: Hamming distances as
0.5 * (K - qB @ rB.T) on +-1 float32 codes (a dense distance matrix per batch of queries),
argsort, relevance from the label dot product, AP normalised by the relevant items retrieved.
Its argsort is made stable so that ties fall in database order, like ours with ties="index",
and the values can be compared item for item. On the large case the peer runs a subset of
the queries (its time per query is then scaled to 5,000, and labelled so).

Every measurement runs in its own process (data shared through .npy files), so its peak RSS is
its own. Synthetic structured data: 10 Gaussian clusters in 32 dimensions, codes = sign of a
random projection, labels = cluster. Run by hand (never by `make test`):

    python benchmarks/bench_metrics.py                 # both cases
    python benchmarks/bench_metrics.py --case small --peer-queries 1000
    python benchmarks/bench_metrics.py --case small --bits 16 32 48 64 128   # the widths deep hashing reports
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CASES = {
    # name: (queries, database, bits, topk (None = all), peer batch size)
    "small": (10_000, 60_000, 64, None, 250),
    "large": (5_000, 1_000_000, 64, 1000, 10),
}
N_CLASSES, DIM = 10, 32


def make_data(out_dir: Path, n_query: int, n_db: int, nbits: int, seed: int = 0) -> None:
    """Writes q.npy, db.npy (packed codes) and ql.npy, dl.npy (class ids), chunk by chunk."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=1.5, size=(N_CLASSES, DIM))
    projection = rng.normal(size=(DIM, nbits))

    def draw(n):
        codes = np.empty((n, nbits // 8), dtype=np.uint8)
        labels = rng.integers(0, N_CLASSES, n)
        for s in range(0, n, 100_000):
            e = min(n, s + 100_000)
            x = centres[labels[s:e]] + rng.normal(size=(e - s, DIM))
            codes[s:e] = np.packbits(x @ projection >= 0, axis=1, bitorder="little")
        return codes, labels

    q, ql = draw(n_query)
    db, dl = draw(n_db)
    for name, arr in (("q", q), ("db", db), ("ql", ql), ("dl", dl)):
        np.save(out_dir / f"{name}.npy", arr)


def peer_map(q, db, ql, dl, topk, batch):
    """Per-query AP, DeepHash-pytorch style (dense distances per batch + argsort + label dot)."""
    nbits = db.shape[1] * 8
    to_pm1 = lambda c: np.where(np.unpackbits(c, axis=1, bitorder="little") == 1, 1.0, -1.0).astype(np.float32)
    q_b, r_b = to_pm1(q), to_pm1(db)
    q_l = np.eye(N_CLASSES, dtype=np.float32)[ql]
    r_l = np.eye(N_CLASSES, dtype=np.float32)[dl]
    k = db.shape[0] if topk is None else topk
    ranks = np.arange(1, k + 1, dtype=np.float64)
    aps = np.zeros(q.shape[0])
    for s in range(0, q.shape[0], batch):
        hamm = 0.5 * (nbits - q_b[s : s + batch] @ r_b.T)
        order = np.argsort(hamm, axis=1, kind="stable")[:, :k]
        gnd = (q_l[s : s + batch] @ r_l.T > 0)
        tgnd = np.take_along_axis(gnd, order, axis=1)
        hits = np.cumsum(tgnd, axis=1)
        tsum = hits[:, -1]
        precision_sum = np.where(tgnd, hits / ranks, 0.0).sum(axis=1)
        aps[s : s + batch] = np.where(tsum > 0, precision_sum / np.maximum(tsum, 1), 0.0)
    return aps


def child(args) -> None:
    data = Path(args.data)
    q, db = np.load(data / "q.npy"), np.load(data / "db.npy")
    ql, dl = np.load(data / "ql.npy"), np.load(data / "dl.npy")
    if args.queries:
        q, ql = q[: args.queries], ql[: args.queries]
    topk = None if args.topk == 0 else args.topk
    times = []
    start = resource.getrusage(resource.RUSAGE_SELF)
    cpu_before = start.ru_utime + start.ru_stime
    if args.child == "ours":
        from deephash_engine import get_num_threads, simd_level
        from deephash_engine.metrics import average_precision

        for _ in range(args.repeat):
            t0 = time.perf_counter()
            aps = average_precision(q, db, ql, dl, topk, policy="deephash-pytorch")
            times.append(time.perf_counter() - t0)
        extra = {"threads": get_num_threads(), "simd": simd_level()}
    else:
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            aps = peer_map(q, db, ql, dl, topk, args.batch)
            times.append(time.perf_counter() - t0)
        extra = {"threads": "BLAS default; argsort single-threaded"}
    np.save(data / f"ap_{args.child}.npy", aps)
    usage = resource.getrusage(resource.RUSAGE_SELF)  # ru_maxrss in KiB on Linux
    print(json.dumps({"seconds": float(np.median(times)), "runs": times, "map": float(aps.mean()),
                      "cpu_seconds_per_run": (usage.ru_utime + usage.ru_stime - cpu_before) / args.repeat,
                      "n_queries": int(q.shape[0]), "peak_rss_mib": usage.ru_maxrss / 1024, **extra}))


def run_child(who, data, topk, queries, batch, repeat) -> dict:
    env = dict(os.environ)
    if who == "peer":  # these slow a current OpenBLAS down; give the peer its best BLAS
        env.pop("OPENBLAS_CORETYPE", None)
        env.pop("OPENBLAS_L2_SIZE", None)
    cmd = [sys.executable, __file__, "--child", who, "--data", str(data), "--topk", str(topk or 0),
           "--queries", str(queries), "--batch", str(batch), "--repeat", str(repeat)]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", choices=["small", "large", "all"], default="all")
    ap.add_argument("--peer-queries", type=int, default=0,
                    help="queries the peer evaluates (default: all on small, 100 on large)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of ours (median; the peer runs once)")
    ap.add_argument("--bits", type=int, nargs="+", default=None,
                    help="code widths to run each case at (default: the case's own, 64); e.g. 16 32 48 64 128")
    ap.add_argument("--json", default="bench_results/metrics.json")
    # Internal: one measurement in its own process.
    ap.add_argument("--child", choices=["ours", "peer"], help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--topk", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--queries", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, default=100, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return

    import deephash_engine as de

    context = {"cpu": cpu_model(), "cores": os.cpu_count(), "simd": de.simd_level(),
               "threads": de.get_num_threads(), "numpy": np.__version__, "python": platform.python_version()}
    print("context: " + ", ".join(f"{k}={v}" for k, v in context.items()))
    results = []
    runs = [(name, bits) for name in (["small", "large"] if args.case == "all" else [args.case])
            for bits in (args.bits or [CASES[name][2]])]
    for name, nbits in runs:
        nq, n_db, _, topk, batch = CASES[name]
        peer_q = args.peer_queries or (nq if name == "small" else 100)
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp)
            make_data(data, nq, n_db, nbits)
            ours_full = run_child("ours", data, topk, 0, batch, args.repeat)
            ap_ours = np.load(data / "ap_ours.npy")
            peer = run_child("peer", data, topk, peer_q, batch, 1)
            ap_peer = np.load(data / "ap_peer.npy")
        max_diff = float(np.max(np.abs(ap_ours[:peer_q] - ap_peer)))
        peer_scaled = peer["seconds"] * nq / peer_q
        row = {
            "case": name, "queries": nq, "database": n_db, "nbits": nbits,
            "metric": "mAP@all" if topk is None else f"mAP@{topk}",
            "ours_s": ours_full["seconds"], "ours_runs": ours_full["runs"], "ours_map": ours_full["map"],
            "ours_peak_rss_mib": ours_full["peak_rss_mib"],
            "peer_queries": peer_q, "peer_s": peer["seconds"], "peer_s_for_all_queries": peer_scaled,
            "peer_scaled": peer_q != nq, "peer_peak_rss_mib": peer["peak_rss_mib"],
            "speedup": peer_scaled / ours_full["seconds"], "max_abs_ap_difference": max_diff,
            "ours_cpu_s": ours_full["cpu_seconds_per_run"],
            "peer_cpu_s_for_all_queries": peer["cpu_seconds_per_run"] * nq / peer_q,
        }
        row["cpu_speedup"] = row["peer_cpu_s_for_all_queries"] / row["ours_cpu_s"]
        row["ours_ns_per_pair_per_core"] = row["ours_cpu_s"] / (nq * n_db) * 1e9
        results.append(row)
        scaled = f" (measured on {peer_q} queries, scaled)" if peer_q != nq else ""
        print(f"\n{name}: {row['metric']}, {nq} queries x {n_db} codes, {nbits} bits")
        print(f"  ours   {row['ours_s']:9.2f} s   mAP {row['ours_map']:.6f}   peak RSS {row['ours_peak_rss_mib']:8.0f} MiB")
        print(f"  peer   {peer_scaled:9.2f} s{scaled}   peak RSS {row['peer_peak_rss_mib']:8.0f} MiB")
        print(f"  CPU time: ours {row['ours_cpu_s']:.2f} s ({row['ours_ns_per_pair_per_core']:.2f} ns per pair), "
              f"peer {row['peer_cpu_s_for_all_queries']:.2f} s")
        print(f"  speedup {row['speedup']:.1f}x wall, {row['cpu_speedup']:.1f}x CPU time   "
              f"max |AP ours - AP peer| over {peer_q} queries: {max_diff:.2e}")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"context": context, "results": results}, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
