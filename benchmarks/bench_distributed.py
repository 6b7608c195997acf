"""ShardedIndex on a local Ray against one in-process FlatIndex and MIHIndex, at equal cores.

    python benchmarks/bench_distributed.py                       # 10M x 64-bit, 10,000 queries
    python benchmarks/bench_distributed.py --n 2000000 --nq 2000 # quicker

Same codes and queries for every engine; every answer is compared with the in-process FlatIndex's.
Besides one search call over all queries, the bulk job (bulk.bulk_search from a .npy query file
to D.npy/I.npy, in batches of --bulk-batch) is timed on the first sharded index with both
executors: 'driver' (this process sends the batches to the shard actors, two in flight) and
'ray-data' (a Ray Data actor pool does; its pool starts inside each timed job).
The sharded runs use a local Ray (loopback only) with as many CPUs as the in-process runs have
threads; each shard actor gets cores / shards threads of the core. The target (issue: Ray
scale-out): the sharded run's throughput >= 80% of the in-process one at equal cores.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # local Ray on the loopback interface

import deephash_engine as de  # noqa: E402
from bench_context import context  # noqa: E402
from codes_data import make_codes  # noqa: E402


class _BulkJob:
    """A bulk job timed like a search call: search() runs it and reads its answer back."""

    def __init__(self, bulk, index, queries, out, batch, executor):
        self.bulk, self.index, self.queries, self.out, self.batch, self.executor = \
            bulk, index, queries, out, batch, executor

    def search(self, _queries, k):
        self.bulk.bulk_search(self.index, self.queries, self.out, k=k, batch=self.batch, executor=self.executor)
        return np.load(self.out / "D.npy"), np.load(self.out / "I.npy")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--nq", type=int, default=10_000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--data", default="structured", choices=("structured", "uniform"))
    ap.add_argument("--cores", type=int, default=os.cpu_count())
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--mmap", action="store_true", help="shards search their files in place (default: in memory)")
    ap.add_argument("--shards", default="1:flat,2:flat,2:mih", help="sharded runs, e.g. 2:flat,4:mih")
    ap.add_argument("--bulk-batch", type=int, default=2000, help="queries per batch of the timed bulk jobs")
    ap.add_argument("--no-bulk", dest="bulk", action="store_false", help="time search calls only")
    args = ap.parse_args()
    import ray

    from deephash_engine import bulk
    from deephash_engine.distributed import ShardedIndex

    ctx = context(args.cores)
    print(f"# {ctx['cpu']} ({', '.join(ctx['cpu_flags'])}), {args.cores} cores, simd {ctx['simd_level']}, "
          f"ray {ray.__version__}, {ctx['date']}")
    codes = make_codes(args.data, args.n, 64, seed=1)
    queries = make_codes(args.data, args.nq, 64, seed=2, role="queries")
    de.set_num_threads(args.cores)
    ray.init(num_cpus=args.cores, include_dashboard=False, log_to_driver=False)
    # Every engine is held at once and they take turns, round after round: a change of the
    # machine's speed during the run falls on all alike. A cell is the median of its rounds.
    engines = {}
    flat = de.FlatIndex(64)
    flat.add(codes)
    engines["in-process FlatIndex"] = flat
    mih = de.MIHIndex(64)
    mih.add(codes)
    engines["in-process MIHIndex"] = mih
    folder = tempfile.TemporaryDirectory(prefix="deephash-bench-shards-")
    opened = []
    for spec in args.shards.split(","):
        nshards, kind = int(spec.split(":")[0]), spec.split(":")[1]
        manifest = Path(folder.name) / f"{kind}-{nshards}" / "manifest.json"
        ShardedIndex.build(codes, manifest, nshards, index=kind)
        sharded = ShardedIndex.open(manifest, mmap=args.mmap, threads=max(1, args.cores // nshards))
        opened.append(sharded)
        engines[f"ShardedIndex, {nshards} {kind} shard{'s' if nshards > 1 else ''}"] = sharded
    if args.bulk:  # bulk jobs on the first sharded index, reading the queries from a file
        np.save(Path(folder.name) / "queries.npy", queries)
        first = opened[0]
        label = next(name for name, e in engines.items() if e is first)
        for executor in ("driver", "ray-data"):
            engines[f"{label}: bulk_search {executor}, batch {args.bulk_batch}"] = _BulkJob(
                bulk, first, Path(folder.name) / "queries.npy", Path(folder.name) / f"out-{executor}",
                args.bulk_batch, executor)
    D0, I0 = flat.search(queries, args.k)
    times = {name: [] for name in engines}
    same = {}
    for name, engine in engines.items():  # warm-up, and the answers checked once
        D, I = engine.search(queries, args.k)
        same[name] = bool((D == D0).all() and (I == I0).all())
    for _ in range(args.repeats):
        for name, engine in engines.items():
            start = time.perf_counter()
            engine.search(queries, args.k)
            times[name].append(time.perf_counter() - start)
    for sharded in opened:
        sharded.close()
    folder.cleanup()
    ray.shutdown()
    med = {name: float(np.median(t)) for name, t in times.items()}
    t_flat, t_mih = med["in-process FlatIndex"], med["in-process MIHIndex"]
    rows = [(name, med[name], same[name]) for name in engines]
    print(f"\n{args.n:,} x 64-bit {args.data} codes, {args.nq:,} queries, k = {args.k}, median of {args.repeats} alternating rounds\n")
    print("| engine | seconds | queries/s | vs in-process FlatIndex | vs in-process MIHIndex | same answers |")
    print("|---|---:|---:|---:|---:|---|")
    for name, t, same in rows:
        print(f"| {name} | {t:.2f} | {args.nq / t:,.0f} | {t_flat / t:.2f}x | {t_mih / t:.2f}x | {'yes' if same else 'NO'} |")


if __name__ == "__main__":
    main()
