"""The flat scan as a fraction of the bare kernel bound, side by side on the same codes and threads.

The bound is a C++ program (benchmarks/bound/) whose loops only count, for each query, the codes
within a threshold: loops per instruction set over the layouts that suit it (built before
timing; AVX2 has two, nibble-split for groups of queries and plain rows for single ones), no
top-k, no ids, no Python. The bound of a cell is its fastest loop. It shares the work as a search does (queries split
across threads, or the codes when there are fewer queries than threads) and walks the codes in
L1-sized pieces. This script builds it (g++, into build/bench_bound/), then times, cell by cell
and in alternating rounds, the bound's loops and FlatIndex.search(queries, k) on the same codes.

    python benchmarks/bench_bound.py                      # 1M codes; 64..1024 bits; nq 1000 and 1
    python benchmarks/bench_bound.py --bits 16 32 48 --nq 1000
    python benchmarks/bench_bound.py --levels             # ours at each SIMD level against that ISA's loop
    python benchmarks/bench_bound.py --faiss --bits 256 512 --n 10000000 --nq 1   # and FAISS's time

"fraction" = our codes per second over the best bound's. Per-core rates count codes x queries
per second, divided by the thread count. "ALU ceiling" is what the counting instructions alone
allow one core at that width (count_bound --ceiling: XOR, POPCNT and ADD for each word, in
registers, no loads or compares), for the ISA with the highest; "of it" is our rate a core over
it. A loop built of those instructions cannot pass it, whatever its layout (codes shorter than a
word could share one: no ceiling is given for them). With --faiss, faiss.IndexBinaryFlat runs the
same cells on one thread (FAISS's own single-query case; give --faiss-threads for more), and
"bound/FAISS" is the most any exact scan that reads every code could gain over it on this
machine: where the codes do not fit in the caches, the bound is the memory's read rate, and no
kernel reaches past it.
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

BOUND_SOURCES = {  # file -> its compile flags
    "layouts.cpp": [],
    "count_scalar.cpp": ["-mpopcnt"],
    "count_avx2.cpp": ["-mavx2"],
    "count_avx512.cpp": ["-mavx512f", "-mavx512bw", "-mavx512vpopcntdq"],
    "ceiling_scalar.cpp": ["-mpopcnt"],
    "ceiling_avx512.cpp": ["-mavx512f", "-mavx512vpopcntdq"],
    "main.cpp": ["-pthread"],
}


def build_bound(out_dir: Path) -> Path:
    """Compiles benchmarks/bound/ unless the binary is newer than every source."""
    src = HERE / "bound"
    exe = out_dir / "count_bound"
    sources = [src / f for f in BOUND_SOURCES] + [src / "bound.hpp"]
    if exe.exists() and exe.stat().st_mtime > max(p.stat().st_mtime for p in sources):
        return exe
    out_dir.mkdir(parents=True, exist_ok=True)
    cxx = os.environ.get("CXX", "g++")
    objects = []
    for name, flags in BOUND_SOURCES.items():
        obj = out_dir / (name + ".o")
        subprocess.run([cxx, "-O2", "-std=c++17", *flags, "-c", str(src / name), "-o", str(obj)], check=True)
        objects.append(str(obj))
    subprocess.run([cxx, "-pthread", *objects, "-o", str(exe)], check=True)
    return exe


def run_bound(exe: Path, folder: Path, code_size: int, nq: int, threads: int, rounds: int, isas) -> dict:
    out = subprocess.run([str(exe), str(folder / "codes.bin"), str(folder / "queries.bin"), str(code_size),
                          str(nq), str(threads), str(rounds), *isas], capture_output=True, text=True, check=True)
    return {r["isa"]: r for r in map(json.loads, out.stdout.splitlines()) if r.get("supported")}


def run_ceilings(exe: Path) -> dict:
    """Each loop's arithmetic ceiling on one core (count_bound --ceiling): steps a second."""
    out = subprocess.run([str(exe), "--ceiling"], capture_output=True, text=True, check=True)
    return {r["isa"]: r for r in map(json.loads, out.stdout.splitlines()) if r.get("supported")}


def ceiling_rate(ceilings: dict, code_size: int) -> tuple[str, float] | None:
    """The highest codes-per-second ceiling of one core at this code size, and its ISA. Codes
    shorter than an ISA's word could share one, so that ISA gives no ceiling for them."""
    rates = [(isa, c["steps_per_s"] * c["codes_per_step"] / -(-code_size // c["word_bytes"]))
             for isa, c in ceilings.items() if code_size >= c["word_bytes"]]
    return max(rates, key=lambda r: r[1]) if rates else None


def time_ours(index, queries, nq: int, k: int, rounds: int) -> float:
    """Median seconds of index.search(queries[:nq], k) (nq = 1: single-query calls, cycled); the
    same for a FAISS index, whose search has the same signature."""
    times = []
    index.search(queries[: max(nq, 1)], k)
    for r in range(rounds):
        q = queries[r % len(queries): r % len(queries) + 1] if nq == 1 else queries[:nq]
        t0 = time.perf_counter()
        index.search(q, k)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bits", type=int, nargs="+", default=[64, 128, 256, 512, 1024])
    ap.add_argument("--kinds", nargs="+", default=["uniform", "structured"], choices=["uniform", "structured"])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--nq", type=int, nargs="+", default=[1000, 1])
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds per cell at nq > 1 (x40 at nq = 1)")
    ap.add_argument("--levels", action="store_true", help="also run ours forced to each SIMD level")
    ap.add_argument("--faiss", action="store_true", help="also time faiss.IndexBinaryFlat on the same cells")
    ap.add_argument("--faiss-threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    import deephash_engine as de

    de.set_num_threads(args.threads)
    faiss = None
    if args.faiss:
        try:
            import faiss
        except ImportError:
            print("--faiss needs faiss-cpu: pip install faiss-cpu==1.15.1", file=sys.stderr)
            return 2
        faiss.omp_set_num_threads(args.faiss_threads)
    exe = build_bound(HERE.parent / "build" / "bench_bound")
    ceilings = run_ceilings(exe)
    ctx = context(args.threads)
    levels = ["auto"] + (de.available_simd_levels() if args.levels else [])
    print(f"# flat scan vs bare counting loops: {ctx['cpu']} ({ctx['cores']} cores, flags: {' '.join(ctx['cpu_flags'])})")
    print(f"# threads={args.threads}  n={args.n:,}  k={args.k}  deephash_engine {ctx['deephash_engine']}  "
          f"medians of {args.rounds} rounds (x40 single-query calls at nq=1), engines alternating")
    head = (f"{'data':<11}{'bits':>5}{'nq':>6} {'ours':>7} | {'bound scalar':>13}{'avx2-rows':>10}{'avx2':>9}"
            f"{'avx512':>9} | {'ours G/s/core':>13} {'fraction':>9} {'ALU ceiling':>12} {'of it':>6}"
            + (f" | {'FAISS ms':>9} {'ours ms':>8} {'ours/FAISS':>10} {'bound/FAISS':>11}" if faiss else ""))
    for isa, c in ceilings.items():
        print(f"# ALU ceiling, {isa}: {c['steps_per_s'] / 1e9:.2f} G steps/s a core (a step: one "
              f"{8 * c['word_bytes']}-bit word of {c['codes_per_step']} code(s), XOR + POPCNT + ADD in registers)")
    print(head)
    print("-" * len(head))
    rows = []
    for kind in args.kinds:
        for nbits in args.bits:
            cs = nbits // 8
            db = make_codes(kind, args.n, nbits, seed=1)
            queries = make_codes(kind, max(args.nq), nbits, seed=1, role="queries")
            index = de.FlatIndex(nbits)
            index.add(db)
            peer = None
            if faiss:
                peer = faiss.IndexBinaryFlat(nbits)
                peer.add(db)
            with tempfile.TemporaryDirectory(prefix="deephash-bound-") as tmp:
                folder = Path(tmp)
                db.tofile(folder / "codes.bin")
                queries.tofile(folder / "queries.bin")
                for nq in args.nq:
                    rounds = args.rounds * (40 if nq == 1 else 1)
                    bounds, ours, peer_s = {}, {}, 1e30
                    for r in range(2):  # two alternations: bound, ours, bound, ours; best of each
                        for isa, res in run_bound(exe, folder, cs, nq, args.threads, max(1, rounds // 2),
                                                  ["scalar", "avx2-rows", "avx2", "avx512"]).items():
                            bounds[isa] = min(bounds.get(isa, 1e30), res["median_s"])
                        for level in levels:
                            de.set_simd_level(level)
                            ours[level] = min(ours.get(level, 1e30), time_ours(index, queries, nq, args.k,
                                                                               max(1, rounds // 2)))
                        if peer is not None:
                            peer_s = min(peer_s, time_ours(peer, queries, nq, args.k, max(1, rounds // 2)))
                    de.set_simd_level("auto")
                    pairs = args.n * nq
                    best = min(bounds.values())
                    for level in levels:
                        isa_bounds = [b for i, b in bounds.items() if i.split("-")[0] == level]
                        ref = best if level == "auto" else min(isa_bounds, default=best)
                        rate = pairs / ours[level] / args.threads
                        ceiling = ceiling_rate(ceilings, cs)
                        row = {"data": kind, "nbits": nbits, "n": args.n, "nq": nq, "k": args.k, "level": level,
                               "ours_s": ours[level], "bound_s": {i: b for i, b in bounds.items()},
                               "ours_codes_per_s_per_core": rate, "fraction": ref / ours[level],
                               "alu_ceiling": None if ceiling is None else
                               {"isa": ceiling[0], "codes_per_s_per_core": ceiling[1]}}
                        tail = ""
                        if peer is not None:
                            row.update(faiss_s=peer_s, faiss_threads=args.faiss_threads,
                                       speedup=peer_s / ours[level], bound_speedup=peer_s / ref)
                            tail = (f" | {peer_s * 1e3:9.3f} {ours[level] * 1e3:8.3f} {row['speedup']:9.2f}x"
                                    f" {row['bound_speedup']:10.2f}x")
                        rows.append(row)
                        cells = [f"{pairs / bounds[i] / args.threads / 1e9:.2f}G" if i in bounds else "-"
                                 for i in ("scalar", "avx2-rows", "avx2", "avx512")]
                        label = "ours" if level == "auto" else level
                        print(f"{kind:<11}{nbits:>5}{nq:>6} {label:>7} | {cells[0]:>13}{cells[1]:>10}{cells[2]:>9}"
                              f"{cells[3]:>9} | "
                              f"{rate / 1e9:11.2f}G {row['fraction'] * 100:8.0f}% "
                              + (f"{ceiling[1] / 1e9:11.2f}G {rate / ceiling[1] * 100:5.0f}%" if ceiling else
                                 f"{'-':>12} {'-':>6}") + tail, flush=True)
    out = args.json or (HERE.parent / "bench_results" / f"bound-{time.strftime('%Y%m%d-%H%M%S')}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"context": ctx, "rows": rows}, indent=2))
    print(f"# results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
