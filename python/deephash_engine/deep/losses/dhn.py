"""DHN: Zhu, Long, Wang, Cao, "Deep Hashing Network for Efficient Similarity Retrieval",
AAAI 2016.

Loss: the pairwise negative log-likelihood of DPSH (``theta = <u_i, u_j> / 2``) over pairs of the
batch, plus the smooth quantization ``alpha * mean(log cosh(|u| - 1))`` that pulls every output
to +-1. Default ``alpha = 0.1`` (as the DeepHash-pytorch and DeepHash-TF recipes). The pairs can
also be taken against a memory bank (``memory_bank=True``).
"""

from __future__ import annotations

from typing import Optional

import torch

from .base import PairwiseLoss, similarity
from .functional import pairwise_likelihood


def log_cosh(x: torch.Tensor) -> torch.Tensor:
    """log(cosh(x)) without overflow: |x| + log1p(exp(-2|x|)) - log 2."""
    ax = x.abs()
    return ax + torch.log1p(torch.exp(-2.0 * ax)) - torch.log(torch.tensor(2.0, dtype=x.dtype))


class DHNLoss(PairwiseLoss):
    method = "dhn"

    def __init__(
        self,
        nbits: int,
        alpha: float = 0.1,
        memory_bank: bool = False,
        num_train: Optional[int] = None,
        num_classes: Optional[int] = None,
    ) -> None:
        super().__init__(nbits, memory_bank, num_train, num_classes)
        self.alpha = float(alpha)

    def compute(self, u, target, index):
        v, yv, mask, class_v, products = self.pairing(u, target, index)
        likelihood = pairwise_likelihood(u, v, target, yv, mask, class_v=class_v, products=products)
        return likelihood + self.alpha * log_cosh(u.abs() - 1.0).mean()
