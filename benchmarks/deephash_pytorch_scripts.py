"""DeepHash-pytorch's own training scripts as peers, for the methods whose algorithm lives in the
script rather than in a loss module: ADSH (its V step and sampled schedule are inline in
``train_val``), DAPH (two networks trained in alternating passes) and PCDH (codes from a layer of
its own network).

:mod:`deephash_pytorch_peer` wraps a loss module in our trainer; here the research code's
``train_val(config, bit)`` itself runs, read from a checkout at run time (only its imports,
functions and classes, as there; nothing of it is copied into this project), with what it would
take from its own modules replaced by ours:

- ``get_data(config)`` returns loaders over our protocol's data: ``train_loader`` over the
  training split (shuffled, batch 128, seeded), ``dataset_loader`` over the same training split in
  order, ``test_loader`` over the validation queries. ADSH samples from ``dataset_loader`` and
  learns its database codes V for it, so V covers exactly the labelled images our ADSH trains on
  (DeepHash-pytorch's ``cifar10-1`` setting samples the whole database, which our protocols do not
  label for training).
- ``config["net"]`` builds our model (the run's backbone and hash head, seeded by the run's seed),
  and ``config["optimizer"]`` builds the benchmark's optimiser over that model's groups (Adam,
  the run's learning rate, the head at ``head_lr_mult`` times it), whatever parameters the script
  hands it.
- ``validate(...)``, which the script calls every ``test_map`` epochs with the network it
  evaluates, scores that network on the validation split against the validation database, as our
  trainer does, and keeps the best state; the run's queries are scored once, at the end, with the
  network and state it chose.

Budgets equal to our runs of ``epochs`` epochs over n training images:

- ADSH: outer iterations of ``num_samples = min(n // 2, 2000)`` sampled images, 2 passes each
  (the script's ``epoch``; 1 would divide by zero in its loss report), then its V step, as many
  iterations as give the sample visits of our ``epochs`` epochs. Up to 4,000 training images that
  is ``max_iter = epochs``: the same sample visits and V steps as our ADSH's default (a V step
  after each epoch); beyond, the paper's m = 2,000 keeps its similarity matrix in memory, with
  more V steps than ours.
- DAPH: ``epoch = epochs``; each epoch trains the first network one pass, then the second one pass
  (twice our compute, the script's own schedule), and evaluates the network the script passes to
  ``validate`` (the second one, ``net_bottom``).
  Its loss over the whole training set, which it reports each epoch, forms (n, n) matrices (the
  label similarity, the inner products): 28 GB at the full protocol's 59,000 images, where it was
  killed for memory. A script whose known need exceeds the memory available stops before
  training with :class:`deephash_pytorch_peer.PeerTooLarge` (``deep_fmnist.py`` records the peer
  as skipped).
- PCDH: ``epoch = epochs``. Its code comes from layers of its own network class (``Net``: a
  1024-d feature layer, a tanh hash-like layer, a threshold layer whose +-1 output is the code, a
  classifier on the code), which our models do not have: the script's ``Net`` is built with our
  backbone in place of its convolutions (and its feature layer sized to our backbone's output),
  so the CNN is ours and everything above it the script's.
"""

from __future__ import annotations

import copy
import json
import random
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader

from deephash_pytorch_peer import check_memory, load_method_file

#: The most images ADSH's script samples per iteration here (the paper's m): its V step forms a
#: (samples x training set) similarity matrix, 7 GB at half of 59,000 images.
ADSH_MAX_SAMPLES = 2000


def adsh_budget(epochs: int, n: int) -> dict:
    """ADSH's schedule for the sample visits of ``epochs`` epochs over n images: iterations of
    min(n / 2, 2,000) samples, 2 passes each, then a V step; validated about once an epoch."""
    m = max(1, min(n // 2, ADSH_MAX_SAMPLES))
    iterations = max(1, -(-epochs * n // (2 * m)))
    return {"max_iter": iterations, "num_samples": m, "epoch": 2, "test_map": max(1, iterations // max(1, epochs))}


def daph_bytes(n: int) -> int:
    """What DAPH's script needs at least for its whole-training-set loss: two (n, n) float32
    matrices alive at once (the label similarity and the inner products; the terms formed from
    them add more)."""
    return 2 * 4 * n * n


#: our method -> (file, info string, budget settings from (epochs, n_train), whether the script's
#: own network class is built on our backbone, the bytes it needs at least for n_train images
#: beyond the model and data, or None where nothing grows faster than n)
SCRIPT_PEERS: dict[str, tuple[str, str, Callable[[int, int], dict], bool, Callable[[int], int] | None]] = {
    "adsh": ("ADSH.py", "[ADSH]", adsh_budget, False, None),
    "daph": ("DAPH.py", "[DAPH]", lambda epochs, n: {"epoch": epochs, "test_map": 1}, False, daph_bytes),
    "pcdh": ("PCDH.py", "[PCDH]", lambda epochs, n: {"epoch": epochs, "test_map": 1}, True, None),
}


class ScriptDataset:
    """Images and one-hot labels as arrays the scripts may replace (ADSH assigns ``data`` and
    ``targets`` to resample); item i is ``(image, label, i)``."""

    def __init__(self, data: np.ndarray, targets: np.ndarray) -> None:
        self.data, self.targets = data, targets

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i):
        return torch.from_numpy(np.asarray(self.data[i])), torch.from_numpy(np.asarray(self.targets[i])), i


def dataset_arrays(dataset, batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Every (image, target) of one of our datasets, in order and without augmentation."""
    from deephash_engine.deep.data.datasets import as_evaluated, make_loader

    xs, ts = [], []
    for x, t, _ in make_loader(as_evaluated(dataset), batch_size, shuffle=False):
        xs.append(x)
        ts.append(t)
    return torch.cat(xs).numpy(), torch.cat(ts).float().numpy()


class ScriptRun:
    """One research script run on a protocol's data; :meth:`run` returns a summary shaped like
    :func:`deephash_engine.deep.run.train_run`'s and writes report.json and summary.json."""

    def __init__(self, method: str, peer_dir: str | Path, cfg) -> None:
        if method not in SCRIPT_PEERS:
            raise ValueError(f"method: expected one of {sorted(SCRIPT_PEERS)}, got {method!r}")
        filename, self.info, self.budget, self.own_net, self.needs_bytes = SCRIPT_PEERS[method]
        path = Path(peer_dir) / filename
        if not path.is_file():
            raise FileNotFoundError(f"peer_dir: expected {path} (a DeepHash-pytorch checkout), not found")
        self.method, self.cfg = method, cfg
        self.namespace = load_method_file(path)
        self.models: list[torch.nn.Module] = []
        self.best: dict | None = None  # {"epoch", "val_map", "state", "model"}
        self.history: list[dict] = []

    # -- what the script takes from its own modules --------------------------------------------
    def _build_net(self, bit: int, *args, **kwargs) -> torch.nn.Module:
        from deephash_engine.deep.models import build_model

        if not self.models:  # the first network starts from the run's seed, as ours does
            torch.manual_seed(self.cfg.seed)
        model = build_model(self.cfg.model, bit, self.data.in_channels, self.data.image_size, self.cfg.weights)
        self.models.append(model)
        return model

    def _build_own_net(self, bit: int, n_class: int, *args, **kwargs) -> torch.nn.Module:
        """The script's own network class (``Net``) with our backbone in place of its convolutions:
        its layers above them (PCDH: a 1024-d feature layer, the tanh hash-like layer, the
        threshold layer whose output is the code, the classifier) are its own."""
        ours = self._build_net(bit)
        net = self.namespace["Net"](bit, n_class)
        net.conv_layer = ours.backbone
        net.feature_layer = torch.nn.Linear(ours.backbone.out_features, net.feature_layer.out_features)
        self.models[-1] = net
        return net

    def _optimizer(self, params, **_ignored) -> torch.optim.Optimizer:
        params = list(params)
        owner = next(m for m in self.models if any(p is params[0] for p in m.parameters()))
        if hasattr(owner, "param_groups"):
            groups = owner.param_groups(self.cfg.lr, self.cfg.head_lr_mult)
        else:  # the script's own network: one group
            groups = [{"params": [p for p in owner.parameters() if p.requires_grad], "lr": self.cfg.lr}]
        return torch.optim.Adam(groups, lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)

    def _get_data(self, config):
        generator = torch.Generator().manual_seed(self.cfg.seed)
        bs = self.cfg.batch_size
        train = DataLoader(ScriptDataset(self.train_x.copy(), self.train_y.copy()), batch_size=bs, shuffle=True,
                           generator=generator)
        dataset = DataLoader(ScriptDataset(self.train_x, self.train_y), batch_size=512, shuffle=False)
        test = DataLoader(ScriptDataset(*dataset_arrays(self.data.val)), batch_size=512, shuffle=False)
        n = len(self.train_x)
        return train, test, dataset, n, len(test.dataset), n

    def _validate(self, config, best_map, test_loader, dataset_loader, net, bit, epoch, num_dataset):
        from deephash_engine.deep.evaluation import encode
        from deephash_engine.metrics import mean_average_precision

        q, ql = encode(net, self.data.val)
        d, dl = encode(net, self.val_database)
        val_map = float(mean_average_precision(q, d, ql, dl, topk=self.data.split.topk))
        self.history.append({"epoch": len(self.history) + 1, "val_map": val_map})
        if self.best is None or val_map > self.best["val_map"]:
            self.best = {"epoch": len(self.history), "val_map": val_map, "model": net,
                         "state": copy.deepcopy(net.state_dict())}
        return max(best_map, val_map)

    # -- the run ---------------------------------------------------------------------------------
    def run(self, out_dir: str | Path) -> dict:
        from deephash_engine.deep.data.datasets import load_protocol
        from deephash_engine.deep.evaluation import encode
        from deephash_engine.deep.run import _val_database, save_flat_index, write_report
        from deephash_engine.metrics import mean_average_precision

        cfg = self.cfg
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        torch.set_num_threads(int(cfg.threads or torch.get_num_threads()))
        self.data = load_protocol(cfg.dataset, seed=cfg.seed, root=cfg.root, lists=cfg.lists or None,
                                  split_path=out / "split.npz", flip=cfg.flip)
        self.val_database, _ = _val_database(self.data.train, cfg.val_database_size, cfg.seed)
        self.train_x, self.train_y = dataset_arrays(self.data.train)
        check_memory(f"peer-{self.method}", self.needs_bytes, len(self.train_x))
        ns = self.namespace
        ns.update(get_data=self._get_data, validate=self._validate, tqdm=lambda it, *a, **k: it)
        config = ns["get_config"]()
        config.update(device=torch.device("cpu"), dataset="cifar10", n_class=self.data.num_classes,
                      batch_size=cfg.batch_size, info=self.info,
                      net=self._build_own_net if self.own_net else self._build_net,
                      optimizer={"type": self._optimizer, "optim_params": {}},
                      **self.budget(cfg.epochs, len(self.train_x)))
        config.pop("save_path", None)  # the script saves nothing of its own
        ns["config"] = config
        # the scripts draw from the global generators (ADSH's samples from NumPy's)
        np.random.seed(cfg.seed)
        random.seed(cfg.seed)
        start = time.perf_counter()
        ns["train_val"](config, cfg.nbits)
        train_seconds = time.perf_counter() - start
        if self.best is None:
            raise RuntimeError(f"{self.method}: the script never called validate (epochs = {cfg.epochs})")
        model = self.best["model"]
        model.load_state_dict(self.best["state"])
        q, ql = encode(model, self.data.query)
        d, dl = encode(model, self.data.database)
        maps = {("all" if k is None else str(k)): mean_average_precision(q, d, ql, dl, topk=k)
                for k in cfg.map_topk}
        write_report(out, q, d, ql, dl, self.data.split.topk,
                     f"peer-{self.method} {cfg.nbits} bits on {cfg.dataset} (DeepHash-pytorch's script)")
        save_flat_index(d, cfg.nbits, out / "database.index")
        summary = {"method": f"peer-{self.method}", "dataset": cfg.dataset, "nbits": cfg.nbits, "seed": cfg.seed,
                   "epochs": cfg.epochs, "map": maps, "protocol_topk": self.data.split.topk,
                   "selected_epoch": self.best["epoch"], "best_val_map": self.best["val_map"],
                   "train_seconds": train_seconds, "history": self.history, "script": self.info}
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        return summary
