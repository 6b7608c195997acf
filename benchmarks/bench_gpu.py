"""GPU search: deephash_engine.GpuFlatIndex against a CuPy brute force (and FAISS's
GpuIndexBinaryFlat where a FAISS GPU build imports), the device-to-device copy bandwidth of the same
GPU, and the CPU FlatIndex at equal data, side by side in one process. Needs a CUDA device and
CuPy; run by benchmarks/gpu_check.sh.

    python benchmarks/bench_gpu.py                 # the issue's sizes (about 3 minutes on an H200)
    python benchmarks/bench_gpu.py --quick         # 10x smaller databases, for a smoke run
    python benchmarks/bench_gpu.py --out R.json    # also write every figure as JSON
    python benchmarks/bench_gpu.py --parts copy_bandwidth single_query_scan   # some parts only

Timings: each cell is warmed up (once, or ten times for single queries), then timed over repeats
with the device synchronised before and after each; the figure is the median. Queries and results
stay on the device (CuPy arrays) unless a row says "host", so a row measures the search, not PCIe.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import traceback

import numpy as np

import deephash_engine as de

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_context import cpu_model  # noqa: E402


# The benchmark's parts, in the order they run (the functions decorated with @part in main).
PARTS = ("copy_bandwidth", "single_query_scan", "many_queries", "beyond_faiss")


def median_seconds(fn, sync, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


class BruteForce:
    """The peer where no FAISS GPU build exists: XOR, popcount (cupy.bitwise_count) and a top-k by
    a full sort of (distance, position) keys per query, over 64-bit words, queries in groups so the
    distance matrix stays small."""

    def __init__(self, cp, codes_dev):
        self.cp = cp
        self.words = codes_dev.view(cp.uint64)  # (n, nbits / 64)

    def search(self, queries_dev, k, group=8):
        cp = self.cp
        q = queries_dev.view(cp.uint64)
        out_d, out_i = [], []
        for s in range(0, q.shape[0], group):
            x = self.words[None, :, :] ^ q[s:s + group, None, :]
            d = cp.bitwise_count(x).sum(axis=2, dtype=cp.int64)
            key = (d << 40) | cp.arange(d.shape[1], dtype=cp.int64)[None, :]
            key = cp.sort(key, axis=1)[:, :k]
            out_d.append((key >> 40).astype(cp.int32))
            out_i.append(key & ((1 << 40) - 1))
        return cp.concatenate(out_d), cp.concatenate(out_i)


class BareCount:
    """The scan's bound on this GPU: a kernel that only counts the 64-bit codes within a radius of
    one query (16-byte loads, four in flight per thread, one atomic per warp), with no selection,
    no ids and no results, as benchmarks/bench_bound.py measures the CPU's."""

    SOURCE = r"""
    extern "C" __global__ void count_within(const ulonglong2* __restrict__ codes, unsigned long long pairs,
                                            unsigned long long q, int radius, unsigned long long* out) {
      unsigned long long c = 0;
      const unsigned long long step = (unsigned long long)gridDim.x * blockDim.x;
      unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
      for (; i + 3 * step < pairs; i += 4 * step) {
        ulonglong2 v[4];
        #pragma unroll
        for (int u = 0; u < 4; ++u) v[u] = __ldg(codes + i + u * step);
        #pragma unroll
        for (int u = 0; u < 4; ++u) c += (__popcll(v[u].x ^ q) <= radius) + (__popcll(v[u].y ^ q) <= radius);
      }
      for (; i < pairs; i += step) {
        const ulonglong2 v = __ldg(codes + i);
        c += (__popcll(v.x ^ q) <= radius) + (__popcll(v.y ^ q) <= radius);
      }
      for (int o = 16; o > 0; o >>= 1) c += __shfl_down_sync(0xffffffffu, c, o);
      if ((threadIdx.x & 31) == 0) atomicAdd(out, c);
    }
    """

    def __init__(self, cp, codes_dev):
        assert codes_dev.shape[1] == 8 and codes_dev.shape[0] % 2 == 0
        self.cp = cp
        self.codes = codes_dev
        self.kernel = cp.RawKernel(self.SOURCE, "count_within")
        self.out = cp.zeros(1, dtype=cp.uint64)
        self.blocks = 8 * cp.cuda.runtime.getDeviceProperties(0)["multiProcessorCount"]

    def count(self, q, radius):
        """Codes within `radius` of the 64-bit query word q (an int), left on the device."""
        cp = self.cp
        self.out.fill(0)
        self.kernel((self.blocks,), (256,), (self.codes, cp.uint64(self.codes.shape[0] // 2), cp.uint64(q),
                                             cp.int32(radius), self.out))
        return self.out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="10x smaller databases")
    ap.add_argument("--out", help="write the figures as JSON here")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--parts", nargs="+", metavar="PART", choices=PARTS,
                    help=f"run only these parts, among: {' '.join(PARTS)}")
    args = ap.parse_args()
    if not de.cuda_available():
        print("bench_gpu: no usable CUDA device", file=sys.stderr)
        return 2
    import cupy as cp

    scale = 10 if args.quick else 1
    sync = cp.cuda.runtime.deviceSynchronize
    dev = cp.cuda.Device(0)
    props = cp.cuda.runtime.getDeviceProperties(0)
    rows: list[dict] = []
    info = {"gpu": props["name"].decode(), "sms": props["multiProcessorCount"], "cpu": cpu_model(),
            "cpu_cores": os.cpu_count(), "build": de.build_info()}
    print(f"GPU: {info['gpu']} ({info['sms']} SMs); CPU: {info['cpu']}, {info['cpu_cores']} cores; "
          f"archs {info['build']['cuda_archs']}", flush=True)

    def row(**kw):
        rows.append(kw)
        print("  " + ", ".join(f"{k}={v}" for k, v in kw.items()), flush=True)

    failures: list[str] = []
    state: dict = {}  # what a later part reuses: the copy bandwidth

    def part(fn):
        """Runs one part of the benchmark at once; a part that fails is reported and the others
        still run, so that one run on a GPU machine yields every figure it can."""
        assert fn.__name__ in PARTS, fn.__name__  # --parts lists every part
        if args.parts and fn.__name__ not in args.parts:
            return fn
        try:
            fn()
        except Exception:  # reported here, counted in the exit status
            failures.append(fn.__name__)
            traceback.print_exc()
            print(f"bench_gpu: part {fn.__name__} FAILED", flush=True)
        finally:
            cp.get_default_memory_pool().free_all_blocks()
        return fn

    @part
    def copy_bandwidth():
        """Bytes read + written per second by a device-to-device copy."""
        nbytes = 800_000_000 // scale
        a = cp.empty(nbytes, dtype=cp.uint8)
        b = cp.empty_like(a)
        t = median_seconds(lambda: b.__setitem__(slice(None), a), sync, args.repeats)
        state["copy_bw"] = 2 * nbytes / t
        row(cell="device copy", bytes=nbytes, seconds=t, gb_per_s_read_plus_write=state["copy_bw"] / 1e9)

    def random_codes(n, nbytes):
        return cp.random.randint(0, 256, size=(n, nbytes), dtype=cp.int32).astype(cp.uint8)

    @part
    def single_query_scan():
        """nq = 1, k = 10, 100M x 64 bits: the scan's bandwidth against the copy's."""
        copy_bw = state.get("copy_bw", float("nan"))
        n = 100_000_000 // scale
        codes_dev = random_codes(n, 8)
        gpu = de.GpuFlatIndex(64)
        gpu.add(cp.asnumpy(codes_dev))
        q1 = codes_dev[12345:12346].copy()
        t_auto = median_seconds(lambda: gpu.search(q1, 10), sync, args.repeats * 4, warmup=10)
        row(cell="nq=1 k=10", n=n, nbits=64, engine="ours", seconds=t_auto, scan_gb_per_s=n * 8 / t_auto / 1e9,
            fraction_of_copy_bw=(n * 8 / t_auto) / copy_bw)
        gpu.set_selection("counting")  # the two-pass selection every k > 4096 takes, for comparison
        t = median_seconds(lambda: gpu.search(q1, 10), sync, args.repeats * 4, warmup=10)
        row(cell="nq=1 k=10", n=n, nbits=64, engine="ours, counting selection", seconds=t,
            scan_gb_per_s=n * 8 / t / 1e9, fraction_of_copy_bw=(n * 8 / t) / copy_bw)
        gpu.set_selection("auto")
        bound = BareCount(cp, codes_dev)
        q_word = int(cp.asnumpy(q1.view(cp.uint64))[0, 0])
        t_bound = median_seconds(lambda: bound.count(q_word, 10), sync, args.repeats * 4, warmup=10)
        row(cell="nq=1 k=10", n=n, nbits=64, engine="bare count kernel (no selection: the bound)",
            seconds=t_bound, scan_gb_per_s=n * 8 / t_bound / 1e9, fraction_of_copy_bw=(n * 8 / t_bound) / copy_bw,
            ours_fraction_of_bound=t_bound / t_auto)
        words = codes_dev.view(cp.uint64)[:, 0]
        assert int(bound.count(q_word, 24)[0]) == int((cp.bitwise_count(words ^ cp.uint64(q_word)) <= 24).sum())
        del words
        brute = BruteForce(cp, codes_dev)
        t_b = median_seconds(lambda: brute.search(q1, 10), sync, max(2, args.repeats // 2))
        row(cell="nq=1 k=10", n=n, nbits=64, engine="cupy brute force", seconds=t_b,
            scan_gb_per_s=n * 8 / t_b / 1e9)
        D, I = gpu.search(q1, 10)
        Db, Ib = brute.search(q1, 10)
        assert (cp.asnumpy(D) == cp.asnumpy(Db)).all() and (cp.asnumpy(I) == cp.asnumpy(Ib)).all()
        del brute
        # A single query's fixed cost: the same search over fewer codes.
        for m in (n // 100, n // 10):
            small = de.GpuFlatIndex(64)
            small.add(cp.asnumpy(codes_dev[:m]))
            t_m = median_seconds(lambda: small.search(q1, 10), sync, args.repeats * 4, warmup=10)
            row(cell="nq=1 k=10", n=m, nbits=64, engine="ours", seconds=t_m, scan_gb_per_s=m * 8 / t_m / 1e9)

    @part
    def many_queries():
        """nq = 10,000, k = 100, 10M x 64 and 256 bits."""
        n = 10_000_000 // scale
        for nbits in (64, 256):
            codes_dev = random_codes(n, nbits // 8)
            gpu = de.GpuFlatIndex(nbits)
            gpu.add(cp.asnumpy(codes_dev))
            queries = codes_dev[:10_000].copy()
            t = median_seconds(lambda: gpu.search(queries, 100), sync, max(2, args.repeats // 2))
            row(cell="nq=10000 k=100", n=n, nbits=nbits, engine="ours", qps=10_000 / t)
            brute = BruteForce(cp, codes_dev)
            sub = queries[:256]
            t_b = median_seconds(lambda: brute.search(sub, 100), sync, 2)
            row(cell="nq=10000 k=100", n=n, nbits=nbits, engine="cupy brute force (256 queries)",
                qps=256 / t_b, ours_over_peer=(10_000 / t) / (256 / t_b))
            D, I = gpu.search(sub, 100)
            Db, Ib = brute.search(sub, 100)
            assert (cp.asnumpy(D) == cp.asnumpy(Db)).all() and (cp.asnumpy(I) == cp.asnumpy(Ib)).all()
            try:
                import faiss  # a FAISS GPU build, where one is installed

                res = faiss.StandardGpuResources()
                fi = faiss.GpuIndexBinaryFlat(res, nbits)
                fi.add(cp.asnumpy(codes_dev))
                qh = cp.asnumpy(queries)
                t_f = median_seconds(lambda: fi.search(qh, 100), sync, 2)
                row(cell="nq=10000 k=100", n=n, nbits=nbits, engine="faiss GpuIndexBinaryFlat (host arrays)",
                    qps=10_000 / t_f, ours_over_peer=(10_000 / t) / (10_000 / t_f))
            except (ImportError, AttributeError):
                pass
            del gpu, brute, codes_dev

    @part
    def beyond_faiss():
        """k = 100,000 and range search over 10M codes, checked against FlatIndex; then the CPU
        FlatIndex and GpuFlatIndex at equal data (host arrays), to show where the GPU pays."""
        n = 10_000_000 // scale
        codes = np.random.default_rng(1).integers(0, 256, size=(n, 8), dtype=np.uint8)
        gpu = de.GpuFlatIndex(64)
        gpu.add(codes)
        cpu = de.FlatIndex(64)
        cpu.add(codes)
        queries = codes[:10]
        t = median_seconds(lambda: gpu.search(queries, 100_000), sync, 2)
        D, I = gpu.search(queries, 100_000)
        Dc, Ic = cpu.search(queries, 100_000)
        row(cell="nq=10 k=100000", n=n, engine="ours", seconds=t,
            equal_to_flat=bool((D == Dc).all() and (I == Ic).all()))
        rq = codes[:100]
        t = median_seconds(lambda: gpu.range_search(rq, 20), sync, 2)
        lims, D, I = gpu.range_search(rq, 20)
        lc, dc, ic = cpu.range_search(rq, 20)
        row(cell="range r=20 nq=100", n=n, engine="ours", seconds=t, hits=int(lims[-1]),
            equal_to_flat=bool((lims == lc).all() and (D == dc).all() and (I == ic).all()))
        for nq in (1, 1000):
            qh = codes[1000:1000 + nq]
            t_g = median_seconds(lambda: gpu.search(qh, 10), sync, args.repeats)
            t_c = median_seconds(lambda: cpu.search(qh, 10), lambda: None, max(2, args.repeats // 2))
            row(cell=f"host queries nq={nq} k=10", n=n, nbits=64, gpu_qps=nq / t_g, cpu_qps=nq / t_c,
                cpu_threads=de.get_num_threads(), gpu_over_cpu=t_c / t_g)

    if args.out:
        with open(args.out, "w") as f:
            json.dump({"info": info, "rows": rows, "failed_parts": failures}, f, indent=1, default=str)
    dev.synchronize()
    if failures:
        print(f"bench_gpu: {len(failures)} part(s) failed: {', '.join(failures)}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
