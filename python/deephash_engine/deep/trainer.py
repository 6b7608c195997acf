"""A trainer for any (model, loss, data, optimiser, schedule).

- **Seeds**: epoch e shuffles with a generator seeded from (seed, e) and reseeds torch's global
  generator the same way (augmentation, dropout), so a run resumed from the checkpoint of
  epoch e continues exactly as the uninterrupted run would have.
- **Checkpoints**: ``last.pt`` after every epoch, ``best.pt`` whenever validation mAP improves;
  each holds the config, model, loss (with its per-sample state), optimiser, scheduler, epoch
  and metric history, written atomically in plain values that load with ``weights_only=True``
  (:mod:`.checkpoints`).
- **Validation**: every ``eval_every`` epochs, mAP of the validation queries against a database
  drawn from the training set. The query set never takes part in choosing a checkpoint. With
  ``val_database_index`` (each validation database item's position in the training set), a loss
  that holds database codes for training samples (ADSH, :meth:`.losses.HashLoss.database_codes`)
  supplies them in place of the network's.
- **Loss hooks**: ``loss.prepare(train_targets)`` once before the first epoch of a fresh run
  (for a loss with ``needs_train_targets``), ``loss.epoch_samples(...)`` before each epoch (the
  samples and number of passes an epoch trains on; the whole set once unless the loss says
  otherwise, as ADSH's sampled schedule does), ``loss.on_epoch_end(epoch)`` after each epoch.
- **Progress**: tqdm bars, off with ``progress=False``; the trainer prints nothing else.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn
from torch.utils.data import Dataset, Subset

from .checkpoints import CHECKPOINT_VERSION, READABLE_VERSIONS, load_checkpoint, save_checkpoint
from .data.datasets import dataset_targets, make_loader
from ..metrics import mean_average_precision
from .evaluation import compute_outputs, encode


#: Loader seeds of the passes of one epoch are this far apart; the epoch's sample draw mixes the
#: epoch seed with SAMPLE_SEED_MIX so it does not repeat the first pass's shuffle.
SAMPLE_SEED_STRIDE = 7_919
SAMPLE_SEED_MIX = 0x5DEECE66D


def epoch_seed(seed: int, epoch: int) -> int:
    return (int(seed) * 1_000_003 + int(epoch)) % (2 ** 63 - 1)


def resolve_device(device: str | torch.device) -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device: expected an available device, got {device!r} (no CUDA here)")
    return dev


def build_optimizer(model: nn.Module, loss: nn.Module, name: str = "adam", lr: float = 1e-3,
                    weight_decay: float = 0.0, head_lr_mult: float = 1.0,
                    momentum: float = 0.9) -> torch.optim.Optimizer:
    """Adam, SGD (momentum, Nesterov) or RMSprop over the model's groups; the loss's own
    parameters (a classifier) join the hash head's group."""
    if lr <= 0:
        raise ValueError(f"lr: expected > 0, got {lr}")
    groups = model.param_groups(lr, head_lr_mult, extra=loss.parameters())
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=momentum > 0,
                               weight_decay=weight_decay)
    if name == "rmsprop":
        return torch.optim.RMSprop(groups, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"optimizer: expected adam, sgd or rmsprop, got {name!r}")


def build_scheduler(optimizer, name: str = "none", epochs: int = 1, step_size: int = 30,
                    gamma: float = 0.1):
    """Per-epoch schedule: none, cosine (to 0 over ``epochs``) or step (x gamma every step_size)."""
    if name == "none":
        return None
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs))
    if name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=gamma)
    raise ValueError(f"schedule: expected none, cosine or step, got {name!r}")


def train_step(model: nn.Module, loss: nn.Module, optimizer: torch.optim.Optimizer,
               x: torch.Tensor, target: torch.Tensor, index: torch.Tensor, epoch: int = 0) -> float:
    """One optimisation step on a batch: forward, loss (with the loss's per-batch state
    updates, e.g. its memory bank), backward, optimiser step. Returns the loss value."""
    if getattr(loss, "needs_features", False) and hasattr(model, "forward_with_features"):
        features, u = model.forward_with_features(x)
        value = loss(u, target, index, features=features)
    else:
        u = model(x)
        value = loss(u, target, index)
    if not torch.isfinite(value):
        raise FloatingPointError(f"loss: expected a finite value, got {float(value)} at epoch {epoch + 1}")
    optimizer.zero_grad(set_to_none=True)
    value.backward()
    optimizer.step()
    return float(value.detach())


class Trainer:
    def __init__(
        self,
        model: nn.Module,
        loss: nn.Module,
        train_set: Dataset,
        optimizer: torch.optim.Optimizer,
        scheduler=None,
        *,
        val_query: Optional[Dataset] = None,
        val_database: Optional[Dataset] = None,
        val_topk: Optional[int] = None,
        val_database_index=None,
        eval_every: int = 1,
        batch_size: int = 128,
        seed: int = 0,
        device: str | torch.device = "cpu",
        checkpoint_dir: Optional[str | os.PathLike] = None,
        config: Optional[dict] = None,
        progress: bool = True,
    ) -> None:
        if (val_query is None) != (val_database is None):
            raise ValueError("val_query, val_database: expected both or neither, got one")
        if eval_every < 0:
            raise ValueError(f"eval_every: expected >= 0, got {eval_every}")
        self.device = resolve_device(device)
        self.model = model.to(self.device)
        self.loss = loss.to(self.device)
        self.train_set = train_set
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.val_query, self.val_database, self.val_topk = val_query, val_database, val_topk
        self.val_database_index = val_database_index
        self.eval_every = int(eval_every)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.config = dict(config or {})
        self.progress = progress
        self.epoch = 0  # epochs completed
        self.history: list[dict] = []
        self.best: Optional[dict] = None  # {"epoch", "val_map"}

    # -- one epoch ---------------------------------------------------------------------------
    def train_epoch(self) -> dict:
        from tqdm.auto import tqdm

        epoch = self.epoch
        seed = epoch_seed(self.seed, epoch)
        torch.manual_seed(seed)
        data, passes = self.epoch_data(epoch)
        self.model.train()
        self.loss.train()
        total, batches = 0.0, 0
        for p in range(passes):
            # pass 0 shuffles as a one-pass epoch always has; later passes from their own seeds
            loader = make_loader(data, self.batch_size, shuffle=True, seed=seed + p * SAMPLE_SEED_STRIDE,
                                 drop_last=len(data) > self.batch_size)
            desc = f"epoch {epoch + 1}" + (f" pass {p + 1}/{passes}" if passes > 1 else "")
            bar = tqdm(loader, desc=desc, disable=not self.progress, leave=False)
            for x, target, index in bar:
                x, target, index = x.to(self.device), target.to(self.device), index.to(self.device)
                total += train_step(self.model, self.loss, self.optimizer, x, target, index, epoch)
                batches += 1
                bar.set_postfix(loss=f"{total / batches:.4f}")
        if self.scheduler is not None:
            self.scheduler.step()
        self.loss.on_epoch_end(epoch)
        self.epoch += 1
        return {"epoch": self.epoch, "train_loss": total / max(batches, 1)}

    def epoch_data(self, epoch: int) -> tuple[Dataset, int]:
        """The data of an epoch and how many passes over it: the whole training set once, or
        the samples and passes the loss asks for (:meth:`.losses.HashLoss.epoch_samples`)."""
        n = len(self.train_set)
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, epoch) ^ SAMPLE_SEED_MIX)
        plan = self.loss.epoch_samples(epoch, n, generator)
        if plan is None:
            return self.train_set, 1
        positions, passes = plan
        positions = torch.as_tensor(positions, dtype=torch.int64).reshape(-1)
        if positions.numel() == 0:
            raise ValueError("epoch_samples: expected at least one position, got none")
        if int(positions.min()) < 0 or int(positions.max()) >= n:
            raise ValueError(f"epoch_samples: expected positions in [0, {n}), "
                             f"got [{int(positions.min())}, {int(positions.max())}]")
        if int(passes) < 1:
            raise ValueError(f"epoch_samples: expected passes >= 1, got {passes}")
        return Subset(self.train_set, positions.tolist()), int(passes)

    def validate(self) -> Optional[float]:
        if self.val_query is None:
            return None
        if self.loss.quantized:  # quantization codes: ADC ranking
            from .quantization.evaluation import quantized_map

            q, ql = compute_outputs(self.model, self.val_query, device=self.device, progress=self.progress,
                                    desc="val query")
            d, dl = compute_outputs(self.model, self.val_database, device=self.device, progress=self.progress,
                                    desc="val database")
            return quantized_map(self.loss, q, d, ql, dl, topk=self.val_topk)
        q, ql = encode(self.model, self.val_query, device=self.device, progress=self.progress, desc="val query")
        d, dl = encode(self.model, self.val_database, device=self.device, progress=self.progress,
                       desc="val database", loss=self.loss, train_index=self.val_database_index)
        return mean_average_precision(q, d, ql, dl, topk=self.val_topk)

    def fit(self, epochs: int) -> list[dict]:
        """Train until ``epochs`` epochs are complete in total (a resumed trainer goes on)."""
        if epochs < self.epoch:
            raise ValueError(f"epochs: expected >= the {self.epoch} already done, got {epochs}")
        if self.epoch == 0 and epochs > 0 and getattr(self.loss, "needs_train_targets", False):
            self.loss.prepare(dataset_targets(self.train_set).to(self.device))
        while self.epoch < epochs:
            record = self.train_epoch()
            record["lr"] = [g["lr"] for g in self.optimizer.param_groups]
            due = self.eval_every and (self.epoch % self.eval_every == 0 or self.epoch == epochs)
            if due:
                record["val_map"] = self.validate()
            self.history.append(record)
            improved = record.get("val_map") is not None and (
                self.best is None or record["val_map"] > self.best["val_map"])
            if improved:
                self.best = {"epoch": self.epoch, "val_map": record["val_map"]}
            if self.checkpoint_dir is not None:
                self.save_checkpoint(self.checkpoint_dir / "last.pt")
                if improved:
                    self.save_checkpoint(self.checkpoint_dir / "best.pt")
        return self.history

    # -- state -------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "version": CHECKPOINT_VERSION,
            "config": self.config,
            "epoch": self.epoch,
            "seed": self.seed,
            "model": self.model.state_dict(),
            "loss": self.loss.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "history": self.history,
            "best": self.best,
        }

    def load_state_dict(self, state: dict) -> None:
        if state.get("version") not in READABLE_VERSIONS:
            raise ValueError(f"checkpoint: expected version in {READABLE_VERSIONS}, got {state.get('version')}")
        self.model.load_state_dict(state["model"])
        self.loss.load_state_dict(state["loss"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.epoch = int(state["epoch"])
        self.seed = int(state["seed"])
        self.history = list(state["history"])
        self.best = state["best"]

    def save_checkpoint(self, path: str | os.PathLike, **extra: Any) -> Path:
        """Write the trainer state plus ``extra`` entries (e.g. codes and labels)."""
        state = self.state_dict()
        state.update(extra)
        save_checkpoint(state, path)
        return Path(path)

    def resume(self, path: str | os.PathLike) -> "Trainer":
        self.load_state_dict(load_checkpoint(path, map_location=self.device))
        return self

    def load_best(self) -> Optional[dict]:
        """Load the weights of the epoch with the best validation mAP (if any checkpoint has it)."""
        if self.checkpoint_dir is None or self.best is None:
            return None
        state = load_checkpoint(self.checkpoint_dir / "best.pt", map_location=self.device)
        self.model.load_state_dict(state["model"])
        self.loss.load_state_dict(state["loss"])
        return self.best
