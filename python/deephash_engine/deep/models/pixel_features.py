"""Frozen pixel features for the label-free methods (BiHalf, unsupervised GreedyHash):
``pixels`` (the normalised image, flattened) and ``pca`` (its projection on the top principal
directions of the training images, centred; 128 of them, or all pixels when there are fewer).

Neither has trainable parameters and neither needs a download. ``pca`` holds its mean and
directions as buffers, so a saved model encodes new images without refitting; it learns them in
:meth:`PixelFeatures.fit`, which :func:`deephash_engine.deep.label_free.prepare_label_free` calls
on the training images before training (labels play no part).
"""

from __future__ import annotations

import os
from typing import Optional

import numpy as np
import torch
from torch import nn

from .hashing_model import register_backbone

#: Principal directions the ``pca`` backbone keeps (fewer when an image has fewer values).
PCA_DIM = 128
#: The most values per image ``pca`` accepts (its covariance is d x d).
PCA_MAX_INPUT = 4096


class PixelFeatures(nn.Module):
    def __init__(self, in_channels: int, image_size: int, dim: Optional[int] = None) -> None:
        super().__init__()
        size = in_channels * image_size * image_size
        if dim is not None and size > PCA_MAX_INPUT:
            raise ValueError(f"in_channels, image_size: pca expects at most {PCA_MAX_INPUT} values per "
                             f"image, got {in_channels} x {image_size} x {image_size} = {size}")
        self.in_features = size
        self.pca = dim is not None
        self.out_features = min(dim, size) if dim is not None else size
        if self.pca:
            self.register_buffer("mean", torch.zeros(size))
            self.register_buffer("directions", torch.zeros(size, self.out_features))

    @torch.no_grad()
    def fit(self, images: torch.Tensor) -> "PixelFeatures":
        """Learn the PCA mean and directions from training images (n, C, H, W); no-op for pixels."""
        if self.pca:
            from ...hashing._pca import principal_directions

            flat = images.reshape(images.shape[0], -1).double().cpu().numpy()
            mean, directions, _ = principal_directions(np.ascontiguousarray(flat), self.out_features)
            self.mean.copy_(torch.from_numpy(mean))
            self.directions.copy_(torch.from_numpy(directions))
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(x.shape[0], -1)
        if not self.pca:
            return flat
        return (flat - self.mean.to(flat.dtype)) @ self.directions.to(flat.dtype)


def _no_weights(name: str, weights) -> None:
    if weights is not None:
        raise ValueError(f"weights: the {name} features have no weights file, expected None")


@register_backbone("pixels")
def build_pixels(in_channels: int, image_size: int,
                 weights: Optional[str | os.PathLike] = None) -> PixelFeatures:
    _no_weights("pixels", weights)
    return PixelFeatures(in_channels, image_size)


@register_backbone("pca")
def build_pca(in_channels: int, image_size: int,
              weights: Optional[str | os.PathLike] = None) -> PixelFeatures:
    _no_weights("pca", weights)
    return PixelFeatures(in_channels, image_size, PCA_DIM)
