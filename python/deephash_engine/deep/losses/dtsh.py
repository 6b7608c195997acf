"""DTSH: Wang, Shi, Kitani, "Deep Supervised Hashing with Triplet Labels", ACCV 2016.

For every triplet of the batch (anchor i, positive j similar to i, negative k not similar to i)
with ``theta_ij = <u_i, u_j> / 2``, the triplet negative log-likelihood is
``softplus(-(theta_ij - theta_ik - alpha))``; the loss is its mean over all valid triplets plus
``lambda_q * mean((u - sign u)^2)``. Defaults ``alpha = 5`` (margin), ``lambda_q = 1``
(as in DeepHash-pytorch, which reproduces the paper's CIFAR-10 numbers).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from .base import HashLoss, sign_pm1, similarity


class DTSHLoss(HashLoss):
    method = "dtsh"

    def __init__(self, nbits: int, alpha: float = 5.0, lambda_q: float = 1.0) -> None:
        super().__init__(nbits)
        self.alpha = float(alpha)
        self.lambda_q = float(lambda_q)

    def compute(self, u, target, index):
        n = u.shape[0]
        theta = 0.5 * (u @ u.t())
        s = similarity(target.to(u.dtype), target.to(u.dtype))
        not_self = 1.0 - torch.eye(n, dtype=u.dtype, device=u.device)
        positive = s * not_self
        negative = 1.0 - s
        # valid[i, j, k] = j is a positive of i and k a negative of i
        valid = positive.unsqueeze(2) * negative.unsqueeze(1)
        margin = theta.unsqueeze(2) - theta.unsqueeze(1) - self.alpha
        count = valid.sum()
        triplet = (F.softplus(-margin) * valid).sum() / count.clamp(min=1.0)
        quantization = ((u - sign_pm1(u).detach()) ** 2).mean()
        return triplet + self.lambda_q * quantization
