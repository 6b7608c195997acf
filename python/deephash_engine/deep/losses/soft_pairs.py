"""The helper base of the soft-similarity losses (ISDH, IDHN): no method of its own.

Both relax the outputs by softsign ``h = u / (1 + |u|)``, score pairs by
``theta = beta / nbits * <h_i, h_j>``, split the pairs into hard ones (label cosine 0 or 1) and
soft ones (a fraction), and add ``lambda_q * mean | |h| - 1 |``; they differ in the pair term
(:meth:`SoftPairLoss.pair_term`) and the default of ``gamma``.
"""

from __future__ import annotations

from typing import Optional

import torch

from .base import PairwiseLoss, bank_blocks, masked_mean, with_gradient
from .functional import abs_quantization, soft_pair_parts, soft_pair_terms, softsign


class SoftPairLoss(PairwiseLoss):
    """Pair scores ``theta = beta / nbits * <h_i, h_j>``, a weight ``gamma`` (``None``: the
    subclass's ``default_gamma``) and the weight ``lambda_q`` of the L1 quantization term.
    In-batch pairs include i == j, as the authors' code averages over all n^2 pairs."""

    pairs_with_self = True
    default_gamma: float = 1.0

    def __init__(
        self,
        nbits: int,
        beta: float = 5.0,
        gamma: Optional[float] = None,
        lambda_q: float = 0.1,
        memory_bank: bool = False,
        num_train: Optional[int] = None,
        num_classes: Optional[int] = None,
    ) -> None:
        super().__init__(nbits, memory_bank, num_train, num_classes)
        gamma = self.default_gamma if gamma is None else gamma
        for name, value in (("beta", beta), ("gamma", gamma), ("lambda_q", lambda_q)):
            if value < 0:
                raise ValueError(f"{name}: expected >= 0, got {value}")
        self.beta, self.gamma, self.lambda_q = float(beta), float(gamma), float(lambda_q)

    def pair_term(self, theta: torch.Tensor, s: torch.Tensor, hard: torch.Tensor,
                  likelihood: torch.Tensor) -> torch.Tensor:
        """The (batch, others) matrix of pair losses; see :func:`.functional.soft_pair_terms`."""
        raise NotImplementedError

    def pair_slope(self, theta: torch.Tensor, s: torch.Tensor, hard: torch.Tensor,
                   sigmoid: torch.Tensor) -> torch.Tensor:
        """d pair_term / d theta, elementwise (``sigmoid`` is sigmoid(theta)); for the bank path."""
        raise NotImplementedError

    def compute(self, u, target, index):
        h = softsign(u)
        v, yv, mask = self.others(h, target, index)
        if self.bank is not None:  # bank rows carry no gradient, and every pair counts
            pair = self._bank_pairs(h, v, target, yv)
        else:
            theta, s, hard, likelihood = soft_pair_terms(h, v, target, yv, self.beta / self.nbits)
            pair = masked_mean(self.pair_term(theta, s, hard, likelihood), mask)
        return pair + self.lambda_q * abs_quantization(h)

    def _bank_pairs(self, h, v, target, yv):
        """The mean pair term against a bank, value and gradient in closed form one block of
        bank rows at a time (no (batch, n) matrix, no autograd through the pairs)."""
        scale = self.beta / self.nbits
        count = float(h.shape[0] * v.shape[0]) or 1.0
        with torch.no_grad():
            total = h.new_zeros((), dtype=torch.float64)
            grad = torch.zeros_like(h)
            for rows, theta in bank_blocks(scale * h, v):
                s, hard, likelihood = soft_pair_parts(theta, target, yv[rows])
                total += self.pair_term(theta, s, hard, likelihood).sum(dtype=torch.float64)
                grad.addmm_(self.pair_slope(theta, s, hard, torch.sigmoid(theta)), v[rows])
            value = (total / count).to(h.dtype)
        return with_gradient(value, h, grad * (scale / count))
