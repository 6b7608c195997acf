"""GreedyHash: Su, Zhang, Han, Tian, "Greedy Hash: Towards Fast Optimization for Accurate Hash
Coding in CNN", NeurIPS 2018.

The code is ``b = sign(u)`` in the forward pass and the gradient goes straight through
(``d b / d u = identity``) in the backward pass. A bias-free linear classifier on ``b`` is trained
with softmax cross-entropy (sigmoid cross-entropy for multi-label targets), plus
``alpha * mean(| |u| - 1 |^3)``. Default ``alpha = 0.1`` (the paper's CIFAR setting; 1 on
ImageNet). The classifier belongs to the loss; the trainer optimises it with the model.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import HashLoss, check_positive_int, sign_pm1
from .functional import classification_loss


class SignSTE(torch.autograd.Function):
    """sign (x >= 0 -> +1) forward, identity backward."""

    @staticmethod
    def forward(ctx, x):
        return sign_pm1(x)

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output


def sign_straight_through(x: torch.Tensor) -> torch.Tensor:
    return SignSTE.apply(x)


class GreedyHashLoss(HashLoss):
    method = "greedyhash"

    def __init__(self, nbits: int, num_classes: int, alpha: float = 0.1) -> None:
        super().__init__(nbits)
        check_positive_int(num_classes, "num_classes")
        self.alpha = float(alpha)
        self.classifier = nn.Linear(nbits, num_classes, bias=False)

    def compute(self, u, target, index):
        b = sign_straight_through(u)
        logits = self.classifier(b.to(self.classifier.weight.dtype))
        penalty = (u.abs() - 1.0).abs().pow(3).mean()
        return classification_loss(logits, target) + self.alpha * penalty
