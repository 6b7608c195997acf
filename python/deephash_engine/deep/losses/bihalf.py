"""BiHalf: Li & van Gemert, "Deep Unsupervised Image Hashing by Maximizing Bit Entropy", AAAI 2021.

Label-free: ``target`` is the batch's frozen features ``x`` (``label_free = True``). The codes are
the bi-half split of the hash outputs ``u``: in each bit (column), the samples in the top half of
the batch get +1 and the rest -1, so every bit is +1 for exactly half of the batch (maximal bit
entropy). The loss preserves cosine similarities, ``mean over pairs of (cos(b_i, b_j) -
cos(x_i, x_j))^2``, with the research code's pairs (sample i with sample i + n/2; ``pairs="all"``
takes every pair). The split passes the gradient ``g + gamma * (u - b) / numel(u)`` to ``u``, where
``g`` is the gradient reaching ``b``. Default ``gamma = 6`` (the official code and DeepHash-pytorch).

Odd batches: the top ``floor(n/2)`` samples of a bit get +1 and the other ``ceil(n/2)`` -1 (so
the median sample gets -1, as in the research code). Ties between equal outputs go by batch
order (a stable sort: the earlier sample ranks higher). At evaluation the code is ``u >= 0``,
one sample at a time, as DeepHash-pytorch does after its fix; the split is a training device.
"""

from __future__ import annotations

import torch

from .base import LabelFreeLoss
from .functional import cosine_preserving_mse


def bihalf_split(u: torch.Tensor) -> torch.Tensor:
    """+1 for the top ``floor(n/2)`` samples of each column of ``u`` (n, nbits), -1 for the rest."""
    n = u.shape[0]
    order = torch.sort(u, dim=0, descending=True, stable=True).indices
    ranked = torch.full_like(u, -1.0)
    ranked[: n // 2] = 1.0
    return torch.empty_like(u).scatter_(0, order, ranked)


class BiHalfSplit(torch.autograd.Function):
    """Forward :func:`bihalf_split`; backward ``g + gamma * (u - b) / numel(u)``."""

    @staticmethod
    def forward(ctx, u, gamma):
        b = bihalf_split(u)
        ctx.save_for_backward(u, b)
        ctx.gamma = gamma
        return b

    @staticmethod
    def backward(ctx, grad_b):
        u, b = ctx.saved_tensors
        return grad_b + ctx.gamma * (u - b) / u.numel(), None


def bihalf_codes(u: torch.Tensor, gamma: float = 6.0) -> torch.Tensor:
    return BiHalfSplit.apply(u, float(gamma))


class BiHalfLoss(LabelFreeLoss):
    method = "bihalf"

    def __init__(self, nbits: int, gamma: float = 6.0, pairs: str = "halves") -> None:
        super().__init__(nbits, pairs)
        if gamma < 0:
            raise ValueError(f"gamma: expected >= 0, got {gamma}")
        self.gamma = float(gamma)

    def compute(self, u, target, index):
        return cosine_preserving_mse(bihalf_codes(u, self.gamma), target, self.pairs)
