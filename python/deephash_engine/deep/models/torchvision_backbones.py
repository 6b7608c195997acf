"""torchvision AlexNet, VGG16, ResNet18 and ResNet50 as feature extractors.

Weights are loaded only from a local file (``weights=path`` to a torchvision ``state_dict``);
nothing is ever downloaded. torchvision is optional: without it these backbones raise an
ImportError that says so, and the small CNN still works.
"""

from __future__ import annotations

import os
from typing import Optional

import torch
from torch import nn

from .hashing_model import register_backbone

BACKBONES = ("alexnet", "vgg16", "resnet18", "resnet50")


def _torchvision_models():
    try:
        from torchvision import models
    except Exception as exc:  # ImportError, or a torchvision built for another torch
        raise ImportError(
            "torchvision backbones (alexnet, vgg16, resnet18, resnet50) need a torchvision that "
            f"matches torch {torch.__version__}; it could not be imported ({exc}). "
            "Use backbone='small_cnn' or install a matching torchvision."
        ) from exc
    return models


class TorchvisionBackbone(nn.Module):
    """The network up to its penultimate layer (fc7 for AlexNet/VGG, avgpool for ResNet)."""

    def __init__(self, name: str, weights: Optional[str | os.PathLike] = None) -> None:
        super().__init__()
        if name not in BACKBONES:
            raise ValueError(f"name: expected one of {BACKBONES}, got {name!r}")
        models = _torchvision_models()
        net = getattr(models, name)(weights=None)
        if weights is not None:
            state = torch.load(os.fspath(weights), map_location="cpu", weights_only=True)
            net.load_state_dict(state)
        self.name = name
        if name.startswith("resnet"):
            self.out_features = net.fc.in_features
            net.fc = nn.Identity()
            self.body = net
        else:  # alexnet, vgg16: keep the classifier up to fc7 + ReLU, drop the last Linear
            self.out_features = net.classifier[-1].in_features
            net.classifier = nn.Sequential(*list(net.classifier.children())[:-1])
            self.body = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def _builder(name: str):
    def build(in_channels: int, image_size: int,
              weights: Optional[str | os.PathLike] = None) -> TorchvisionBackbone:
        return TorchvisionBackbone(name, weights)

    return build


for _name in BACKBONES:
    register_backbone(_name)(_builder(_name))
