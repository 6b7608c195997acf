"""The ``deephash`` command.

    deephash train --method dpsh --dataset fashion-mnist --bits 64 [--epochs 3]
                   [--config file.yaml] --out runs/NAME
    deephash encode --run runs/NAME --input images.npy|list.txt --output codes.npy
    deephash index build --codes codes.npy --out index.dhi [--index flat|mih]
    deephash search --index index.dhi --queries q.npy|'q-*.npy' (--k 10 | --radius 4) --out DIR
    deephash dedup --codes codes.npy --radius 3 --out DIR [--format parquet|npy]
    deephash serve --data DIR [--host 127.0.0.1] [--port 8000] [--token-file F]

``train`` trains with validation-based model selection, encodes the protocol's query and
database sets, and writes the metrics report, plots and a FlatIndex into ``--out`` (see
:mod:`deephash_engine.deep.run`). Options on the command line override the config file, which
overrides the defaults. ``encode`` turns new inputs into packed codes with a trained run.
``index build``, ``search`` and ``dedup`` are the bulk jobs of :mod:`deephash_engine.bulk`: ``.npy``
files in; k-NN results as ``.npy``, range hits and near-duplicate pairs as Parquet parts (or
``.npy`` with ``--format npy``), nothing that looks finished left by a job that stops; progress
on stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence


def _key_values(items: Optional[Sequence[str]], what: str, convert) -> dict:
    out = {}
    for item in items or []:
        if "=" not in item:
            raise SystemExit(f"deephash: {what}: expected KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        out[key] = convert(value)
    return out


def _number_or_text(value: str):
    import yaml

    return yaml.safe_load(value)


def _registered_names() -> dict[str, str]:
    """The names each registry holds (losses, protocols, backbones, regularisers), for the help;
    a register that needs PyTorch says so when it is missing."""
    try:
        from deephash_engine.deep.data import PROTOCOLS
        from deephash_engine.deep.methods import METHODS, REGULARIZERS
        from deephash_engine.deep.models import MODELS
    except ImportError:
        return dict.fromkeys(("method", "dataset", "model", "reg"), "(listed when PyTorch is installed)")
    registries = {"method": METHODS, "dataset": PROTOCOLS, "model": MODELS, "reg": REGULARIZERS}
    return {key: ", ".join(registry) for key, registry in registries.items()}


def _train_parser(sub) -> None:
    p = sub.add_parser("train", help="train a deep hashing model and evaluate it")
    p.add_argument("--out", required=True, help="run folder (created), e.g. runs/NAME")
    p.add_argument("--config", help="YAML file of run options (see configs/)")
    names = _registered_names()
    p.add_argument("--method", help="loss: " + names["method"])
    p.add_argument("--dataset", "--protocol", dest="dataset", help="protocol: " + names["dataset"])
    p.add_argument("--bits", dest="nbits", type=int, help="code length in bits (nbits), any length >= 1")
    p.add_argument("--epochs", type=int)
    p.add_argument("--model", help="backbone: " + names["model"])
    p.add_argument("--weights", help="local state_dict file for a torchvision backbone")
    p.add_argument("--head-hidden", dest="head_hidden", type=int,
                   help="width of a Linear layer between backbone and hash layer (0: none; default: the "
                        "method's own, 1024 for pcdh, else 0)")
    p.add_argument("--batch-size", dest="batch_size", type=int)
    p.add_argument("--optimizer", choices=["adam", "sgd", "rmsprop"])
    p.add_argument("--lr", type=float)
    p.add_argument("--head-lr-mult", dest="head_lr_mult", type=float)
    p.add_argument("--weight-decay", dest="weight_decay", type=float)
    p.add_argument("--schedule", choices=["none", "cosine", "step"])
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--eval-every", dest="eval_every", type=int)
    p.add_argument("--select", choices=["best_val", "last"])
    p.add_argument("--root", help="dataset folder (IDX files, cifar-10-batches-py, image root)")
    p.add_argument("--list", dest="lists", action="append", metavar="PART=FILE",
                   help="image-list file per part: train=, test= (or query=), database=, or all=")
    p.add_argument("--param", action="append", metavar="KEY=VALUE", help="loss hyper-parameter")
    p.add_argument("--reg", action="append", metavar="NAME=WEIGHT", help="regulariser: " + names["reg"])
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last.pt")
    p.add_argument("--no-progress", dest="progress", action="store_false")


def _encode_parser(sub) -> None:
    p = sub.add_parser("encode", help="encode new inputs with a trained run")
    p.add_argument("--run", required=True, help="folder of a finished 'deephash train'")
    p.add_argument("--input", required=True,
                   help=".npy of uint8 images (n, H, W[, C]) or an image-list file (path labels...)")
    p.add_argument("--output", required=True, help=".npy file for the packed uint8 codes")
    p.add_argument("--root", help="image root for a list input (default: the list's folder)")
    p.add_argument("--batch-size", dest="batch_size", type=int, default=256)
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-progress", dest="progress", action="store_false")


def _bulk_parsers(sub) -> None:
    index = sub.add_parser("index", help="build an index file from a file of codes")
    index_sub = index.add_subparsers(dest="index_command", required=True)
    p = index_sub.add_parser("build", help="index the rows of a .npy file of packed codes (ids = row numbers)")
    p.add_argument("--codes", required=True, help=".npy file, uint8 (n, ceil(nbits / 8))")
    p.add_argument("--bits", dest="nbits", type=int, help="code length in bits (default 8 per byte of the codes; "
                   "a shorter length needs the padding bits of the last byte zero)")
    p.add_argument("--out", required=True, help="index file to write (docs/format.md)")
    p.add_argument("--index", choices=("flat", "mih"), default="flat", help="FlatIndex or MIHIndex (default flat)")
    p.add_argument("--m", type=int, help="MIH substring tables (default: chosen from the size)")
    p.add_argument("--shards", type=int, help="write a sharded index: N shard files and --out as its "
                   "manifest (JSON), searched on Ray with `deephash search --ray`")
    p.add_argument("--sharding", choices=("hash", "range"), default="hash",
                   help="with --shards: place ids by id %% N (hash, default) or by contiguous id ranges (range)")
    p.add_argument("--no-progress", dest="progress", action="store_false")

    p = sub.add_parser("search", help="search a .npy file of queries against an index file")
    p.add_argument("--index", required=True, help="index file written by save() or `deephash index build`")
    p.add_argument("--queries", required=True, nargs="+",
                   help=".npy files or a quoted glob, uint8 (nq, ceil(nbits / 8)), searched in the order given (a glob: by name)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--k", type=int, help="k nearest neighbours: writes D.npy and I.npy (nq x k)")
    what.add_argument("--radius", type=int, help="every item within this distance: writes hits.parquet/ "
                      "(query, id, distance), or lims.npy, D.npy, I.npy with --format npy")
    p.add_argument("--out", required=True, help="result folder (created)")
    p.add_argument("--batch", type=int, default=10_000, help="queries per search call (default 10000)")
    p.add_argument("--threads", type=int, help="threads of the core (default: all cores)")
    p.add_argument("--mmap", action="store_true", help="search the index file (or the shard files) in place, "
                   "memory-mapped, instead of reading it into memory")
    _format_argument(p)
    _ray_argument(p)
    p.add_argument("--executor", choices=("driver", "ray-data"), default="driver",
                   help="with --ray: this process streams the batches to the shards (driver, default) or Ray Data does")
    p.add_argument("--no-progress", dest="progress", action="store_false")

    p = sub.add_parser("dedup", help="every pair of codes within a Hamming radius")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--codes", help=".npy file, uint8 (n, ceil(nbits / 8)): pairs of row numbers")
    source.add_argument("--index", help="a sharded index's manifest (with --ray): pairs of ids")
    p.add_argument("--radius", type=int, required=True, help="largest Hamming distance of a pair (inclusive)")
    p.add_argument("--out", required=True, help="result folder (created): pairs.parquet/ (item, id, distance), or "
                   "pairs.npy and distances.npy with --format npy")
    p.add_argument("--batch", type=int, default=10_000)
    _format_argument(p)
    _ray_argument(p)
    p.add_argument("--no-progress", dest="progress", action="store_false")


def _format_argument(p) -> None:
    p.add_argument("--format", choices=("parquet", "npy"), default="parquet",
                   help="range hits and pairs as Parquet parts (default) or .npy arrays")


def _ray_argument(p) -> None:
    p.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="the index is a sharded one (its manifest): run on the Ray cluster at ADDRESS, or on a "
                        "local Ray started for this command when no address is given")


class _RayCluster:
    """Connects to the Ray cluster at `address`, or starts a local one (stopped on exit)."""

    def __init__(self, address: str):
        self.address = address
        self.started = False

    def __enter__(self):
        import os

        if self.address == "local":  # a local cluster on the loopback interface only (read at import)
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        import ray

        if not ray.is_initialized():
            if self.address == "local":
                ray.init(include_dashboard=False, log_to_driver=False)
            else:
                ray.init(address=self.address, log_to_driver=False)
            self.started = True
        return self

    def __exit__(self, *exc):
        if self.started:
            import ray

            ray.shutdown()


def _cmd_bulk(args) -> int:
    from deephash_engine import bulk, set_num_threads

    if args.command == "index":
        if args.shards:
            from deephash_engine.distributed import ShardedIndex

            manifest = ShardedIndex.build(args.codes, args.out, args.shards, index=args.index, sharding=args.sharding,
                                          nbits=args.nbits)
            total = sum(s.ntotal for s in manifest.shards)
            print(f"sharded index of {total} codes of {manifest.nbits} bits in {manifest.nshards} shards "
                  f"({manifest.sharding} sharding) -> {args.out}")
            return 0
        index = bulk.build_index(args.codes, args.out, kind=args.index, m=args.m, progress=args.progress,
                                 nbits=args.nbits)
        print(f"{type(index).__name__} of {index.ntotal} codes of {index.nbits} bits -> {args.out}")
        return 0
    if getattr(args, "threads", None) is not None:
        set_num_threads(args.threads)
    if args.ray:
        from deephash_engine.distributed import ShardedIndex, near_duplicates

        source = args.index
        # Shards in memory unless --mmap: a mapped file lies in 4 KiB pages, slower to scan (docs/benchmarks.md).
        with _RayCluster(args.ray), ShardedIndex.open(source, mmap=getattr(args, "mmap", False)) as sharded:
            if args.command == "search":
                job = bulk.bulk_search(sharded, args.queries, args.out, k=args.k, radius=args.radius,
                                       batch=args.batch, progress=args.progress, format=args.format,
                                       executor=args.executor)
            else:
                job = near_duplicates(sharded, args.radius, args.out, batch=args.batch, progress=args.progress,
                                      format=args.format)
    elif args.command == "search":
        if args.executor != "driver":
            raise ValueError("--executor ray-data needs --ray (a sharded index)")
        job = bulk.bulk_search(args.index, args.queries, args.out, k=args.k, radius=args.radius, batch=args.batch,
                               mmap=args.mmap, progress=args.progress, format=args.format)
    else:
        if args.codes is None:
            raise ValueError("dedup --index needs --ray (a sharded index); give --codes for a codes file")
        job = bulk.near_duplicates(args.codes, args.radius, args.out, batch=args.batch, progress=args.progress,
                                   format=args.format)
    if args.command == "search":
        what = f"k={job['k']}" if job["k"] is not None else f"radius={job['radius']}"
        print(f"{job['queries']} queries, {what}, against {job['ntotal']} codes in {job['seconds']:.2f} s -> {args.out}")
    else:
        print(f"{job['pairs']} pairs within {job['radius']} bits among {job['codes']} codes -> {args.out}")
    return 0


def _serve_parser(sub) -> None:
    p = sub.add_parser("serve", help="serve collections over HTTP (needs the 'serve' extra)")
    p.add_argument("--data", required=True, help="data folder: one SQLite file and snapshots per collection")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--token-file", dest="token_file",
                   help="file holding the bearer token every request but /health must carry")
    p.add_argument("--max-body-bytes", dest="max_body_bytes", type=int, default=64 * 1024 * 1024)
    p.add_argument("--max-batch", dest="max_batch", type=int, default=10_000,
                   help="most codes, inputs or ids in one request")
    p.add_argument("--max-range-hits", dest="max_range_hits", type=int, default=100_000,
                   help="most hits a range search may answer over all its queries (more is refused with 422)")
    p.add_argument("--snapshot-interval", dest="snapshot_interval", type=float, default=60.0,
                   help="seconds between background snapshots (0: only on request and at shutdown)")
    p.add_argument("--inline-search-ms", dest="inline_search_ms", type=float, default=5.0,
                   help="plain k-NN searches of codes expected to take less run on the event loop, sparing the "
                        "hand-off to a worker thread (0: every search in a worker thread)")
    p.add_argument("--thread-spin-us", dest="thread_spin_us", type=int, default=2000,
                   help="microseconds the core's idle threads poll for the next search before they sleep "
                        "(deephash_engine.set_thread_spin; the library's default is 200): requests come closer "
                        "than that, and a thread woken from sleep joins a search late")
    p.add_argument("--no-fast-lane", dest="fast_lane", action="store_false",
                   help="answer every search through FastAPI's route (the fast lane answers plain k-NN searches "
                        "of codes below it, with the same answers)")


def _cmd_serve(args) -> int:
    try:
        import uvicorn

        from deephash_engine.serve.app import Limits, create_app
    except ImportError as exc:
        raise ImportError(f"{exc}; install the service with: pip install 'deephash-engine[serve]'") from exc
    token = None
    if args.token_file:
        token = Path(args.token_file).read_text().strip()
        if not token:
            raise ValueError(f"--token-file: {args.token_file} is empty")
    import deephash_engine as de

    de.set_thread_spin(args.thread_spin_us)
    if args.inline_search_ms < 0:
        raise ValueError(f"--inline-search-ms must be >= 0, got {args.inline_search_ms}")
    limits = Limits(max_body_bytes=args.max_body_bytes, max_batch=args.max_batch, max_range_hits=args.max_range_hits,
                    fast_lane=args.fast_lane, inline_search_ms=args.inline_search_ms)
    app = create_app(args.data, token=token, limits=limits, snapshot_interval=args.snapshot_interval)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def _cmd_train(args) -> int:
    from deephash_engine.deep.run import RunConfig, load_config_file, train_run

    config = load_config_file(args.config) if args.config else {}
    for key in ("method", "dataset", "nbits", "epochs", "model", "weights", "head_hidden", "batch_size",
                "optimizer", "lr", "head_lr_mult", "weight_decay", "schedule", "seed", "device",
                "threads", "eval_every", "select", "root"):
        value = getattr(args, key)
        if value is not None:
            config[key] = value
    if args.lists:
        config["lists"] = _key_values(args.lists, "--list", str)
    if args.param:
        config.setdefault("loss_params", {}).update(_key_values(args.param, "--param", _number_or_text))
    if args.reg:
        config.setdefault("regularizers", {}).update(_key_values(args.reg, "--reg", float))
    cfg = RunConfig.from_dict(config)
    summary = train_run(cfg, args.out, resume=args.resume, progress=args.progress)
    maps = ", ".join(f"mAP@{k} {v:.4f}" for k, v in summary["map"].items())
    print(f"{cfg.method} {cfg.nbits} bits on {cfg.dataset}: {maps} "
          f"(epoch {summary['selected_epoch']} selected on validation, "
          f"{summary['train_seconds']:.0f} s training) -> {args.out}")
    return 0


def _cmd_encode(args) -> int:
    import numpy as np

    from deephash_engine.datasets import NORMALIZATION, read_image_list
    from deephash_engine.deep.data import ArrayHashingDataset, ImageListHashingDataset
    from deephash_engine.deep.evaluation import encode
    from deephash_engine.deep.run import load_trained_model

    from deephash_engine.deep.methods import METHODS

    model, ckpt = load_trained_model(args.run, args.device)
    method = ckpt["config"]["method"]
    if method in METHODS and METHODS[method].quantized:
        raise ValueError(f"--run: a {method} run has quantization codes, not binary ones; its database codes, "
                         "codebooks and FAISS index are in codes.npz and database.faiss")
    source = ckpt["data"]["source"]
    path = Path(args.input)
    if path.suffix == ".npy":
        images = np.load(path, allow_pickle=False)
        mean, std = NORMALIZATION[source]
        dataset = ArrayHashingDataset(images, np.zeros((images.shape[0], 1), np.float32), mean, std)
    else:
        image_list = read_image_list(path, args.root)
        dataset = ImageListHashingDataset(image_list, np.arange(len(image_list.paths)))
    codes, _ = encode(model, dataset, args.batch_size, args.device, progress=args.progress)
    np.save(args.output, codes)
    print(f"{codes.shape[0]} codes of {codes.shape[1] * 8} bits -> {args.output}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="deephash", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    _encode_parser(sub)
    _bulk_parsers(sub)
    _serve_parser(sub)
    args = parser.parse_args(argv)
    commands = {"train": _cmd_train, "encode": _cmd_encode, "index": _cmd_bulk, "search": _cmd_bulk,
                "dedup": _cmd_bulk, "serve": _cmd_serve}
    try:
        return commands[args.command](args)
    except (ValueError, TypeError, KeyError, OSError, ImportError) as exc:
        print(f"deephash {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
