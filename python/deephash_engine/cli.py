"""The ``deephash`` command.

    deephash train --method dpsh --dataset fashion-mnist --bits 64 [--epochs 3]
                   [--config file.yaml] --out runs/NAME
    deephash encode --run runs/NAME --input images.npy|list.txt --output codes.npy
    deephash serve --data DIR [--host 127.0.0.1] [--port 8000] [--token-file F]

``train`` trains with validation-based model selection, encodes the protocol's query and
database sets, and writes the metrics report, plots and a FlatIndex into ``--out`` (see
:mod:`deephash_engine.deep.run`). Options on the command line override the config file, which
overrides the defaults. ``encode`` turns new inputs into packed codes with a trained run.
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
    p.add_argument("--dataset", help="protocol: " + names["dataset"])
    p.add_argument("--bits", dest="nbits", type=int, help="code length in bits (nbits), a multiple of 8")
    p.add_argument("--epochs", type=int)
    p.add_argument("--model", help="backbone: " + names["model"])
    p.add_argument("--weights", help="local state_dict file for a torchvision backbone")
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
    p.add_argument("--snapshot-interval", dest="snapshot_interval", type=float, default=60.0,
                   help="seconds between background snapshots (0: only on request and at shutdown)")


def _cmd_serve(args) -> int:
    try:
        import uvicorn

        from deephash_engine.service.app import Limits, create_app
    except ImportError as exc:
        raise ImportError(f"{exc}; install the service with: pip install 'deephash-engine[serve]'") from exc
    token = None
    if args.token_file:
        token = Path(args.token_file).read_text().strip()
        if not token:
            raise ValueError(f"--token-file: {args.token_file} is empty")
    limits = Limits(max_body_bytes=args.max_body_bytes, max_batch=args.max_batch)
    app = create_app(args.data, token=token, limits=limits, snapshot_interval=args.snapshot_interval)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def _cmd_train(args) -> int:
    from deephash_engine.deep.run import RunConfig, load_config_file, train_run

    config = load_config_file(args.config) if args.config else {}
    for key in ("method", "dataset", "nbits", "epochs", "model", "weights", "batch_size",
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

    model, ckpt = load_trained_model(args.run, args.device)
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
    _serve_parser(sub)
    args = parser.parse_args(argv)
    commands = {"train": _cmd_train, "encode": _cmd_encode, "serve": _cmd_serve}
    try:
        return commands[args.command](args)
    except (ValueError, TypeError, KeyError, OSError, ImportError) as exc:
        print(f"deephash {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
