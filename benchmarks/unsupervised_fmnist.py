"""Unsupervised hashing on Fashion-MNIST: retrieval quality and fit/encode time of every method.

Protocol: pixels scaled to [0, 1]; the database (and training set) is the 60,000 training images;
the queries are 1,000 test images drawn with seed 0; relevance = same class label. Metrics: mAP
over the whole ranking, mAP@1000, and precision within Hamming radius 2 (a query with nothing
inside the radius scores 0); ties at equal distance are ranked by database index. Scores come
from deephash_engine.metrics with its default evaluation policy. Each method
runs with its reference defaults and seed 0 at 16, 32 and 64 bits.

    python benchmarks/unsupervised_fmnist.py                  # full protocol (minutes)
    python benchmarks/unsupervised_fmnist.py --preset demo    # 10,000 database images, quick
    python benchmarks/unsupervised_fmnist.py --threads 1      # pin BLAS and torch to one thread

Prints the context and a table, and writes the same numbers as JSON (--json).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

PRESETS = {
    # database size (None = all 60,000), queries, bit lengths
    "full": (None, 1000, (16, 32, 64)),
    "demo": (10000, 500, (16, 32)),
}
METHODS = ("LSH", "PCAH", "ITQ", "SH", "SpH", "AGH-1", "AGH-2", "DGH", "SGH")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="full")
    parser.add_argument("--bits", type=int, nargs="+", help="bit lengths (default: the preset's)")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--queries", type=int, help="number of test queries (default: the preset's)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the query draw and of every method")
    parser.add_argument("--threads", type=int, help="BLAS and torch threads (default: library defaults)")
    parser.add_argument("--json", default="bench_results/unsupervised_fmnist.json", help="where to write JSON")
    return parser.parse_args(argv)


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None and ARGS.threads:
    # Must happen before NumPy loads its BLAS.
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(ARGS.threads)

import bench_context  # noqa: E402  (benchmarks/bench_context.py, beside this script)
import numpy as np  # noqa: E402

from deephash_engine.datasets import load_fashion_mnist  # noqa: E402
from deephash_engine.hashing import AGH, DGH, ITQ, LSH, PCAH, SGH, SH, SpH  # noqa: E402
from deephash_engine.metrics import hamming_radius_metrics, mean_average_precision  # noqa: E402


def make_hasher(name: str, nbits: int, seed: int, threads: int | None):
    factories = {
        "LSH": lambda: LSH(nbits, seed=seed),
        "PCAH": lambda: PCAH(nbits, seed=seed),
        "ITQ": lambda: ITQ(nbits, seed=seed),
        "SH": lambda: SH(nbits, seed=seed),
        "SpH": lambda: SpH(nbits, seed=seed),
        "AGH-1": lambda: AGH(nbits, layers=1, seed=seed),
        "AGH-2": lambda: AGH(nbits, layers=2, seed=seed),
        "DGH": lambda: DGH(nbits, seed=seed),
        "SGH": lambda: SGH(nbits, num_threads=threads, seed=seed),
    }
    return factories[name]()


# ----------------------------------------------------------------------------- evaluation
def evaluate(query_codes, db_codes, query_labels, db_labels) -> dict[str, float]:
    """mAP@all, mAP@1000 and precision within radius 2, by the metrics module's default evaluation policy."""
    return {
        "map_all": mean_average_precision(query_codes, db_codes, query_labels, db_labels, topk=None),
        "map_1000": mean_average_precision(query_codes, db_codes, query_labels, db_labels, topk=1000),
        "p_r2": hamming_radius_metrics(query_codes, db_codes, query_labels, db_labels, radius=2).at(2)["precision"],
    }


# ----------------------------------------------------------------------------- context
def context(args, n_db, n_queries, bits):
    info = bench_context.context(args.threads or 0)
    info.pop("faiss", None)
    info.update({
        "threads": args.threads or "library default",
        "numpy": np.__version__,
        "database": n_db,
        "queries": n_queries,
        "bits": list(bits),
        "seed": args.seed,
        "evaluator": "deephash_engine.metrics (default policy)",
        "command": " ".join(["python", *sys.argv]),
    })
    try:
        import torch

        info["torch"] = torch.__version__
        info["sgh_device"] = "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:
        info["torch"] = None
    return info


def main(args) -> int:
    n_db, n_queries, bits = PRESETS[args.preset]
    n_queries = args.queries or n_queries
    bits = tuple(args.bits or bits)
    if args.threads:
        try:
            import torch

            torch.set_num_threads(args.threads)
        except ImportError:
            pass
    ds = load_fashion_mnist()
    db = ds.train_images.reshape(len(ds.train_images), -1).astype(np.float64) / 255.0
    db_labels = ds.train_labels
    if n_db is not None:
        db, db_labels = db[:n_db], db_labels[:n_db]
    pick = np.sort(np.random.default_rng(args.seed).choice(len(ds.test_images), size=n_queries, replace=False))
    queries = ds.test_images[pick].reshape(n_queries, -1).astype(np.float64) / 255.0
    query_labels = ds.test_labels[pick]
    info = context(args, len(db), n_queries, bits)
    for key, value in info.items():
        print(f"# {key}: {value}")
    header = f"{'method':<7} {'bits':>4} {'mAP@all':>8} {'mAP@1000':>9} {'P@r<=2':>7} {'fit s':>8} {'encode s':>9}"
    print(header)
    print("-" * len(header), flush=True)
    rows = []
    for nbits in bits:
        for name in args.methods:
            hasher = make_hasher(name, nbits, args.seed, args.threads)
            start = time.perf_counter()
            hasher.fit(db)
            fit_s = time.perf_counter() - start
            start = time.perf_counter()
            db_codes = hasher.encode(db)
            query_codes = hasher.encode(queries)
            encode_s = time.perf_counter() - start
            scores = evaluate(query_codes, db_codes, query_labels, db_labels)
            row = {"method": name, "nbits": nbits, **scores, "fit_s": fit_s, "encode_s": encode_s,
                   "params": hasher.get_params()}
            rows.append(row)
            print(f"{name:<7} {nbits:>4} {scores['map_all']:>8.4f} {scores['map_1000']:>9.4f} "
                  f"{scores['p_r2']:>7.4f} {fit_s:>8.2f} {encode_s:>9.2f}", flush=True)
    folder = os.path.dirname(os.path.abspath(args.json))
    os.makedirs(folder, exist_ok=True)
    with open(args.json, "w") as fh:
        json.dump({"context": info, "results": rows}, fh, indent=2)
    print(f"# wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main(ARGS))
