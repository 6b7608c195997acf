"""Exact multi-index hashing: deephash_engine.MIHIndex against our FlatIndex,
faiss.IndexBinaryFlat and faiss.IndexBinaryMultiHash (approximate; its recall is reported).

Each engine runs in its own process over the same .npy files, same thread count; k-NN and range
results are compared against the exact answers of our FlatIndex.

    python benchmarks/bench_mih.py                 # the grid of docs/benchmarks.md
    python benchmarks/bench_mih.py --preset demo   # one small dataset (used by `make demo`)
    python benchmarks/bench_mih.py --preset 10m    # structured 10M x 64-bit only (the headline row)
    python benchmarks/bench_mih.py --preset short  # 1M codes at 16, 32 and 48 bits
    python benchmarks/bench_mih.py --kinds uniform --engines mih,flat   # the worst case, ours only
    python benchmarks/bench_mih.py --single        # one query per call (a service's traffic), 200 queries
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

from bench_context import context, timed  # noqa: E402
from codes_data import make_codes  # noqa: E402

ENGINES = ("mih", "flat", "faiss_flat", "faiss_multihash")
PRESETS = {
    "demo": {"datasets": [("structured", 1_000_000, 64)], "ks": [10], "radii": {64: [4]},
             "nq": 1000, "linear_nq": 200},
    "10m": {"datasets": [("structured", 10_000_000, 64)], "ks": [1, 10, 100], "radii": {64: [2, 4, 8]},
            "nq": 1000, "linear_nq": 200},
    "full": {"datasets": [(kind, n, nbits) for kind in ("structured", "uniform")
                          for n, nbits in ((10_000_000, 64), (1_000_000, 128), (1_000_000, 256))],
             "ks": [1, 10, 100], "radii": {64: [2, 4, 8], 128: [8, 12, 16], 256: [16, 24, 31]},
             "nq": 1000, "linear_nq": 200},
    "short": {"datasets": [(kind, 1_000_000, nbits) for kind in ("structured", "uniform") for nbits in (32, 48, 16)],
              "ks": [1, 10, 100], "radii": {16: [1, 2, 3], 32: [2, 4, 6], 48: [3, 6, 9]},
              "nq": 1000, "linear_nq": 200},
}


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def run_worker(engine, folder: Path, spec, threads: int) -> None:
    db = np.load(folder / "db.npy")
    queries = np.load(folder / "queries.npy")
    nbits = db.shape[1] * 8
    # the linear engines get fewer queries at large n (their q/s does not depend on nq here)
    nq = spec["linear_nq"] if engine in ("flat", "faiss_flat") and len(db) > 2_000_000 else spec["nq"]
    if engine == "faiss_multihash" or spec.get("single"):  # fewer queries (faiss_multihash: k-NN only)
        nq = spec["linear_nq"]
    queries = queries[:nq]
    rss0 = rss_bytes()
    t0 = time.perf_counter()
    if engine in ("mih", "flat"):
        import deephash_engine as de

        de.set_num_threads(threads)
        index = de.MIHIndex(nbits) if engine == "mih" else de.FlatIndex(nbits)
        index.add(db)
        if engine == "mih":
            index.compact()
        knn = index.search
        rng = index.range_search
        memory = index.memory_usage() if engine == "mih" else db.nbytes
    else:
        import faiss

        faiss.omp_set_num_threads(threads)
        if engine == "faiss_flat":
            index = faiss.IndexBinaryFlat(nbits)
        else:
            import deephash_engine as de

            nhash = de.MIHIndex.auto_m_for(nbits, len(db))  # the same table count as ours
            index = faiss.IndexBinaryMultiHash(nbits, nhash, nbits // nhash)
            index.nflip = 1
        index.add(db)
        knn = index.search
        memory = None

        def rng(q, r):  # FAISS binary range search is strict (<): pass radius + 1
            return index.range_search(q, r + 1)
    build = time.perf_counter() - t0
    if spec.get("single"):  # one query per call, as a service sends them
        batch_knn, batch_rng = knn, rng

        def knn(q, k):
            parts = [batch_knn(q[i:i + 1], k) for i in range(len(q))]
            return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

        def rng(q, r):
            parts = [batch_rng(q[i:i + 1], r) for i in range(len(q))]
            lims = np.concatenate([[0], np.cumsum([len(p[2]) for p in parts])]).astype(np.int64)
            return lims, np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts])
    if memory is None:
        memory = rss_bytes() - rss0
    del db
    out = {"engine": engine, "build_s": build, "memory_bytes": memory, "nq": nq, "knn": [], "range": []}
    for k in spec["ks"]:
        seconds = timed(lambda: knn(queries, k), repeats=1 if engine.endswith("flat") else 3)
        D, I = knn(queries, k)
        np.savez(folder / f"{engine}_knn_{k}.npz", D=D, I=I)
        out["knn"].append({"k": k, "seconds": seconds})
    for r in ([] if engine == "faiss_multihash" else spec["radii"].get(nbits, [])):
        seconds = timed(lambda: rng(queries, r), repeats=1 if engine.endswith("flat") else 3)
        lims, D, I = rng(queries, r)
        np.savez(folder / f"{engine}_range_{r}.npz", lims=lims, D=D, I=I)
        out["range"].append({"radius": r, "seconds": seconds})
    if engine == "mih":
        out["stats"] = index.stats()
        out["m"] = index.m
    print(json.dumps(out))


def spawn(engine, folder, spec, threads):
    cmd = [sys.executable, __file__, "--worker", engine, "--folder", str(folder), "--threads", str(threads),
           "--spec", json.dumps(spec)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"{engine} worker failed:\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def knn_quality(folder, engine, k, nq):
    exact = np.load(folder / f"flat_knn_{k}.npz")
    got = np.load(folder / f"{engine}_knn_{k}.npz")
    n = min(nq, len(exact["I"]), len(got["I"]))
    eI, gI, eD, gD = exact["I"][:n], got["I"][:n], exact["D"][:n], got["D"][:n]
    identical = bool(np.array_equal(eD, gD) and np.array_equal(eI, gI))
    recall = np.mean([len(set(a[a >= 0]) & set(b[b >= 0])) / max(1, (a >= 0).sum()) for a, b in zip(eI, gI)])
    rows_wrong = float(np.mean((eD != gD).any(axis=1)))
    return identical, float(recall), rows_wrong


def range_quality(folder, engine, r, nq):
    exact = np.load(folder / f"flat_range_{r}.npz")
    got = np.load(folder / f"{engine}_range_{r}.npz")
    n = min(nq, len(exact["lims"]) - 1, len(got["lims"]) - 1)
    found = total = 0
    identical = True
    for i in range(n):
        a = exact["I"][exact["lims"][i]:exact["lims"][i + 1]]
        b = got["I"][got["lims"][i]:got["lims"][i + 1]]
        total += len(a)
        found += len(set(a) & set(b))
        if engine.startswith("faiss"):
            identical &= set(a) == set(b)
        else:
            identical &= np.array_equal(a, b)
    return bool(identical), (found / total if total else 1.0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="full")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--kinds", default="structured,uniform", help="which of the preset's datasets to run")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--single", action="store_true",
                    help="one query per call (the shape of a service's traffic), 200 queries per engine")
    ap.add_argument("--worker", choices=ENGINES, help=argparse.SUPPRESS)
    ap.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--spec", type=str, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        spec = json.loads(args.spec)
        spec["radii"] = {int(k): v for k, v in spec["radii"].items()}
        run_worker(args.worker, args.folder, spec, args.threads)
        return 0
    preset = dict(PRESETS[args.preset], single=args.single)
    engines = [e for e in args.engines.split(",") if e]
    if "flat" not in engines:
        engines.insert(0, "flat")  # the exact reference
    ctx = context(args.threads)
    print(f"# MIHIndex vs FlatIndex, faiss.IndexBinaryFlat, faiss.IndexBinaryMultiHash (nflip=1): {ctx['cpu']} "
          f"({ctx['cores']} cores)  threads={args.threads}  simd={ctx['simd_level']}  faiss {ctx['faiss']}")
    if args.single:
        print("# q/s over 200 queries, one query per call (faiss_multihash: k-NN only); ", end="")
    else:
        print("# q/s over 1000 queries (200 for the linear engines at 10M and for faiss_multihash, k-NN only); ", end="")
    print("'exact' = identical D and I to FlatIndex; recall = share of exact neighbours returned")
    rows = []
    kinds = {k for k in args.kinds.split(",") if k}
    for kind, n, nbits in (d for d in preset["datasets"] if d[0] in kinds):
        with tempfile.TemporaryDirectory(prefix="deephash-mih-") as tmp:
            folder = Path(tmp)
            np.save(folder / "db.npy", make_codes(kind, n, nbits, seed=3))
            np.save(folder / "queries.npy", make_codes(kind, preset["nq"], nbits, seed=3, role="queries"))
            results = {e: spawn(e, folder, preset, args.threads) for e in engines}
            mih = results.get("mih")
            print(f"\n## {kind}, n={n:,}, {nbits} bits" + (f", m={mih['m']}" if mih else ""))
            print("build: " + ", ".join(f"{e} {r['build_s']:.2f} s / {r['memory_bytes'] / 2**20:.0f} MiB"
                                        for e, r in results.items()))
            print(f"{'query':<12}" + "".join(f"{e:>18}" for e in engines) + f"{'mih/faiss_flat':>16}{'mih/flat':>10}  mih exact  faiss_mh recall")
            cells = [("knn", c["k"]) for c in results["flat"]["knn"]] + [("range", c["radius"]) for c in results["flat"]["range"]]
            for what, param in cells:
                key, field = ("knn", "k") if what == "knn" else ("range", "radius")
                qps = {}
                for e, r in results.items():
                    cell = next((c for c in r[key] if c[field] == param), None)
                    if cell is not None:
                        qps[e] = r["nq"] / cell["seconds"]
                quality = {}
                for e in engines:
                    if e == "flat" or e not in qps:
                        continue
                    quality[e] = (knn_quality(folder, e, param, preset["nq"]) if what == "knn"
                                  else range_quality(folder, e, param, preset["nq"]))
                label = f"k={param}" if what == "knn" else f"radius={param}"
                line = f"{label:<12}" + "".join(f"{qps[e]:>14.0f} q/s" if e in qps else f"{'-':>18}" for e in engines)
                if "mih" in qps and "faiss_flat" in qps:
                    line += f"{qps['mih'] / qps['faiss_flat']:>15.1f}x"
                elif "mih" in qps:
                    line += f"{'-':>16}"  # keep the columns under their headers
                if "mih" in qps:
                    line += f"{qps['mih'] / qps['flat']:>9.2f}x"
                if "mih" in quality:
                    line += f"  {'yes' if quality['mih'][0] else 'NO':>9}"
                if "faiss_multihash" in quality:
                    line += f"  {quality['faiss_multihash'][1]:>14.3f}"
                    line += f" ({100 * quality['faiss_multihash'][2]:.0f}% rows wrong)"
                print(line, flush=True)
                rows.append({"data": kind, "n": n, "nbits": nbits, "query": what, "param": param, "qps": qps,
                             "quality": {e: list(q) for e, q in quality.items()}})
            for e, r in results.items():
                rows.append({"data": kind, "n": n, "nbits": nbits, "engine": e, "build_s": r["build_s"],
                             "memory_bytes": r["memory_bytes"], **({"stats": r["stats"]} if "stats" in r else {})})
    mode = "-single" if args.single else ""
    out = args.json or (HERE.parent / "bench_results" / f"mih-{args.preset}{mode}-{time.strftime('%Y%m%d-%H%M%S')}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"context": ctx, "preset": args.preset, "single": args.single, "rows": rows}, indent=2))
    print(f"\n# results: {out}")
    exact = all(r["quality"]["mih"][0] for r in rows if "quality" in r and "mih" in r["quality"])
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
