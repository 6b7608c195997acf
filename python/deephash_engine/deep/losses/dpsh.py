"""DPSH: Li, Wang, Kang, "Feature Learning based Deep Supervised Hashing with Pairwise Labels",
IJCAI 2016.

Loss: the negative log-likelihood of the pairwise labels, ``log(1 + e^theta) - s * theta`` with
``theta = <u_i, u_j> / 2``, averaged over pairs, plus ``eta * mean((u - sign u)^2)``.
Pairs are formed against a memory bank of the latest outputs of all training samples, as in the
paper's alternating scheme (``memory_bank=False`` pairs within the batch instead).

Defaults: ``eta = 0.1``. The paper weighs a *summed* quantization term; with both terms as
means, 0.1 is the value used by the public PyTorch ports (TreezzZ/DPSH_PyTorch), which reproduce
the paper's CIFAR-10 numbers.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch.nn import functional as F

from .base import PairwiseLoss, masked_mean, sign_pm1, similarity


def pairwise_likelihood(
    u: torch.Tensor, v: torch.Tensor, s: torch.Tensor, mask: torch.Tensor, scale: float = 0.5
) -> torch.Tensor:
    """Mean over masked pairs of ``softplus(theta) - s * theta``, ``theta = scale * u_i . v_j``."""
    theta = scale * (u @ v.t())
    return masked_mean(F.softplus(theta) - s * theta, mask)


class DPSHLoss(PairwiseLoss):
    def __init__(
        self,
        nbits: int,
        num_train: Optional[int] = None,
        num_classes: Optional[int] = None,
        eta: float = 0.1,
        memory_bank: bool = True,
    ) -> None:
        super().__init__(nbits, memory_bank, num_train, num_classes)
        self.eta = float(eta)

    def compute(self, u, target, index):
        v, yv, mask = self.others(u, target, index)
        likelihood = pairwise_likelihood(u, v, similarity(target.to(u.dtype), yv), mask)
        quantization = ((u - sign_pm1(u).detach()) ** 2).mean()
        return likelihood + self.eta * quantization
