"""DPN's ternary retrieval against its binary codes, on the same trained networks.

Trains DPN-T (``--method dpn-t``) per seed and code length, then ranks the database for every
query three ways from the same network outputs u: by the binary codes (u >= 0, what the index
stores by default), and by the ternary codes T(u) = sign(u) [|u| > m] for each threshold m, which
the DPN authors rank by (K - a . b) / 2 and the engine serves through
``deephash_engine.ternary.ternary_codes`` (4 bits per entry, Hamming distance 2 (K - a . b)).
mAP@all with ties by database index; the share of zero entries is reported too.

    python benchmarks/dpn_ternary.py                                  # fashion-mnist-mini, 16/32/64 bits, seeds 0-2
    python benchmarks/dpn_ternary.py --bits 64 --seeds 0 --thresholds 0.5 1
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_context import context  # noqa: E402

from deephash_engine.deep.data.datasets import load_protocol  # noqa: E402
from deephash_engine.deep.evaluation import compute_outputs, pack_codes  # noqa: E402
from deephash_engine.deep.losses.dpn import ternary_assignment  # noqa: E402
from deephash_engine.deep.run import load_trained_model, train_run  # noqa: E402
from deephash_engine.metrics import mean_average_precision  # noqa: E402
from deephash_engine.ternary import ternary_codes  # noqa: E402


MEASURES = ("binary", "ternary", "zeros")


def one_run(dataset: str, nbits: int, seed: int, epochs: int, thresholds, threads: int, work: Path) -> dict:
    out = work / f"dpn-t-{nbits}-{seed}"
    summary = train_run({"method": "dpn-t", "dataset": dataset, "nbits": nbits, "seed": seed,
                         "epochs": epochs, "threads": threads, "map_topk": [None]}, out, progress=False)
    model, _ = load_trained_model(out)
    data = load_protocol(dataset, seed=seed, split_path=out / "split.npz")
    uq, ql = compute_outputs(model, data.query, 512, "cpu", False, "query")
    ud, dl = compute_outputs(model, data.database, 512, "cpu", False, "database")
    row = {"nbits": nbits, "seed": seed, "train_seconds": summary["train_seconds"],
           "binary": mean_average_precision(pack_codes(uq), pack_codes(ud), ql, dl)}
    for m in thresholds:
        tq = ternary_assignment(torch.from_numpy(uq), m).numpy()
        td = ternary_assignment(torch.from_numpy(ud), m).numpy()
        row[f"ternary_{m:g}"] = mean_average_precision(ternary_codes(tq, "query"), ternary_codes(td, "database"),
                                                       ql, dl)
        row[f"zeros_{m:g}"] = float((td == 0).mean())
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="fashion-mnist-mini")
    ap.add_argument("--bits", type=int, nargs="+", default=[16, 32, 64])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--thresholds", type=float, nargs="+", default=[0.5, 1.0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for nbits in args.bits:
            for seed in args.seeds:
                t0 = time.perf_counter()
                row = one_run(args.dataset, nbits, seed, args.epochs, args.thresholds, args.threads, Path(tmp))
                rows.append(row)
                shown = "  ".join(f"{k} {v:.4f}" for k, v in row.items() if k.startswith(MEASURES))
                print(f"{nbits} bits seed {seed}: {shown}  ({time.perf_counter() - t0:.0f} s)", flush=True)
    print("\nmean over seeds, mAP@all:")
    for nbits in args.bits:
        mine = [r for r in rows if r["nbits"] == nbits]
        keys = [k for k in mine[0] if k.startswith(MEASURES)]
        print(f"{nbits} bits: " + "  ".join(f"{k} {np.mean([r[k] for r in mine]):.4f}" for k in keys))
    if args.json:
        shown_args = vars(args) | {"json": str(args.json)}
        args.json.write_text(json.dumps({"context": context(args.threads), "args": shown_args, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
