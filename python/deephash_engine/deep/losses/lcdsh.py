"""LCDSH: Zhu, Gao, "Locality-Constrained Deep Supervised Hashing for Image Retrieval",
IJCAI 2017.

With ``theta_ij = <u_i, u_j> / 2`` on the raw outputs and ``b = sign(u)`` held constant
(``theta^b_ij = <b_i, b_j> / 2``), the loss averaged over the ordered pairs i != j of the batch is

    log(1 + exp(-s'_ij theta_ij)) + lambda * (sigmoid(theta_ij) - sigmoid(theta^b_ij))^2

with ``s' = +1`` for pairs that share a label and ``-1`` otherwise. The first term equals the
pairwise likelihood ``softplus(theta) - s theta`` with ``s`` in {0, 1}, so it is computed by the
shared :func:`.functional.pairwise_likelihood`. The second ties the pair probability of the
relaxed outputs to that of their codes, a quantization term measured in the pair space.

Default ``lambda = 3`` (DeepHash-pytorch's LCDSH recipe). Pairs are in-batch; DeepHash-pytorch
also counts the pairs i == j (diagonal), which we leave out as every in-batch loss here does.
"""

from __future__ import annotations

import torch

from .base import PairwiseLoss, masked_mean, sign_pm1
from .functional import pairwise_likelihood


class LCDSHLoss(PairwiseLoss):
    method = "lcdsh"

    def __init__(self, nbits: int, lambda_q: float = 3.0) -> None:
        super().__init__(nbits)
        if lambda_q < 0:
            raise ValueError(f"lambda_q: expected >= 0, got {lambda_q}")
        self.lambda_q = float(lambda_q)

    def compute(self, u, target, index):
        v, yv, mask = self.others(u, target, index)
        likelihood = pairwise_likelihood(u, v, target, yv, mask)
        b = sign_pm1(u).detach()
        theta = 0.5 * (u @ u.t())
        theta_b = 0.5 * (b @ b.t())
        locality = masked_mean((torch.sigmoid(theta) - torch.sigmoid(theta_b)) ** 2, mask)
        return likelihood + self.lambda_q * locality
