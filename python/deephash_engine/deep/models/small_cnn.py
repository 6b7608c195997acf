"""A small CNN for 28x28 or 32x32 images (56x56 for the fashion-mnist-mosaic mosaics), meant for
CPU training:
conv(32) - BN - maxpool - ReLU, conv(64) - BN - maxpool - ReLU, fc(512) - BN - ReLU.

Each ReLU runs after its max-pool rather than before it, as usually drawn. The two commute exactly (ReLU is
monotone, so the max of the rectified values is the rectified max, and the gradient reaches the
same element), so the network computes the same function and gradients, while the ReLU and its
backward pass touch a quarter of the values.

The convolutions run in the channels-last memory layout, which oneDNN's CPU convolutions and
their backward passes prefer. Only the layout changes, not what is computed. (What each choice
saved is measured in docs/benchmarks.md, "Measurements behind the deep-hashing code".)"""

from __future__ import annotations

import os
from typing import Optional

import torch
from torch import nn

from .hashing_model import register_backbone


class SmallCNN(nn.Module):
    def __init__(self, in_channels: int = 1, image_size: int = 28, width: int = 512) -> None:
        super().__init__()
        if in_channels <= 0 or image_size < 4:
            raise ValueError(
                f"in_channels, image_size: expected > 0 and >= 4, got {in_channels}, {image_size}"
            )
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.MaxPool2d(2),
            nn.ReLU(inplace=True),
            nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.MaxPool2d(2),
            nn.ReLU(inplace=True),
        )
        side = image_size // 4
        self.fc = nn.Sequential(
            nn.Flatten(), nn.Linear(64 * side * side, width, bias=False), nn.BatchNorm1d(width),
            nn.ReLU(inplace=True),
        )
        self.out_features = width
        self.features.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x.contiguous(memory_format=torch.channels_last)))


@register_backbone("small_cnn")
def build_small_cnn(in_channels: int, image_size: int,
                    weights: Optional[str | os.PathLike] = None) -> SmallCNN:
    if weights is not None:
        raise ValueError("weights: small_cnn has no pretrained weights, expected None")
    return SmallCNN(in_channels, image_size)
