"""DSH: Liu, Wang, Shan, Chen, "Deep Supervised Hashing for Fast Image Retrieval", CVPR 2016.

Loss per pair: ``s/2 * ||u_i - u_j||^2 + (1 - s)/2 * max(m - ||u_i - u_j||^2, 0)``, averaged over
pairs, plus ``alpha * mean_i sum_k | |u_ik| - 1 |`` (an L1 pull of each output towards +-1).
Defaults from the official Caffe code: margin ``m = 2 * nbits``, ``alpha = 0.01``, pairs within
the mini-batch. ``memory_bank=True`` pairs the batch with the latest outputs of all training
samples through ``||a - b||^2 = |a|^2 + |b|^2 - 2 a.b``: a (batch, n) matrix, never the
(batch, n, nbits) difference tensor.
"""

from __future__ import annotations

from typing import Optional

import torch

from .base import PairwiseLoss, masked_mean, similarity, with_gradient


def squared_distances(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(na, nb) squared Euclidean distances, clamped at 0 against rounding."""
    d = (u * u).sum(1, keepdim=True) + (v * v).sum(1).unsqueeze(0) - 2.0 * (u @ v.t())
    return d.clamp(min=0.0)


class DSHLoss(PairwiseLoss):
    def __init__(
        self,
        nbits: int,
        margin: Optional[float] = None,
        alpha: float = 0.01,
        memory_bank: bool = False,
        num_train: Optional[int] = None,
        num_classes: Optional[int] = None,
    ) -> None:
        super().__init__(nbits, memory_bank, num_train, num_classes)
        self.margin = float(2 * nbits if margin is None else margin)
        self.alpha = float(alpha)

    def compute(self, u, target, index):
        v, yv, mask = self.others(u, target, index)
        s = similarity(target.to(u.dtype), yv)
        regular = (u.abs() - 1.0).abs().sum(1).mean()
        if v.requires_grad or mask is not None:
            d = squared_distances(u, v)
            pair = 0.5 * s * d + 0.5 * (1.0 - s) * (self.margin - d).clamp(min=0.0)
            return masked_mean(pair, mask) + self.alpha * regular
        with torch.no_grad():  # bank: value and gradient in closed form, no (batch, n) graph
            d = squared_distances(u, v)
            active = (1.0 - s) * (d < self.margin)
            count = float(d.numel()) or 1.0
            pair = 0.5 * s * d + 0.5 * active * (self.margin - d)
            value = pair.sum() / count
            g = (0.5 * s - 0.5 * active) / count  # d value / d d_ij
            grad_u = 2.0 * (g.sum(1, keepdim=True) * u - g @ v)
        return with_gradient(value, u, grad_u) + self.alpha * regular
