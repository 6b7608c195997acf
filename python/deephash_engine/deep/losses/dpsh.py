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

from .base import PairwiseLoss, masked_mean, sign_pm1, similarity, with_gradient


def pairwise_likelihood(
    u: torch.Tensor, v: torch.Tensor, target: torch.Tensor, yv: torch.Tensor,
    mask: Optional[torch.Tensor], scale: float = 0.5,
) -> torch.Tensor:
    """Mean over pairs of ``softplus(theta) - s * theta``, ``theta = scale * u_i . v_j``, with
    ``s`` the label similarity of ``target`` rows and ``yv`` rows.

    When ``v`` carries no gradient (a memory bank) the value and the gradient with respect to
    ``u``, ``scale / count * (sigmoid(theta) - S) @ v``, are computed in closed form. With
    one-hot labels ``S @ v = target @ (yv^T v)``, so S itself is never formed: besides the two
    (batch, n) products only sigmoid and softplus touch (batch, n) values.
    """
    target = target.to(u.dtype)
    if v.requires_grad or mask is not None:
        s = similarity(target, yv)
        theta = scale * (u @ v.t())
        return masked_mean(F.softplus(theta) - s * theta, mask)
    with torch.no_grad():
        theta = scale * (u @ v.t())
        count = float(theta.numel()) or 1.0
        one_hot = bool((target.sum(1) == 1).all()) and bool((yv.sum(1) == 1).all())
        s_v = target @ (yv.t() @ v) if one_hot else similarity(target, yv) @ v
        value = (F.softplus(theta).sum() - scale * (u * s_v).sum()) / count
        grad_u = (torch.sigmoid(theta) @ v - s_v) * (scale / count)
    return with_gradient(value, u, grad_u)


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
        likelihood = pairwise_likelihood(u, v, target, yv, mask)
        quantization = ((u - sign_pm1(u).detach()) ** 2).mean()
        return likelihood + self.eta * quantization
