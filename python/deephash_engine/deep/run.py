"""One training run from plain configuration: data, model, loss, trainer, codes, report, index.

``train_run(config, out_dir)`` writes into ``out_dir``:

- ``config.yaml``   the resolved configuration (defaults filled in)
- ``split.npz``     the protocol split (+ ``split.json``); reused when the run is resumed
- ``checkpoints/``  ``last.pt`` every epoch, ``best.pt`` on each validation improvement
- ``model.pt``      the selected model with config, codes, labels and metrics
- ``codes.npz``     packed query and database codes, their labels and split indices (database
                    items that are training samples take the codes the loss holds for them,
                    when it holds any: ADSH's discrete database codes)
- ``report.json``   the metrics report (mAP, P@k, R@k, PR curve, Hamming-radius metrics)
- ``report.png``    PR / P@N / radius plots (when matplotlib is installed)
- ``database.index`` a :class:`deephash_engine.FlatIndex` of the database codes
- ``summary.json``  the headline numbers and timings

A quantization method (DQN, DTQ, DVSQ) writes its codes, report and index in their own forms:
``codes.npz`` holds query embeddings, database codes (int64 (n, M)) and codebooks, ``report.json``
the scores of the ADC ranking, and ``database.faiss`` (``faiss.read_index``) replaces
``database.index``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from .. import MAX_NBITS, FlatIndex
from .._atomic import atomic_write_text
from ..datasets import NORMALIZATION
from ..metrics import evaluate, mean_average_precision, plot_report
from .checkpoints import CheckpointError, load_checkpoint
from .data.datasets import load_protocol
from .evaluation import compute_outputs, encode
from .label_free import prepare_label_free
from .methods import METHODS, add_regularizers, build_loss
from .quantization.label_embeddings import CLASS_NAMES
from .models import build_model
from .trainer import Trainer, build_optimizer, build_scheduler, resolve_device


def _shown(value: Any) -> str:
    """A value for an error message: scalars as repr (cut at 80 characters), anything else by
    its type (a container from a damaged file can be huge or nested past the recursion limit)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        text = repr(value)
        return text if len(text) <= 80 else text[:77] + "..."
    return f"a {type(value).__name__}"


def _current_keys(data: Any) -> dict:
    """A copy of a config mapping with the old key ``bits`` (configs and run folders written
    before the rename) renamed to ``nbits``."""
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise ValueError(f"config: expected a mapping with string keys, got a {type(data).__name__}")
    data = dict(data)
    if "bits" in data:
        if "nbits" in data:
            raise ValueError("config: expected one of 'nbits' or 'bits' (its old name), got both")
        data["nbits"] = data.pop("bits")
    return data


@dataclass
class RunConfig:
    method: str = "dpsh"
    dataset: str = "fashion-mnist"
    nbits: int = 64
    model: str = "small_cnn"  # from_dict: "pca" (frozen) for a label-free method unless given
    weights: Optional[str] = None
    head_hidden: Optional[int] = None  # None: the method's own (PCDH 1024, else 0)
    epochs: int = 3
    batch_size: int = 128
    optimizer: str = "adam"
    lr: float = 1e-3
    head_lr_mult: float = 1.0
    weight_decay: float = 0.0
    schedule: str = "none"
    step_size: int = 30
    gamma: float = 0.1
    seed: int = 0
    device: str = "auto"
    threads: Optional[int] = None
    eval_every: int = 1
    val_database_size: int = 5000
    select: str = "best_val"  # or "last"
    flip: bool = False
    root: Optional[str] = None
    lists: dict = field(default_factory=dict)
    loss_params: dict = field(default_factory=dict)
    regularizers: dict = field(default_factory=dict)
    map_topk: list = field(default_factory=lambda: [None, 1000])

    def __post_init__(self) -> None:
        if self.head_hidden is None:  # the method's own hidden layer (PCDH's 1024-d one), else none
            self.head_hidden = getattr(METHODS.get(self.method), "head_hidden", 0)

    @classmethod
    def from_dict(cls, data: dict) -> "RunConfig":
        """Validate and build; ``bits``, the key of configs written before, means ``nbits``."""
        data = _current_keys(data)
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"config: expected keys among {sorted(known)}, got unknown {sorted(unknown)}")
        if data.get("model") is None and _label_free(data.get("method", cls.method)):
            data["model"] = "pca"
        cfg = cls(**data)
        if cfg.select not in ("best_val", "last"):
            raise ValueError(f"select: expected 'best_val' or 'last', got {_shown(cfg.select)}")
        if type(cfg.nbits) is not int or not 1 <= cfg.nbits <= MAX_NBITS:
            raise ValueError(f"nbits: expected an int in [1, {MAX_NBITS}], got {_shown(cfg.nbits)}")
        if type(cfg.head_hidden) is not int or not 0 <= cfg.head_hidden <= _MAX_HEAD_HIDDEN:
            raise ValueError(f"head_hidden: expected an int in [0, {_MAX_HEAD_HIDDEN}], got {_shown(cfg.head_hidden)}")
        if type(cfg.epochs) is not int or cfg.epochs < 0:
            raise ValueError(f"epochs: expected an int >= 0, got {_shown(cfg.epochs)}")
        for name in ("method", "dataset", "model"):
            if not isinstance(getattr(cfg, name), str):
                raise ValueError(f"{name}: expected a string, got {_shown(getattr(cfg, name))}")
        return cfg


def head_width(cfg: RunConfig, saved: bool = False) -> int:
    """The network's output width: the code length, except for a quantization method, whose
    embedding width is its ``embed_dim`` loss parameter, else the method's own default (DVSQ:
    300). ``saved``: the config of a finished run, which records ``embed_dim`` where it differs
    from the code length (runs from before it existed used the code length)."""
    cls = METHODS.get(cfg.method)
    if not getattr(cls, "quantized", False):
        return cfg.nbits
    if "embed_dim" in cfg.loss_params:
        return cls.embedding_width(cfg.nbits, cfg.loss_params["embed_dim"])
    return cfg.nbits if saved else cls.embedding_width(cfg.nbits)


def _resumed_width(cfg: RunConfig, last: Path) -> int:
    """The network width of a run resumed from ``last``: as :func:`head_width`, except that a
    quantization run checkpointed before runs recorded ``embed_dim`` keeps the width it was
    trained with (its code length)."""
    if "embed_dim" in cfg.loss_params or not getattr(METHODS.get(cfg.method), "quantized", False):
        return head_width(cfg)
    saved = (load_checkpoint(last, map_location="cpu").get("config") or {}).get("loss_params") or {}
    return head_width(replace(cfg, loss_params={k: v for k, v in saved.items() if k == "embed_dim"}), saved=True)


def _label_free(method: Any) -> bool:
    return isinstance(method, str) and getattr(METHODS.get(method), "label_free", False)


def load_config_file(path: str | os.PathLike) -> dict:
    import yaml

    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of config keys, got {type(data).__name__}")
    return _current_keys(data)


def _write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=_jsonable) + "\n")


def _jsonable(x: Any) -> Any:
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return float(x)
    if isinstance(x, np.ndarray):
        return x.tolist()
    return str(x)


def _val_database(train, size: int, seed: int):
    """(dataset, positions in the training set) of the validation database."""
    n = len(train)
    if size <= 0 or size >= n:
        pick = np.arange(n)
    else:
        pick = np.sort(np.random.default_rng(seed + 7).choice(n, size=size, replace=False))
    return train.subset(pick), pick


def training_positions(train: np.ndarray, items: np.ndarray) -> np.ndarray:
    """For each pool index in ``items``, its position in ``train`` (pool indices), or -1."""
    train, items = np.asarray(train, dtype=np.int64), np.asarray(items, dtype=np.int64)
    if train.size == 0:
        return np.full(items.shape, -1, dtype=np.int64)
    order = np.argsort(train, kind="stable")
    ordered = train[order]
    at = np.minimum(np.searchsorted(ordered, items), train.size - 1)
    return np.where(ordered[at] == items, order[at], -1)


def write_report(out: Path, q, d, ql, dl, topk: Optional[int], title: str) -> dict:
    """Metrics report JSON (+ plots when matplotlib is installed)."""
    report = evaluate(q, d, ql, dl, topk=topk)
    _write_json(out / "report.json", report.to_dict())
    try:
        plot_report(report, out / "report.png", title=title)
    except ImportError:  # matplotlib is optional
        pass
    return report.to_dict()


def save_flat_index(codes: np.ndarray, nbits: int, path: Path) -> None:
    index = FlatIndex(nbits)
    index.add(codes)
    index.save(path)


def _quantized_results(cfg: RunConfig, loss, model, data, device, out: Path, progress: bool):
    """Evaluation of a quantization method: database codes under the learned codebooks, ADC
    ranking through FAISS, scores of the ranked lists. Writes codes.npz (query embeddings,
    database codes, codebooks), report.json and database.faiss (a FAISS index file)."""
    import faiss

    from ..metrics.report import DEFAULT_KS
    from .quantization.evaluation import evaluate_quantized

    qo, ql = compute_outputs(model, data.query, device=device, progress=progress, desc="query")
    do, dl = compute_outputs(model, data.database, device=device, progress=progress, desc="database")
    topks = tuple(dict.fromkeys([*cfg.map_topk, data.split.topk]))
    ev = evaluate_quantized(loss, qo, do, ql, dl, topks=topks, ks=list(DEFAULT_KS))
    codebooks = loss.codebooks_array()
    np.savez(out / "codes.npz", query_embeddings=loss.embeddings(qo), database_codes=ev.codes,
             codebooks=codebooks, query_labels=ql, database_labels=dl,
             query_index=data.split.query, database_index=data.split.database)
    report = {"search": "adc", "metric": loss.metric, "product": loss.product,
              "subspaces": loss.subspaces, "codewords": loss.codewords, "code_bits": loss.code_bits,
              "n_queries": int(qo.shape[0]), "n_db": int(do.shape[0]), "protocol_topk": data.split.topk,
              **ev.to_dict()}
    _write_json(out / "report.json", report)
    faiss.write_index(ev.index, str(out / "database.faiss"))
    maps = {key: ev.maps[key] for key in ("all" if k is None else str(k) for k in cfg.map_topk)}
    codes = {"database": ev.codes, "codebooks": codebooks}
    return maps, codes, ql, dl, "database.faiss"


def train_run(config: RunConfig | dict, out_dir: str | os.PathLike, *, resume: bool = False,
              progress: bool = True) -> dict:
    """Train, select on validation, encode query and database, evaluate, save everything."""
    import yaml

    cfg = config if isinstance(config, RunConfig) else RunConfig.from_dict(config)
    out = Path(out_dir)
    last = out / "checkpoints" / "last.pt"
    width = _resumed_width(cfg, last) if resume and last.is_file() else head_width(cfg)
    if getattr(METHODS.get(cfg.method), "quantized", False) and "embed_dim" not in cfg.loss_params:
        cfg = replace(cfg, loss_params={**cfg.loss_params, "embed_dim": width})  # saved with the run
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads is not None:
        torch.set_num_threads(int(cfg.threads))
    device = resolve_device(cfg.device)
    atomic_write_text(out / "config.yaml", yaml.safe_dump(asdict(cfg), sort_keys=True))

    data = load_protocol(cfg.dataset, seed=cfg.seed, root=cfg.root, lists=cfg.lists or None,
                         split_path=out / "split.npz", flip=cfg.flip)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, width, data.in_channels, data.image_size, cfg.weights, cfg.head_hidden)
    loss = build_loss(cfg.method, cfg.nbits, len(data.train), data.num_classes,
                      class_names=CLASS_NAMES.get(data.source), **cfg.loss_params)
    add_regularizers(loss, cfg.regularizers, model)
    train_set = data.train
    if loss.label_free:  # frozen backbone; the training set carries its features, not labels
        train_set = prepare_label_free(model, data.train, device=device)
    optimizer = build_optimizer(model, loss, cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.head_lr_mult)
    scheduler = build_scheduler(optimizer, cfg.schedule, cfg.epochs, cfg.step_size, cfg.gamma)
    val_database, val_index = _val_database(data.train, cfg.val_database_size, cfg.seed)
    trainer = Trainer(
        model, loss, train_set, optimizer, scheduler,
        val_query=data.val, val_database=val_database, val_database_index=val_index,
        val_topk=data.split.topk, eval_every=cfg.eval_every, batch_size=cfg.batch_size,
        seed=cfg.seed, device=device, checkpoint_dir=out / "checkpoints", config=asdict(cfg),
        progress=progress,
    )
    if resume and last.is_file():
        trainer.resume(last)
    start = time.perf_counter()
    trainer.fit(cfg.epochs)
    train_seconds = time.perf_counter() - start
    model.read_features_in_training(False)  # a label-free run's head trained on cached features
    selected = trainer.load_best() if cfg.select == "best_val" else None

    if loss.quantized:
        maps, codes, ql, dl, index_name = _quantized_results(cfg, loss, model, data, device, out, progress)
    else:
        q, ql = encode(model, data.query, device=device, progress=progress, desc="query")
        d, dl = encode(model, data.database, device=device, progress=progress, desc="database", loss=loss,
                       train_index=training_positions(data.split.train, data.split.database))
        np.savez(out / "codes.npz", query_codes=q, database_codes=d, query_labels=ql,
                 database_labels=dl, query_index=data.split.query, database_index=data.split.database)
        maps = {("all" if k is None else str(k)): mean_average_precision(q, d, ql, dl, topk=k)
                for k in cfg.map_topk}
        write_report(out, q, d, ql, dl, data.split.topk, f"{cfg.method} {cfg.nbits} bits on {cfg.dataset}")
        save_flat_index(d, cfg.nbits, out / "database.index")
        codes, index_name = {"query": q, "database": d}, "database.index"
    summary = {
        "method": cfg.method, "dataset": cfg.dataset, "nbits": cfg.nbits, "seed": cfg.seed,
        "epochs": cfg.epochs, "map": maps, "protocol_topk": data.split.topk,
        "selected_epoch": selected["epoch"] if selected else trainer.epoch,
        "best_val_map": selected["val_map"] if selected else None,
        "train_seconds": train_seconds, "device": str(device), "threads": torch.get_num_threads(),
        "counts": data.split.counts(), "history": trainer.history,
        "report": "report.json", "index": index_name,
    }
    trainer.save_checkpoint(
        out / "model.pt", codes=codes, labels={"query": ql, "database": dl},
        metrics=summary, data={"in_channels": data.in_channels, "image_size": data.image_size,
                               "source": data.source, "num_classes": data.num_classes},
    )
    _write_json(out / "summary.json", summary)
    return summary


#: The widest hidden head layer a run config may ask for.
_MAX_HEAD_HIDDEN = 1 << 16

#: Bounds on what a run folder may ask the model builder for (the checkpoint's tensors are
#: compared with the model before loading; these keep the comparison itself cheap).
_MAX_CHANNELS, _MAX_IMAGE_SIZE = 64, 4096


def _run_checkpoint_fields(ckpt: dict, path: Path) -> tuple[RunConfig, dict, dict]:
    """(config, data facts, model state) of a run checkpoint, each checked for type and range."""
    for key, kind in (("config", dict), ("data", dict), ("model", dict)):
        if not isinstance(ckpt.get(key), kind):
            raise CheckpointError(f"{path}: expected a {kind.__name__} under {key!r}, got "
                                  f"{type(ckpt.get(key)).__name__}")
    try:
        # runs saved before head_hidden existed had no hidden layer, whatever their method
        cfg = RunConfig.from_dict({"head_hidden": 0, **ckpt["config"]})
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: bad config: {exc}") from None
    info = ckpt["data"]
    for key, top in (("in_channels", _MAX_CHANNELS), ("image_size", _MAX_IMAGE_SIZE)):
        if type(info.get(key)) is not int or not 1 <= info[key] <= top:
            raise CheckpointError(f"{path}: data.{key}: expected an int in [1, {top}], got {_shown(info.get(key))}")
    if not isinstance(info.get("source"), str) or info["source"] not in NORMALIZATION:
        raise CheckpointError(f"{path}: data.source: expected one of {sorted(NORMALIZATION)}, "
                              f"got {_shown(info.get('source'))}")
    state = ckpt["model"]
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise CheckpointError(f"{path}: model: expected a state dict of named tensors")
    return cfg, info, state


def _check_state_fits(model: torch.nn.Module, state: dict, path: Path) -> None:
    """The tensors of ``state`` are exactly the model's (names, shapes, dtypes)."""
    expected = model.state_dict()
    if set(expected) != set(state):
        missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
        raise CheckpointError(f"{path}: model: tensors do not match the configured model "
                              f"(missing {missing[:5]}, unexpected {extra[:5]})")
    for name, tensor in expected.items():
        got = state[name]
        if got.shape != tensor.shape or got.dtype != tensor.dtype:
            raise CheckpointError(f"{path}: model.{name}: expected {tuple(tensor.shape)} {tensor.dtype}, "
                                  f"got {tuple(got.shape)} {got.dtype}")


def load_trained_model(run_dir: str | os.PathLike, device: str = "cpu"):
    """(model, checkpoint) from a run folder's model.pt, ready for :func:`encode`.

    The file is read with ``weights_only=True`` (:func:`.checkpoints.load_checkpoint`) and checked
    against the model its config describes; a damaged or foreign file raises
    :class:`.checkpoints.CheckpointError` (a ValueError), a missing one FileNotFoundError.
    """
    path = Path(run_dir) / "model.pt"
    if not path.is_file():
        raise FileNotFoundError(f"run_dir: expected {path} (a finished 'deephash train' run), not found")
    ckpt = load_checkpoint(path, map_location="cpu")
    cfg, info, state = _run_checkpoint_fields(ckpt, path)
    width = head_width(cfg, saved=True)
    with torch.device("meta"):  # the shapes only, with no memory behind them
        skeleton = build_model(cfg.model, width, info["in_channels"], info["image_size"], hidden=cfg.head_hidden)
    _check_state_fits(skeleton, state, path)
    model = build_model(cfg.model, width, info["in_channels"], info["image_size"], hidden=cfg.head_hidden)
    model.load_state_dict(state)
    return model.to(device).eval(), ckpt
