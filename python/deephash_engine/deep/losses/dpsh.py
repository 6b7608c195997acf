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

import math
from typing import Optional

import torch
from torch.nn import functional as F

from ... import _core
from .base import (
    PairwiseLoss, bank_blocks, is_one_hot, masked_mean, sign_pm1, similarity, with_gradient,
)


def log_sum(x: torch.Tensor) -> torch.Tensor:
    """``sum(log(x))`` for a tensor with entries in [1/2, 1].

    One log serves the product of a group of entries (32 of them in float32 and float64): such
    a product is >= 2^-32, far from underflow, and its rounding error (about 32 ulp) costs the
    log what 32 separate logs would. A log costs far more than a multiplication.
    """
    group = max(1, min(32, int(-math.log2(torch.finfo(x.dtype).tiny)) // 2))
    flat = x.reshape(-1)
    whole = flat.numel() // group * group
    total = flat[:whole].view(-1, group).prod(1).log_().sum()
    if whole < flat.numel():
        total = total + flat[whole:].log().sum()
    return total


def sigmoid_softplus_(theta: torch.Tensor, work: torch.Tensor):
    """Replace ``theta`` by ``sigmoid(theta)`` in place and return ``sum(softplus(theta))``: a
    float from the kernel, a 0-d float64 tensor on theta's device from the torch passes (so a
    CUDA step never waits on the device for it).

    On a CPU float32 contiguous tensor this is the engine's one-pass kernel
    (``_core.sigmoid_softplus_``, AVX2). Elsewhere (CUDA, float64, CPUs without AVX2) it is
    done in torch passes, with ``work`` (theta's shape) as scratch:
    ``softplus(t) = max(t, 0) - log(sigmoid(|t|))``, where ``sigmoid(|t|) = max(p, 1 - p)`` in
    [1/2, 1] never underflows.
    """
    if (theta.device.type == "cpu" and theta.dtype == torch.float32 and theta.is_contiguous()
            and _core.logistic_level() != "scalar"):
        return _core.sigmoid_softplus_(theta.numpy())
    total = torch.clamp(theta, min=0.0, out=work).sum(dtype=torch.float64)
    probability = theta.sigmoid_()
    total -= log_sum(torch.sub(probability, 0.5, out=work).abs_().add_(0.5))
    return total


def pairwise_likelihood(
    u: torch.Tensor, v: torch.Tensor, target: torch.Tensor, yv: torch.Tensor,
    mask: Optional[torch.Tensor], scale: float = 0.5, class_v: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Mean over pairs of ``softplus(theta) - s * theta``, ``theta = scale * u_i . v_j``, with
    ``s`` the label similarity of ``target`` rows and ``yv`` rows.

    When ``v`` carries no gradient (a memory bank) the value and the gradient with respect to
    ``u``, ``scale / count * (sigmoid(theta) - S) @ v``, are computed in closed form, one block of
    bank rows at a time (:func:`bank_blocks`): per block one product for theta, one pass that
    turns theta into ``sigmoid(theta)`` and sums ``softplus(theta)`` (:func:`sigmoid_softplus_`),
    and one product for ``sigmoid(theta) @ v``. With one-hot labels
    ``S @ v = target @ (yv^T v)``, so S itself is never formed; ``class_v``, when given, is that
    ``yv^T v`` with every ``yv`` row one-hot (a memory bank keeps it:
    :meth:`MemoryBank.one_hot_class_sums`).
    """
    target = target.to(u.dtype)
    if v.requires_grad or mask is not None:
        s = similarity(target, yv)
        theta = scale * (u @ v.t())
        return masked_mean(F.softplus(theta) - s * theta, mask)
    with torch.no_grad():
        scaled = scale * u
        count = float(u.shape[0] * v.shape[0]) or 1.0
        if class_v is not None:
            one_hot = is_one_hot(target)
            class_v = class_v.to(u.dtype)
        else:
            one_hot = is_one_hot(target) and is_one_hot(yv)
            if one_hot:
                class_v = yv.t() @ v
        s_v = torch.zeros_like(u)  # S @ v
        sigmoid_v = torch.zeros_like(u)  # sigmoid(theta) @ v
        total = u.new_zeros((), dtype=torch.float64)  # sum of softplus(theta), in double
        for rows, theta, work in bank_blocks(scaled, v, scratch=1):
            if not one_hot:
                s_v.addmm_(similarity(target, yv[rows]), v[rows])
            total += sigmoid_softplus_(theta, work)
            sigmoid_v.addmm_(theta, v[rows])  # theta now holds sigmoid(theta)
        if one_hot:
            s_v = target @ class_v
        value = ((total - (scaled.double() * s_v.double()).sum()) / count).to(u.dtype)
        grad_u = (sigmoid_v - s_v) * (scale / count)
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
        likelihood = pairwise_likelihood(u, v, target, yv, mask, class_v=self.bank_class_sums())
        quantization = ((u - sign_pm1(u).detach()) ** 2).mean()
        return likelihood + self.eta * quantization
