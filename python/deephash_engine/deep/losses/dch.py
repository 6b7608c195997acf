"""DCH: Cao, Long, Liu, Wang, "Deep Cauchy Hashing for Hamming Space Retrieval", CVPR 2018.

With the normalised Hamming-like distance ``d(a, b) = K/2 * (1 - cos(a, b))`` and the Cauchy
probability ``p = gamma / (gamma + d)``, the loss is the class-balanced cross-entropy over the
pairs of the batch, ``w_ij * (s log(1 + d/gamma) + (1 - s) log(1 + gamma/d))``, normalised by the
number of pairs, plus the Cauchy quantization ``lambda * mean_i log(1 + d(|u_i|, 1)/gamma)``.
Defaults: ``gamma = 20``, ``lambda = 0.1`` (the paper's settings as used in DeepHash-TF/-pytorch).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from .base import HashLoss, batch_pairs, similarity
from .functional import balance_weights, cauchy_quantization

#: Smallest distance fed to log(1 + gamma/d); keeps identical codes finite.
_MIN_DISTANCE = 1e-6


def cosine_distance(a: torch.Tensor, b: torch.Tensor, nbits: int) -> torch.Tensor:
    """(na, nb) matrix ``nbits/2 * (1 - cos(a_i, b_j))``."""
    cos = F.normalize(a, dim=1) @ F.normalize(b, dim=1).t()
    return 0.5 * nbits * (1.0 - cos)


class DCHLoss(HashLoss):
    method = "dch"

    def __init__(self, nbits: int, gamma: float = 20.0, lambda_q: float = 0.1) -> None:
        super().__init__(nbits)
        if gamma <= 0:
            raise ValueError(f"gamma: expected > 0, got {gamma}")
        self.gamma = float(gamma)
        self.lambda_q = float(lambda_q)

    def compute(self, u, target, index):
        _, yv, mask = batch_pairs(u, target)
        s = similarity(target.to(u.dtype), yv)
        d = cosine_distance(u, u, self.nbits).clamp(min=_MIN_DISTANCE)
        per_pair = s * torch.log1p(d / self.gamma) + (1.0 - s) * torch.log1p(self.gamma / d)
        w = balance_weights(s, mask)
        cauchy = (w * per_pair).sum() / mask.sum().clamp(min=1.0)
        return cauchy + self.lambda_q * cauchy_quantization(u, self.gamma)
