"""The demo's GPU step: the database index the deep demo saved goes to the GPU, 1,000 queries are
searched there and on the CPU, and the answers are compared. Where no CUDA device is usable it
says why and stops (exit 0: the demo goes on).

    python benchmarks/gpu_demo.py --index runs/demo/database.index
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import deephash_engine as de


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index", required=True, help="an index file (e.g. the deep demo's database.index)")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--k", type=int, default=100)
    args = ap.parse_args()
    cpu = de.load_index(args.index)
    if not de.cuda_available():
        try:
            de.GpuFlatIndex(cpu.nbits)
        except RuntimeError as e:
            print(f"GPU search skipped: {e}")
        return 0
    gpu = cpu.to_gpu(0)
    rng = np.random.default_rng(0)
    queries = cpu.reconstruct_batch(rng.choice(cpu.ids(), args.queries, replace=False))
    gpu.search(queries[:10], args.k)  # warm-up
    t0 = time.perf_counter()
    D, I = gpu.search(queries, args.k)
    t_gpu = time.perf_counter() - t0
    t0 = time.perf_counter()
    Dc, Ic = cpu.search(queries, args.k)
    t_cpu = time.perf_counter() - t0
    same = bool((D == Dc).all() and (I == Ic).all())
    print(f"GPU search ({de.build_info()['cuda_archs']}): {args.queries} queries, k={args.k}, over {cpu.ntotal} codes: "
          f"{args.queries / t_gpu:,.0f} q/s on the GPU, {args.queries / t_cpu:,.0f} q/s on the CPU, "
          f"answers {'identical' if same else 'DIFFERENT'}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
