"""HashNet: Cao, Long, Wang, Yu, "HashNet: Deep Learning to Hash by Continuation", ICCV 2017.

Codes are ``h = tanh(beta * u)``; ``beta`` grows by continuation as in the official Caffe
``ScaleTanH`` layer: ``beta = (1 + gamma * t)^power`` with ``t`` the iteration count rounded down
to a multiple of ``step_size`` (defaults gamma = 0.005, power = 0.5, step_size = 200).
Loss: weighted pairwise cross-entropy over the pairs of the batch,
``w_ij * (log(1 + e^theta) - s_ij theta)`` with ``theta = alpha <h_i, h_j>``, adaptive sigmoid
``alpha = 10 / nbits`` and class-balance weights ``w = |S| / |S_1|`` for similar pairs and
``|S| / |S_0|`` for dissimilar ones, normalised by ``|S|``.

The iteration counter is a buffer: it advances on each training forward and is saved with the
loss, so a resumed run continues the schedule where it stopped.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch.nn import functional as F

from .base import HashLoss, batch_pairs, similarity
from .functional import balance_weights


class HashNetLoss(HashLoss):
    method = "hashnet"

    def __init__(
        self,
        nbits: int,
        alpha: Optional[float] = None,
        gamma: float = 0.005,
        power: float = 0.5,
        step_size: int = 200,
    ) -> None:
        super().__init__(nbits)
        self.alpha = float(10.0 / nbits if alpha is None else alpha)
        self.gamma, self.power, self.step_size = float(gamma), float(power), int(step_size)
        self.register_buffer("iteration", torch.zeros((), dtype=torch.int64))

    @property
    def beta(self) -> float:
        t = (int(self.iteration) // self.step_size) * self.step_size
        return (1.0 + self.gamma * t) ** self.power

    def compute(self, u, target, index):
        h = torch.tanh(self.beta * u)
        if self.training:
            self.iteration += 1
        _, yv, mask = batch_pairs(h, target)
        s = similarity(target.to(u.dtype), yv)
        theta = self.alpha * (h @ h.t())
        w = balance_weights(s, mask)
        return (w * (F.softplus(theta) - s * theta)).sum() / mask.sum().clamp(min=1.0)
