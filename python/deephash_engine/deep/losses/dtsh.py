"""DTSH: Wang, Shi, Kitani, "Deep Supervised Hashing with Triplet Labels", ACCV 2016.

For every triplet of the batch (anchor i, positive j similar to i, negative k not similar to i)
with ``theta_ij = scale * <u_i, u_j>``, the triplet negative log-likelihood is
``softplus(-(theta_ij - theta_ik - alpha))``, averaged (``average``) over all triplets of the
batch or over each anchor's triplets and then over anchors, plus
``lambda_q * mean((u - sign u)^2)``. ``self_positive`` counts the anchor itself among its
positives (j = i).

The paper has ``theta = <u_i, u_j> / 2`` (``scale=0.5``); DeepHash-pytorch, which reproduces its
CIFAR-10 numbers, has ``scale = 1``, per-anchor averaging and the anchor as its own positive,
with ``alpha = 5``, ``lambda_q = 1``. Those are our defaults: on the fashion-mnist-mini
validation split (3 epochs, seeds 0-2) they gave validation mAP 0.692 / 0.730 / 0.752 at 16 / 32 /
64 bits against 0.604 / 0.667 / 0.712 for the paper's scale with the mean over all triplets, i
!= j (docs/benchmarks.md, "Each method beside its DeepHash-pytorch loss").
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from .base import HashLoss, sign_pm1, similarity


#: How the triplet terms are averaged: over all triplets of the batch, or per anchor first.
AVERAGES = ("triplets", "anchors")


class DTSHLoss(HashLoss):
    method = "dtsh"

    def __init__(self, nbits: int, alpha: float = 5.0, lambda_q: float = 1.0, scale: float = 1.0,
                 average: str = "anchors", self_positive: bool = True) -> None:
        super().__init__(nbits)
        if scale <= 0:
            raise ValueError(f"scale: expected > 0, got {scale}")
        if average not in AVERAGES:
            raise ValueError(f"average: expected one of {AVERAGES}, got {average!r}")
        self.alpha = float(alpha)
        self.lambda_q = float(lambda_q)
        self.scale = float(scale)
        self.average, self.self_positive = average, bool(self_positive)

    def compute(self, u, target, index):
        n = u.shape[0]
        theta = self.scale * (u @ u.t())
        s = similarity(target.to(u.dtype), target.to(u.dtype))
        positive = s if self.self_positive else s * (1.0 - torch.eye(n, dtype=u.dtype, device=u.device))
        negative = 1.0 - s
        # valid[i, j, k] = j is a positive of i and k a negative of i
        valid = positive.unsqueeze(2) * negative.unsqueeze(1)
        margin = theta.unsqueeze(2) - theta.unsqueeze(1) - self.alpha
        terms = F.softplus(-margin) * valid
        if self.average == "triplets":
            triplet = terms.sum() / valid.sum().clamp(min=1.0)
        else:  # each anchor's mean over its triplets, then the mean over anchors that have any
            count = valid.sum((1, 2))
            anchors = count > 0
            per_anchor = terms.sum((1, 2))[anchors] / count[anchors]
            triplet = per_anchor.mean() if per_anchor.numel() else terms.sum() * 0.0
        quantization = ((u - sign_pm1(u).detach()) ** 2).mean()
        return triplet + self.lambda_q * quantization
