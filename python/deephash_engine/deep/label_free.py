"""Training the label-free methods (BiHalf, unsupervised GreedyHash: losses with
``label_free = True``) on frozen features.

Such a loss takes, in the ``target`` slot, the frozen features of the batch instead of labels;
the hash head learns codes whose cosine similarities follow those of the features. Two ways in:

- A protocol run (``deephash train --method bihalf``, :func:`deephash_engine.deep.run.train_run`):
  the model is a frozen backbone plus the hash head. :func:`prepare_label_free` fits the backbone
  where it learns from data (the ``pca`` backbone, the default of these methods), freezes it,
  computes its features of every training item once, and returns a training set that yields
  ``(features, features, index)`` (``(image, features, index)`` with flip augmentation): the
  labels are not in it at all. Evaluation is the protocol's, on images, with the labels of the
  query and database sets.
- Any feature matrix (:class:`FeatureHasher`): ``FeatureHasher("bihalf", 64).fit(X).encode(X)``,
  shaped like the hashers of :mod:`deephash_engine.hashing` (``fit(X) -> self``, ``encode(X)`` ->
  packed codes, ``project(X)``), for features from anywhere: a supervised run's backbone, a
  pretrained network, PCA, raw pixels.
"""

from __future__ import annotations

import json
import os
from typing import Optional

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from .._archive import FEATURE_HASHER_FORMAT
from .._checks import check_positive_int
from .data.datasets import as_evaluated, make_loader
from .evaluation import pack_codes
from .methods import METHODS, build_loss
from .models import HashingModel
from .trainer import Trainer, build_optimizer


class FeatureDataset(Dataset):
    """Float rows ``inputs`` (n, d) with ``targets`` (n, k), yielding ``(input, target, index)``."""

    batched = True

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        if inputs.dim() != 2 or targets.dim() != 2 or targets.shape[0] != inputs.shape[0]:
            raise ValueError(f"inputs, targets: expected (n, d) and (n, k), got {tuple(inputs.shape)} "
                             f"and {tuple(targets.shape)}")
        self.inputs, self.targets = inputs, targets

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def subset(self, indices) -> "FeatureDataset":
        idx = torch.as_tensor(np.asarray(indices), dtype=torch.int64)
        return FeatureDataset(self.inputs[idx], self.targets[idx])

    def __getitem__(self, i):
        x, t, idx = self.__getitems__([i])
        return x[0], t[0], idx[0]

    def __getitems__(self, indices):
        idx = torch.as_tensor(indices, dtype=torch.int64)
        return self.inputs[idx], self.targets[idx], idx


class FeatureTargets(Dataset):
    """``base`` with its targets replaced by the rows of ``features``: ``(input, features[i], i)``."""

    def __init__(self, base: Dataset, features: torch.Tensor) -> None:
        if features.dim() != 2 or features.shape[0] != len(base):
            raise ValueError(f"features: expected ({len(base)}, d), got {tuple(features.shape)}")
        self.base, self.features = base, features
        self.batched = getattr(base, "batched", False)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i):
        x, _, index = self.base[i]
        return x, self.features[int(index)], index

    def __getitems__(self, indices):
        if not self.batched:
            return [self[i] for i in indices]
        x, _, index = self.base.__getitems__(indices)
        return x, self.features[index], index


@torch.no_grad()
def backbone_features(model: HashingModel, dataset: Dataset, batch_size: int = 512,
                      device: str | torch.device = "cpu") -> torch.Tensor:
    """The backbone's float32 features (n, d) of every item of ``dataset``, in order, on the CPU."""
    was_training = model.training
    model.eval()
    out = [model.backbone(x.to(device)).float().cpu()
           for x, _, _ in make_loader(as_evaluated(dataset), batch_size, shuffle=False)]
    model.train(was_training)
    return torch.cat(out)


def prepare_label_free(model: HashingModel, train_set: Dataset, batch_size: int = 512,
                       device: str | torch.device = "cpu") -> Dataset:
    """Fit the backbone where it learns from data (``fit(images)``, e.g. ``pca``), freeze it, and
    return a training set whose target is the backbone's features of each item.

    Where the training images are read as evaluated (no ``flip`` augmentation), the features are
    also the inputs: the set yields ``(features, features, index)`` and the model reads features
    in training mode (:meth:`HashingModel.read_features_in_training`), so training runs only the
    hash head and the backbone runs once per item, here, instead of at every step. With
    augmentation each step's input differs from the item as evaluated, so the set yields
    ``(image, features, index)`` (:class:`FeatureTargets`) and the backbone runs at each step."""
    model.to(device)
    fit = getattr(model.backbone, "fit", None)
    if callable(fit):
        images = torch.cat([x for x, _, _ in make_loader(as_evaluated(train_set), batch_size, shuffle=False)])
        fit(images.to(device))
    model.freeze_backbone()
    features = backbone_features(model, train_set, batch_size, device)
    if getattr(train_set, "flip", False):
        return FeatureTargets(train_set, features)
    model.read_features_in_training(True)
    return FeatureDataset(features, features)


def _check_label_free(method: str) -> None:
    if method not in METHODS or not getattr(METHODS[method], "label_free", False):
        free = sorted(name for name, cls in METHODS.items() if getattr(cls, "label_free", False))
        raise ValueError(f"method: expected a label-free method {free}, got {method!r}")


class _Features(nn.Module):
    """The input rows themselves (``hidden=0``) or one hidden ReLU layer of width ``hidden``."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU()) if hidden else nn.Identity()
        self.out_features = hidden or dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class FeatureHasher:
    """A label-free deep hash function learned on a feature matrix.

    ``method``: ``bihalf`` or ``greedyhash-unsup``; ``nbits``: any length >= 1; ``hidden``: 0 for a
    linear hash head (the papers' setting: one Linear layer on frozen features), else the width of
    one hidden ReLU layer before it; ``epochs``, ``batch_size`` (64, the papers'), ``lr`` (Adam,
    1e-3), ``loss_params`` (e.g. ``{"gamma": 6}``, ``{"alpha": 0.1}``, ``{"pairs": "all"}``),
    ``seed``, ``device``. The training loss compares code similarities with the cosine
    similarities of the rows of X as given (no centring). After :meth:`fit`, ``model_`` is the
    trained torch module, ``history_`` the per-epoch training losses and ``n_features_in_`` the
    width of X. :meth:`save` writes the fitted hasher to an .npz archive (no pickle) and
    :meth:`load` reads it back, encoding the same codes.
    """

    def __init__(self, method: str = "bihalf", nbits: int = 64, *, hidden: int = 0, epochs: int = 20,
                 batch_size: int = 64, lr: float = 1e-3, loss_params: Optional[dict] = None,
                 seed: int = 0, device: str = "cpu") -> None:
        _check_label_free(method)
        self.method = method
        self.nbits = check_positive_int(nbits, "nbits")
        self.hidden = check_positive_int(hidden, "hidden", minimum=0)
        self.epochs = check_positive_int(epochs, "epochs", minimum=0)
        self.batch_size = check_positive_int(batch_size, "batch_size", minimum=2)
        if not lr > 0:
            raise ValueError(f"lr: expected > 0, got {lr}")
        self.lr = float(lr)
        self.loss_params = dict(loss_params or {})
        self.seed = int(seed)
        self.device = device
        self.model_: Optional[HashingModel] = None

    def fit(self, X) -> "FeatureHasher":
        """Learn the hash function from the rows of X (float (n, d), n >= 2); returns self."""
        from ..hashing.base import check_matrix

        features = torch.from_numpy(check_matrix(X, "X")).float()
        if features.shape[0] < 2:
            raise ValueError(f"X: expected at least 2 rows (pairs), got {features.shape[0]}")
        torch.manual_seed(self.seed)
        model = HashingModel(_Features(features.shape[1], self.hidden), self.nbits)
        loss = build_loss(self.method, self.nbits, features.shape[0], 1, **self.loss_params)
        optimizer = build_optimizer(model, loss, "adam", self.lr)
        trainer = Trainer(model, loss, FeatureDataset(features, features), optimizer,
                          batch_size=min(self.batch_size, features.shape[0]), seed=self.seed,
                          device=self.device, eval_every=0, progress=False)
        self.history_ = [h["train_loss"] for h in trainer.fit(self.epochs)]
        self.n_features_in_ = int(features.shape[1])
        self.model_ = model.eval()
        return self

    @torch.no_grad()
    def project(self, X) -> np.ndarray:
        """Raw hash outputs (n, nbits), float32; the bits are ``output >= 0``."""
        from ..hashing.base import check_matrix

        if self.model_ is None:
            raise RuntimeError("this FeatureHasher is not fitted yet; call fit(X) first")
        x = torch.from_numpy(check_matrix(X, "X")).float()
        if x.shape[1] != self.n_features_in_:
            raise ValueError(f"X: expected {self.n_features_in_} features (as in fit), got {x.shape[1]}")
        return self.model_(x.to(self.device)).cpu().numpy()

    def encode(self, X) -> np.ndarray:
        """Packed uint8 codes (n, ceil(nbits / 8)) of the rows of X (bit = output >= 0)."""
        return pack_codes(self.project(X))

    def fit_encode(self, X) -> np.ndarray:
        return self.fit(X).encode(X)

    # ----------------------------------------------------------------- persistence
    def get_params(self) -> dict:
        """The constructor's arguments (``device`` aside: a file says nothing of where it runs)."""
        return {"method": self.method, "nbits": self.nbits, "hidden": self.hidden, "epochs": self.epochs,
                "batch_size": self.batch_size, "lr": self.lr, "loss_params": self.loss_params, "seed": self.seed}

    def save(self, path) -> None:
        """Write the fitted hasher to ``path`` (an .npz archive of arrays and JSON text, no pickle),
        atomically: its parameters, ``n_features_in_``, ``history_`` and the network's weights."""
        from .._atomic import atomic_write

        if self.model_ is None:
            raise RuntimeError("this FeatureHasher is not fitted yet; call fit(X) first")
        payload = {"format": np.array(FEATURE_HASHER_FORMAT),
                   "format_version": np.array(FEATURE_HASHER_VERSION, dtype=np.int64),
                   "params": np.array(json.dumps(self.get_params(), sort_keys=True)),
                   "n_features_in": np.array(self.n_features_in_, dtype=np.int64),
                   "history": np.asarray(self.history_, dtype=np.float64)}
        for name, tensor in self.model_.state_dict().items():
            payload["state/" + name] = tensor.detach().cpu().numpy()
        with atomic_write(path) as fh:
            np.savez(fh, **payload)

    @classmethod
    def load(cls, path, device: str = "cpu") -> "FeatureHasher":
        """Read a hasher written by :meth:`save`; it encodes the codes the saved one encoded.
        Raises :class:`FeatureHasherFileError` (a ValueError) naming what is wrong with a file
        that is not such a hasher or is damaged."""
        from .._archive import read_tagged_archive

        path = os.fspath(path)
        contents = read_tagged_archive(path, FeatureHasherFileError, "a saved FeatureHasher", FEATURE_HASHER_FORMAT,
                                       FEATURE_HASHER_VERSION)
        try:
            params = json.loads(str(contents["params"]))
            if not isinstance(params, dict):
                raise TypeError(f"params: expected a JSON object, got {type(params).__name__}")
            hasher = cls(**params, device=device)
            n_features = contents["n_features_in"]
            if n_features.shape != () or n_features.dtype.kind not in "iu" or int(n_features) < 1:
                raise ValueError(f"n_features_in: expected an integer >= 1, got {n_features!r}")
            hasher.n_features_in_ = int(n_features)
            hasher.history_ = [float(v) for v in np.asarray(contents["history"], dtype=np.float64).ravel()]
            model = HashingModel(_Features(hasher.n_features_in_, hasher.hidden), hasher.nbits)
            expected = model.state_dict()
            stored = {key[len("state/"):]: value for key, value in contents.items() if key.startswith("state/")}
            if set(stored) != set(expected):
                raise ValueError(f"weights: expected {sorted(expected)}, got {sorted(stored)}")
            for name, want in expected.items():
                got = stored[name]
                if got.dtype != np.float32 or tuple(got.shape) != tuple(want.shape):
                    raise ValueError(f"weights {name}: expected float32 {tuple(want.shape)} for nbits={hasher.nbits}, "
                                     f"hidden={hasher.hidden}, n_features_in={hasher.n_features_in_}, got "
                                     f"{got.dtype} {tuple(got.shape)}")
                if not np.isfinite(got).all():
                    raise ValueError(f"weights {name}: expected finite values")
            model.load_state_dict({name: torch.from_numpy(np.array(value)) for name, value in stored.items()})
        except (KeyError, TypeError, ValueError, RecursionError) as exc:
            raise FeatureHasherFileError(f"{path}: damaged FeatureHasher file: {exc}") from exc
        hasher.model_ = model.to(device).eval()
        return hasher


FEATURE_HASHER_VERSION = 1


class FeatureHasherFileError(ValueError):
    """A file that is not a saved :class:`FeatureHasher`, or a damaged one."""
