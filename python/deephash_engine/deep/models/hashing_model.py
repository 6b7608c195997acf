"""Backbone + hash head, the registry of backbones, and a factory that builds a model by name.

A backbone registers itself with :func:`register_backbone` (a decorator on its builder) when its
module is imported; :func:`build_model` and the ``deephash train --model`` help read
:data:`MODELS`, so a new backbone is one file in this folder and one import in ``__init__.py``.

The head is a Linear layer from the backbone's features to ``nbits`` raw outputs (initialised
N(0, 0.01), bias 0, as in HashNet), optionally after a hidden Linear layer (``hidden``; both then
keep PyTorch's default initialisation); each loss applies its own squashing and the code is
``output >= 0``. :meth:`HashingModel.param_groups` gives the head (and the loss's own parameters)
a larger learning rate than the backbone, HashNet's 10x by default.
"""

from __future__ import annotations

import os
from typing import Callable, Iterable, Optional

import torch
from torch import nn

from ..._checks import check_positive_int

#: A backbone builder: ``(in_channels, image_size, weights) -> nn.Module`` with ``out_features``.
BackboneBuilder = Callable[[int, int, Optional[str | os.PathLike]], nn.Module]

#: Backbone name -> builder, filled as backbone modules are imported.
MODELS: dict[str, BackboneBuilder] = {}


def register_backbone(name: str) -> Callable[[BackboneBuilder], BackboneBuilder]:
    """Decorator: register ``builder(in_channels, image_size, weights)`` under ``name``."""

    def register(builder: BackboneBuilder) -> BackboneBuilder:
        MODELS[name] = builder
        return builder

    return register


class HashingModel(nn.Module):
    """``backbone`` -> (an optional ``hidden`` Linear layer) -> the hash layer of ``nbits`` outputs.

    ``hidden`` > 0 puts a Linear layer of that width (no activation) between the backbone and the
    hash layer, as methods whose network has a feature layer there do (PCDH's 1024-d layer, which
    its loss reads: :meth:`forward_with_features`); both layers then keep PyTorch's default
    initialisation, as in that network (for PCDH on fashion-mnist-mini, validation mAP 0.655 /
    0.603 / 0.600 at 16 / 32 / 64 bits against 0.649 / 0.598 / 0.561 with the hash layer at
    N(0, 0.01)).
    """

    def __init__(self, backbone: nn.Module, nbits: int, feature_dim: Optional[int] = None,
                 hidden: int = 0) -> None:
        super().__init__()
        nbits = check_positive_int(nbits, "nbits")
        hidden = check_positive_int(hidden, "hidden", minimum=0)
        dim = feature_dim if feature_dim is not None else getattr(backbone, "out_features", None)
        if dim is None:
            raise ValueError("feature_dim: expected an int (the backbone has no out_features), got None")
        self.backbone = backbone
        self.hidden = hidden
        self.hidden_layer = nn.Linear(dim, hidden) if hidden else None
        self.hash_layer = nn.Linear(hidden or dim, nbits)
        if not hidden:  # after a hidden layer: PyTorch's default, as in the research network (PCDH)
            nn.init.normal_(self.hash_layer.weight, 0.0, 0.01)
            nn.init.zeros_(self.hash_layer.bias)
        self.nbits = nbits
        self.backbone_frozen = False
        self.features_in_training = False

    def freeze_backbone(self) -> "HashingModel":
        """Fix the backbone: no gradients, always in eval mode (batch norm keeps its running
        statistics), and no place in :meth:`param_groups`. Only the hash head learns."""
        self.backbone.requires_grad_(False)
        self.backbone_frozen = True
        self.backbone.eval()
        return self

    def read_features_in_training(self, on: bool = True) -> "HashingModel":
        """With a frozen backbone, make training-mode inputs the backbone's features instead of
        images: ``forward`` then applies only the hash head, so features computed once (see
        :func:`deephash_engine.deep.label_free.prepare_label_free`) are not recomputed at every
        step. Eval mode (encoding, validation) still reads images. Raises ValueError while the
        backbone learns, since its features would change under it."""
        if on and not self.backbone_frozen:
            raise ValueError("read_features_in_training: expected a frozen backbone (freeze_backbone() first)")
        self.features_in_training = bool(on)
        return self

    def train(self, mode: bool = True) -> "HashingModel":
        super().train(mode)
        if self.backbone_frozen:
            self.backbone.eval()
        return self

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(features, raw hash outputs) of a batch: the features are the hidden layer's output
        when there is one, else the backbone's (what a loss with ``needs_features`` reads)."""
        f = x if self.features_in_training and self.training else self.backbone(x)
        if self.hidden_layer is not None:
            f = self.hidden_layer(f)
        return f, self.hash_layer(f)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_features(x)[1]

    def param_groups(self, lr: float, head_lr_mult: float = 10.0,
                     extra: Iterable[nn.Parameter] = ()) -> list[dict]:
        """Optimiser groups: backbone at ``lr``, hash head (with the hidden layer, if any) and
        ``extra`` (a loss's classifier) at ``lr * head_lr_mult``."""
        hidden = list(self.hidden_layer.parameters()) if self.hidden_layer is not None else []
        head = hidden + list(self.hash_layer.parameters()) + list(extra)
        groups = []
        backbone = [p for p in self.backbone.parameters() if p.requires_grad]
        if backbone or not head:
            groups.append({"params": backbone, "lr": lr, "name": "backbone"})
        if head:
            groups.append({"params": head, "lr": lr * head_lr_mult, "name": "head"})
        return groups


def build_model(name: str, nbits: int, in_channels: int = 1, image_size: int = 28,
                weights: Optional[str | os.PathLike] = None, hidden: int = 0) -> HashingModel:
    """The registered backbone ``name`` (``small_cnn``, a torchvision backbone with weights from
    a local file, ...) plus a hash head of ``nbits`` outputs (after a hidden Linear layer of
    width ``hidden`` when it is > 0)."""
    if name not in MODELS:
        raise ValueError(f"name: expected one of {tuple(MODELS)}, got {name!r}")
    return HashingModel(MODELS[name](in_channels, image_size, weights), nbits, hidden=hidden)
