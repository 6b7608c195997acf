"""Deep hashing on Fashion-MNIST: the small CNN, several methods, bit widths and seeds.

Protocol ("fashion-mnist" in deephash_engine.deep.data, the default): 1,000 seeded test queries
(100 per class) against the 60,000 training images, class relevance; training on 59,000 of those
images, model selection on a 1,000-image validation split of the training set (never on the
queries). ``--protocol fashion-mnist-mini`` (500 queries, 2,000 training and 500 validation
images, a 5,000-image database) makes a run take seconds instead of minutes, for grids over many
methods. Every method of the registry runs: a quantization method's mAP is that of its ADC
ranking, and a label-free method trains on the frozen features of its default backbone (``pca``)
without labels, as ``deephash train`` does.
Reports mAP@all and mAP@1000 (ties by database index, AP over the relevant items retrieved),
mean and spread over seeds, and training time, and writes JSON next to the printed table.

    python benchmarks/deep_fmnist.py                      # the full grid: 7 methods x 16/32/64 x 3 seeds
    python benchmarks/deep_fmnist.py --bits 64 --seeds 0  # a reduced grid
    python benchmarks/deep_fmnist.py --bits 64 --seeds 0 --epochs 8 --schedule cosine  # longer budget
    python benchmarks/deep_fmnist.py --protocol fashion-mnist-mini --methods dqn bihalf --bits 16
    python benchmarks/deep_fmnist.py --merge OUT1 OUT2 --out OUT  # one table from several outputs
    python benchmarks/deep_fmnist.py --peer-dir DeepHash-pytorch  # each method beside its peer's loss

``--peer-dir`` takes a checkout of DeepHash-pytorch (git clone
https://github.com/swuxyj/DeepHash-pytorch) and, after each method that has a loss there, trains
that loss in the same run as ``peer-<method>``, with the same model, data, optimiser, schedule and
epochs (deephash_pytorch_peer.py says how it is loaded). ADSH, DAPH and PCDH, whose algorithm is
in the script rather than in a loss module, run the script's own training loop on the same data,
backbone and optimiser (deephash_pytorch_scripts.py); the schedule option does not apply to them.
``--thulab-dir`` takes a checkout of thulab/DeepHash and ``--tf-python`` the interpreter of an
environment with TensorFlow 2: after DQN, DVSQ, DTQ, DHN and DCH, thulab's own graph of the method trains
the same backbone in a process of its own (thulab_peer.py says how), as ``peer-<method>``; DHN and
DCH, which have DeepHash-pytorch peers too, run as ``thulab-<method>`` beside ``--peer-dir``.
A peer whose research code needs more memory than the machine has available (CNNH's loss and
DAPH's script form (n, n) matrices over the training set) is not run: results.json lists it under
"skipped" with the reason, and the grid goes on.

A grid can be split over several processes (one per core, each with its own ``--out``) and the
outputs merged: ``--merge`` reads each folder's results.json, keeps one run per (method, bits,
seed) (a later folder wins) and writes the merged table and JSON to ``--out``. Outputs of
different protocols are not merged.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

METHODS = ["dpsh", "hashnet", "dsh", "dch", "csq", "greedyhash", "dsdh"]
PROTOCOLS = ("fashion-mnist", "fashion-mnist-mini")


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown"


def itq_baseline(bits: int, seed: int, protocol: str = "fashion-mnist") -> float | None:
    """ITQ on raw pixels under the same protocol, when the hashing module is installed."""
    try:
        from deephash_engine.hashing import ITQ
    except ImportError:
        return None
    import numpy as np

    from deephash_engine.datasets import load_fashion_mnist_pool
    from deephash_engine.deep.data import get_protocol
    from deephash_engine.metrics import mean_average_precision

    pool = load_fashion_mnist_pool()
    split = get_protocol(protocol).split(pool.targets, np.where(pool.official_train, 0, 1), seed)
    x = pool.images.reshape(len(pool), -1).astype(np.float32) / 255.0
    model = ITQ(bits, seed=seed).fit(x[split.train])
    q, d = model.encode(x[split.query]), model.encode(x[split.database])
    return mean_average_precision(q, d, pool.targets[split.query], pool.targets[split.database])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--methods", nargs="+", default=METHODS)
    p.add_argument("--protocol", choices=PROTOCOLS, default="fashion-mnist",
                   help="the split: the full one, or the mini one for quick grids over many methods")
    p.add_argument("--bits", nargs="+", type=int, default=[16, 32, 64])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--schedule", choices=("none", "cosine", "step"), default="none",
                   help="learning-rate schedule over the epochs (cosine: down to 0 at the last epoch)")
    p.add_argument("--head-lr-mult", type=float, default=1.0, help="hash head lr = lr x this")
    p.add_argument("--out", default="bench_results/deep_fmnist")
    p.add_argument("--progress", action="store_true")
    p.add_argument("--merge", nargs="+", metavar="DIR",
                   help="train nothing: merge the results.json of these output folders into --out")
    p.add_argument("--peer-dir", metavar="DIR",
                   help="a checkout of DeepHash-pytorch: after each method that has a loss there, train "
                        "that loss too (as peer-<method>), same model, data, optimiser and epochs")
    p.add_argument("--thulab-dir", metavar="DIR",
                   help="a checkout of thulab/DeepHash: after each of its methods (DQN, DVSQ, DTQ, DHN, "
                        "DCH), train its model's graph too (as peer-<method>, or thulab-<method> beside "
                        "--peer-dir; thulab_peer.py), needs --tf-python")
    p.add_argument("--tf-python", metavar="PY",
                   help="the Python of an environment with TensorFlow 2 (for --thulab-dir)")
    args = p.parse_args(argv)
    if args.thulab_dir and not args.tf_python:
        p.error("--thulab-dir needs --tf-python (an interpreter that can import tensorflow)")
    if args.merge:
        return merge(args.merge, Path(args.out))
    methods = list(args.methods)
    script_peers = {}
    if args.peer_dir:
        from deephash_pytorch_peer import PEERS, PeerTooLarge, register_peers
        from deephash_pytorch_scripts import SCRIPT_PEERS

        register_peers(args.peer_dir, [m for m in PEERS if m in methods])
        script_peers = {f"peer-{m}": m for m in SCRIPT_PEERS if m in methods}
        methods = [name for m in methods
                   for name in ([m, f"peer-{m}"] if m in PEERS or m in SCRIPT_PEERS else [m])]
    thulab_peers = {}
    if args.thulab_dir:
        from thulab_peer import THULAB_PEERS

        thulab_peers = thulab_peer_names(methods, THULAB_PEERS)
        by_method = {m: name for name, m in thulab_peers.items()}
        methods = [name for m in methods for name in ([m, by_method[m]] if m in by_method else [m])]

    import torch

    from deephash_engine.deep.run import RunConfig, train_run

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    context = {
        "protocol": args.protocol, "cpu": cpu_model(), "threads": args.threads, "torch": torch.__version__,
        "python": platform.python_version(), "epochs": args.epochs, "lr": args.lr,
        "schedule": args.schedule, "head_lr_mult": args.head_lr_mult,
        "command": "python benchmarks/deep_fmnist.py " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    print(f"# protocol {args.protocol}; {context['cpu']}, {args.threads} torch thread(s), "
          f"torch {torch.__version__}", flush=True)
    too_large = PeerTooLarge if args.peer_dir else ()  # a peer too large for this machine is skipped
    rows, skipped = [], []
    results_path = out / "results.json"
    for bits in args.bits:
        for method in methods:
            for seed in args.seeds:
                # from_dict, as `deephash train` builds it: a label-free method gets its backbone
                cfg = RunConfig.from_dict(dict(
                    method=script_peers.get(method, thulab_peers.get(method, method)), dataset=args.protocol,
                    nbits=bits, seed=seed, epochs=args.epochs, lr=args.lr, threads=args.threads, device="cpu", schedule=args.schedule,
                    head_lr_mult=args.head_lr_mult))
                start = time.perf_counter()
                run_dir = out / f"{method}-{bits}-s{seed}"
                try:
                    if method in script_peers:  # the research script's own training loop
                        from deephash_pytorch_scripts import ScriptRun

                        summary = ScriptRun(script_peers[method], args.peer_dir, cfg).run(run_dir)
                    elif method in thulab_peers:  # thulab's TensorFlow graph, in a process of its own
                        from thulab_peer import ThulabRun

                        summary = ThulabRun(thulab_peers[method], args.thulab_dir, args.tf_python, cfg).run(run_dir)
                    else:
                        summary = train_run(cfg, run_dir, progress=args.progress)
                except too_large as e:  # the rest of the grid still runs
                    skipped.append({"method": method, "bits": bits, "seed": seed, "reason": str(e)})
                    print(f"{method:>16} {bits:3d} bits seed {seed}: skipped: {e}", flush=True)
                    results_path.write_text(json.dumps({"protocol": args.protocol, "context": context,
                                                        "runs": rows, "skipped": skipped}, indent=2))
                    continue
                row = {"method": method, "bits": bits, "seed": seed, "protocol": args.protocol,
                       "map_all": summary["map"]["all"], "map_1000": summary["map"]["1000"],
                       "train_seconds": summary["train_seconds"],
                       "total_seconds": time.perf_counter() - start,
                       "selected_epoch": summary["selected_epoch"], "ranking": ranking(run_dir)}
                rows.append(row)
                print(f"{method:>16} {bits:3d} bits seed {seed}: mAP@all {row['map_all']:.4f} "
                      f"mAP@1000 {row['map_1000']:.4f} train {row['train_seconds']:.0f} s "
                      f"(epoch {row['selected_epoch']})", flush=True)
                results_path.write_text(json.dumps({"protocol": args.protocol, "context": context,
                                                    "runs": rows, "skipped": skipped}, indent=2))
    itq = {bits: itq_baseline(bits, args.seeds[0], args.protocol) for bits in args.bits}
    table = summarize(rows, itq)
    print("\n" + table)
    results_path.write_text(json.dumps({"protocol": args.protocol, "context": context, "runs": rows,
                                        "skipped": skipped, "itq": itq}, indent=2))
    (out / "table.md").write_text(table + "\n")
    return 0


def thulab_peer_names(methods: list[str], thulab_methods) -> dict[str, str]:
    """Run name -> method of thulab's peers among ``methods`` (which may already hold the
    DeepHash-pytorch peers' ``peer-<method>``): ``peer-<method>``, or ``thulab-<method>`` where a
    DeepHash-pytorch peer of the method runs too (DHN, DCH)."""
    return {f"{'thulab' if f'peer-{m}' in methods else 'peer'}-{m}": m for m in thulab_methods if m in methods}


def ranking(run_dir: Path) -> str:
    """How the run's mAP ranks the database: "adc" for a quantization method (distances of the
    query embedding to the database's codebook reconstructions), else "hamming"."""
    report = json.loads((run_dir / "report.json").read_text())
    return report.get("search", "hamming")


def results_protocol(data: dict) -> str:
    """The protocol of a results.json (outputs written before --protocol existed: the full one)."""
    return data.get("protocol") or (data.get("context") or {}).get("protocol") or "fashion-mnist"


def merge(folders, out: Path) -> int:
    """One table from several outputs of this script (a later folder wins on a repeated run)."""
    runs, itq, sources, protocols = {}, {}, [], {}
    for folder in folders:
        path = Path(folder) / "results.json"
        if not path.is_file():
            print(f"error: {path}: no such file", file=sys.stderr)
            return 2
        data = json.loads(path.read_text())
        protocols.setdefault(results_protocol(data), str(folder))
        if len(protocols) > 1:
            print(f"error: --merge: expected outputs of one protocol, got {sorted(protocols)} "
                  f"({', '.join(f'{k} in {v}' for k, v in sorted(protocols.items()))})", file=sys.stderr)
            return 2
        sources.append({"folder": str(folder), "context": data.get("context")})
        for row in data["runs"]:
            runs[(row["method"], row["bits"], row["seed"])] = row
        for bits, value in (data.get("itq") or {}).items():
            if value is not None:
                itq.setdefault(int(bits), value)
    order = method_order(runs.values())
    rows = sorted(runs.values(), key=lambda r: (r["bits"], order.index(r["method"]), r["seed"]))
    table = summarize(rows, dict(sorted(itq.items()))) + "\n\n" + wide_table(rows)
    print(table)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"protocol": next(iter(protocols), "fashion-mnist"),
                                                  "merged_from": sources, "runs": rows, "itq": itq}, indent=2))
    (out / "table.md").write_text(table + "\n")
    return 0


def wide_table(rows) -> str:
    """mAP@all as mean ± sample standard deviation over seeds: one row per method, one column
    per width (the seed count beside it when it is not the same everywhere)."""
    widths = sorted({r["bits"] for r in rows})
    methods = method_order(rows)
    counts = {len([r for r in rows if r["bits"] == b and r["method"] == m]) for b in widths for m in methods}
    lines = ["| method | " + " | ".join(f"{b} bits" for b in widths) + " |",
             "|---" * (len(widths) + 1) + "|"]
    for method in methods:
        cells = []
        for bits in widths:
            values = [r["map_all"] for r in rows if r["bits"] == bits and r["method"] == method]
            cell = _mean_spread(values) if values else ""
            if values and len(counts) > 1:
                cell += f" (n={len(values)})"
            cells.append(cell)
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def method_order(rows) -> list:
    """The methods of ``rows``: those of METHODS in its order, then the others as they first appear."""
    seen = list(dict.fromkeys(r["method"] for r in rows))
    return [m for m in METHODS if m in seen] + [m for m in seen if m not in METHODS]


def _mean_spread(values):
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def summarize(rows, itq) -> str:
    lines = ["| method | bits | seeds | mAP@all | mAP@1000 | train s/run |", "|---|---|---|---|---|---|"]
    order = method_order(rows)
    keys = sorted({(r["bits"], r["method"]) for r in rows}, key=lambda k: (k[0], order.index(k[1])))
    for bits, method in keys:
        sel = [r for r in rows if r["bits"] == bits and r["method"] == method]
        lines.append(
            f"| {method} | {bits} | {len(sel)} | {_mean_spread([r['map_all'] for r in sel])} | "
            f"{_mean_spread([r['map_1000'] for r in sel])} | "
            f"{statistics.mean(r['train_seconds'] for r in sel):.0f} |")
    for bits, value in itq.items():
        if value is not None:
            lines.append(f"| ITQ (raw pixels) | {bits} | 1 | {value:.3f} | | |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
