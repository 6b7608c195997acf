"""Unsupervised GreedyHash: Su, Zhang, Han, Tian, "Greedy Hash: Towards Fast Optimization for
Accurate Hash Coding in CNN", NeurIPS 2018 (its unsupervised setting).

Label-free: ``target`` is the batch's frozen features ``x`` (``label_free = True``). The code is
``b = sign(u)`` forward with the identity gradient backward (:func:`.greedyhash.sign_straight_through`),
and the loss is ``mean over pairs of (cos(b_i, b_j) - cos(x_i, x_j))^2 + alpha * mean(| |u| - 1 |^3)``,
with the official code's pairs (sample i with sample i + n/2; ``pairs="all"`` takes every pair).
Default ``alpha = 0.1`` (the official unsupervised script and DeepHash-pytorch).
"""

from __future__ import annotations

from .base import LabelFreeLoss
from .functional import cosine_preserving_mse
from .greedyhash import sign_straight_through


class GreedyHashUnsupervisedLoss(LabelFreeLoss):
    method = "greedyhash-unsup"

    def __init__(self, nbits: int, alpha: float = 0.1, pairs: str = "halves") -> None:
        super().__init__(nbits, pairs)
        self.alpha = float(alpha)

    def compute(self, u, target, index):
        b = sign_straight_through(u)
        penalty = (u.abs() - 1.0).abs().pow(3).mean()
        return cosine_preserving_mse(b, target, self.pairs) + self.alpha * penalty
