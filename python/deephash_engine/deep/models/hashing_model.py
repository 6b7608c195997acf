"""Backbone + hash head, and a factory that builds one by name.

The head is a Linear layer from the backbone's features to ``nbits`` raw outputs (initialised
N(0, 0.01), bias 0, as in HashNet); each loss applies its own squashing and the code is
``output >= 0``. :meth:`HashingModel.param_groups` gives the head (and the loss's own parameters)
a larger learning rate than the backbone, HashNet's 10x by default.
"""

from __future__ import annotations

import os
from typing import Iterable, Optional

import torch
from torch import nn

from .small_cnn import SmallCNN
from .torchvision_backbones import BACKBONES, TorchvisionBackbone


class HashingModel(nn.Module):
    def __init__(self, backbone: nn.Module, nbits: int, feature_dim: Optional[int] = None) -> None:
        super().__init__()
        if not isinstance(nbits, int) or nbits <= 0:
            raise ValueError(f"nbits: expected a positive int, got {nbits!r}")
        dim = feature_dim if feature_dim is not None else getattr(backbone, "out_features", None)
        if dim is None:
            raise ValueError("feature_dim: expected an int (the backbone has no out_features), got None")
        self.backbone = backbone
        self.hash_layer = nn.Linear(dim, nbits)
        nn.init.normal_(self.hash_layer.weight, 0.0, 0.01)
        nn.init.zeros_(self.hash_layer.bias)
        self.nbits = nbits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.hash_layer(self.backbone(x))

    def param_groups(self, lr: float, head_lr_mult: float = 10.0,
                     extra: Iterable[nn.Parameter] = ()) -> list[dict]:
        """Optimiser groups: backbone at ``lr``, hash head and ``extra`` (a loss's classifier)
        at ``lr * head_lr_mult``."""
        head = list(self.hash_layer.parameters()) + list(extra)
        groups = [{"params": list(self.backbone.parameters()), "lr": lr, "name": "backbone"}]
        if head:
            groups.append({"params": head, "lr": lr * head_lr_mult, "name": "head"})
        return groups


MODELS = ("small_cnn",) + BACKBONES


def build_model(name: str, nbits: int, in_channels: int = 1, image_size: int = 28,
                weights: Optional[str | os.PathLike] = None) -> HashingModel:
    """``small_cnn`` or a torchvision backbone (weights from a local file), plus a hash head."""
    if name == "small_cnn":
        if weights is not None:
            raise ValueError("weights: small_cnn has no pretrained weights, expected None")
        return HashingModel(SmallCNN(in_channels, image_size), nbits)
    if name in BACKBONES:
        return HashingModel(TorchvisionBackbone(name, weights), nbits)
    raise ValueError(f"name: expected one of {MODELS}, got {name!r}")
