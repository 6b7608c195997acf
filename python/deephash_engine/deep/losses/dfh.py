"""DFH: Li, Pei, Zha, van Gemert, "Push for Quantization: Deep Fisher Hashing", BMVC 2019.

Three blocks, updated in turn on every training batch (as the authors' code and
DeepHash-pytorch do):

1. **B step**: ``b_i = sign(mu * C y_i + u_i)``: the code of a sample is its output pushed
   towards the centre(s) ``C`` (nbits x classes, in {-1, +1}) of its class(es).
2. **Centre step**: the relaxed centres V (nbits x classes) take 200 gradient steps on the batch
   (Y = labels as columns, B = codes as columns, T = 2I - 11^T)

       J(V) = mean (V Y - B)^2 + vul * mean (V^T V - nbits T)^2 + nta * mean (V - sign V)^2

   (within-class spread, Fisher-style separation of the centres, quantization), with step size
   0.03, 0.003 after step 149 and 0.0003 after step 179; then ``C = sign(V)``.
3. **Network step**: the returned loss, a pairwise likelihood with margin ``m`` against a memory
   bank (``softplus(m - theta)`` for similar pairs, ``softplus(m + theta)`` for dissimilar ones,
   ``theta = <u_i, u_j> / 2``) plus ``eta * mean (b - u)^2``.

The centre step is computed exactly, but cheaply: the gradient of J is written out,

    dJ/dV = 2/(K n) (V G - P) + vul * 4/C^2 V (V^T V - K T) + nta * 2/(K C) (V - sign V)

with ``G = Y Y^T`` (classes x classes) and ``P = B Y^T`` (nbits x classes) formed once per batch,
so each of the 200 steps costs O(K C^2) whatever the batch size, with no autograd graph. The
iterates are the ones plain gradient descent through autograd produces (a test checks this);
``sign`` has zero gradient there too, and ``sign(0) = 0`` inside J as in the reference.

Defaults (DeepHash-pytorch's recipe): ``m = 3``, ``mu = 0.1``, ``vul = 1``, ``nta = 1``,
``eta = 0.5``, memory bank on. The centres start at zero, so the first batch's codes are
``sign(u)``.
"""

from __future__ import annotations

from typing import Optional

import torch

from .base import PairwiseLoss, check_positive_int, sign_pm1
from .functional import pairwise_likelihood

#: The centre step's schedule: (first step, step size) pairs, as in the reference code.
CENTRE_SCHEDULE = ((0, 0.03), (149, 0.003), (179, 0.0003))


def dfh_centre_objective(V, Y, B, vul: float, nta: float) -> torch.Tensor:
    """J(V) of the centre step; ``Y`` (classes, n) labels and ``B`` (nbits, n) codes as columns."""
    K, C = V.shape
    T = K * (2.0 * torch.eye(C, dtype=V.dtype, device=V.device) - 1.0)
    intra = ((V @ Y - B) ** 2).mean()
    inter = ((V.t() @ V - T) ** 2).mean()
    quant = ((V - torch.sign(V)) ** 2).mean()
    return intra + vul * inter + nta * quant


@torch.no_grad()
def dfh_centre_step(V, Y, B, vul: float, nta: float, steps: int = 200) -> torch.Tensor:
    """``steps`` gradient steps on :func:`dfh_centre_objective` from V; returns the new V.

    Uses the closed-form gradient with ``G = Y Y^T`` and ``P = B Y^T`` (see the module text)."""
    K, C = V.shape
    n = Y.shape[1]
    T = K * (2.0 * torch.eye(C, dtype=V.dtype, device=V.device) - 1.0)
    G = Y @ Y.t()
    P = B @ Y.t()
    V = V.clone()
    rate = CENTRE_SCHEDULE[0][1]
    for step in range(steps):
        for first, value in CENTRE_SCHEDULE:
            if step == first:
                rate = value
        grad = (2.0 / (K * n)) * (V @ G - P)
        grad += (vul * 4.0 / (C * C)) * (V @ (V.t() @ V - T))
        grad += (nta * 2.0 / (K * C)) * (V - torch.sign(V))
        V -= rate * grad
    return V


class DFHLoss(PairwiseLoss):
    method = "dfh"

    def __init__(
        self,
        nbits: int,
        num_train: Optional[int] = None,
        num_classes: Optional[int] = None,
        margin: float = 3.0,
        mu: float = 0.1,
        vul: float = 1.0,
        nta: float = 1.0,
        eta: float = 0.5,
        centre_steps: int = 200,
        memory_bank: bool = True,
    ) -> None:
        super().__init__(nbits, memory_bank, num_train, num_classes)
        check_positive_int(num_classes, "num_classes")
        for name, value in (("margin", margin), ("mu", mu), ("vul", vul), ("nta", nta), ("eta", eta)):
            if value < 0:
                raise ValueError(f"{name}: expected >= 0, got {value}")
        self.margin, self.mu, self.eta = float(margin), float(mu), float(eta)
        self.vul, self.nta = float(vul), float(nta)
        self.centre_steps = check_positive_int(centre_steps, "centre_steps")
        self.register_buffer("V", torch.zeros(nbits, num_classes))  # relaxed centres
        self.register_buffer("C", torch.zeros(nbits, num_classes))  # centres; 0 before the first fit

    def codes(self, u: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The B step: ``sign(mu * C y + u)`` per sample, (batch, nbits), no gradient."""
        return sign_pm1(self.mu * (target.to(u.dtype) @ self.C.t().to(u.dtype)) + u).detach()

    def compute(self, u, target, index):
        if target.shape[1] != self.V.shape[1]:
            raise ValueError(f"target: expected {self.V.shape[1]} classes, got {target.shape[1]}")
        b = self.codes(u, target)
        if self.training:
            V = dfh_centre_step(self.V.double(), target.t().double(), b.t().double(),
                                self.vul, self.nta, self.centre_steps)
            self.V.copy_(V)
            self.C.copy_(sign_pm1(V))
        v, yv, mask = self.others(u, target, index)
        likelihood = pairwise_likelihood(u, v, target, yv, mask, margin=self.margin)
        return likelihood + self.eta * ((b - u) ** 2).mean()
