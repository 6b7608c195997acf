"""DSH: Liu, Wang, Shan, Chen, "Deep Supervised Hashing for Fast Image Retrieval", CVPR 2016.

Loss per pair: ``s/2 * ||u_i - u_j||^2 + (1 - s)/2 * max(m - ||u_i - u_j||^2, 0)``, averaged over
pairs, plus ``alpha * mean_i sum_k | |u_ik| - 1 |`` (an L1 pull of each output towards +-1).
Defaults from the official Caffe code: margin ``m = 2 * nbits``, ``alpha = 0.01``, pairs within
the mini-batch. ``memory_bank=True`` pairs the batch with the latest outputs of all training
samples through ``||a - b||^2 = |a|^2 + |b|^2 - 2 a.b``: a (batch, n) matrix, never the
(batch, n, nbits) difference tensor; on CPUs with AMX-BF16 and one-hot labels the whole bank step
is one call of the core (``MemoryBank.products``).
"""

from __future__ import annotations

from typing import Optional

import torch

from ... import _core
from .base import PairwiseLoss, bank_blocks, similarity, with_gradient
from .functional import contrastive


class DSHLoss(PairwiseLoss):
    method = "dsh"

    def __init__(
        self,
        nbits: int,
        margin: Optional[float] = None,
        alpha: float = 0.01,
        memory_bank: bool = False,
        num_train: Optional[int] = None,
        num_classes: Optional[int] = None,
    ) -> None:
        super().__init__(nbits, memory_bank, num_train, num_classes)
        self.margin = float(2 * nbits if margin is None else margin)
        self.alpha = float(alpha)

    def compute(self, u, target, index):
        regular = (u.abs() - 1.0).abs().sum(1).mean()
        v, yv, mask, _, products = self.pairing(u, target, index)
        if products is not None:  # the core's AMX call: products, pass and sums in one
            with torch.no_grad():
                u_norm = (u * u).sum(1)
                total, weight_v, weight_sum, paired = products.contrastive(u, u_norm, target, self.margin)
                count = float(u.shape[0] * paired) or 1.0
                value = torch.as_tensor(0.5 * total / count, dtype=u.dtype)
                grad_u = (weight_sum.unsqueeze(1) * u - weight_v) / count
            return with_gradient(value, u, grad_u) + self.alpha * regular
        if v.requires_grad or mask is not None:
            s = similarity(target.to(u.dtype), yv)
            return contrastive(u, v, s, self.margin, mask) + self.alpha * regular
        with torch.no_grad():  # bank: value and gradient in closed form, block by block
            value, grad_u = self._bank_terms(u, target.to(u.dtype), v, yv)
        return with_gradient(value, u, grad_u) + self.alpha * regular

    def _bank_terms(self, u, target, v, yv):
        """Mean pair term and its gradient with respect to u against bank rows v (no grad).

        Per block, ``d = |u|^2 + |v|^2 - 2 u.v`` from one product; the value is
        ``s d + (1 - s) max(m - d, 0)`` summed. With ``a_ij = (1 - s_ij) [d_ij < m]`` (dissimilar
        pairs inside the margin) the gradient of pair (i, j) is ``(s_ij - a_ij) (u_i - v_j)``,
        so it is ``((S - A) 1) u - (S - A) v``, divided by the pair count. On the CPU in float32
        the elementwise part is one pass of the engine's kernel (``_core.contrastive_pass_``);
        elsewhere it is done in torch passes.
        """
        count = float(u.shape[0] * v.shape[0]) or 1.0
        weight_v = torch.zeros_like(u)  # (S - A) @ v
        weight_sum = u.new_zeros(u.shape[0])  # (S - A) @ 1
        fused = u.device.type == "cpu" and u.dtype == torch.float32
        total = 0.0 if fused else u.new_zeros((), dtype=torch.float64)  # block sums in double
        u_norm = (u * u).sum(1)
        v_norm = (v * v).sum(1)
        for rows, r, s in bank_blocks(2.0 * u, v, scratch=1):
            vb = v[rows]
            torch.mm(target, yv[rows].t(), out=s).gt_(0.0)  # similarity, 1.0 or 0.0
            if fused:
                total += _core.contrastive_pass_(r.numpy(), s.numpy(), u_norm.numpy(),
                                                 v_norm[rows].numpy(), self.margin,
                                                 weight_sum.numpy())
                weight = r  # r now holds the pair weights s - a
            else:
                total += self._block_terms(r, s, u_norm, v_norm[rows], weight_sum)
                weight = s
            weight_v.addmm_(weight, vb)
        value = torch.as_tensor(0.5 * total / count, dtype=u.dtype, device=u.device)
        grad_u = (weight_sum.unsqueeze(1) * u - weight_v) / count
        return value, grad_u

    def _block_terms(self, r, s, u_norm, v_norm, weight_sum):
        """The torch passes of one block: returns its value sum (float64), leaves the pair
        weights ``s - a`` in ``s`` and adds their row sums to ``weight_sum``."""
        r.sub_(u_norm.unsqueeze(1) - self.margin).sub_(v_norm).clamp_(max=self.margin)  # m - d
        flat_s, flat_r = s.view(-1), r.view(-1)
        total = self.margin * flat_s.sum(dtype=torch.float64) - torch.dot(flat_s, flat_r)  # s d
        r.clamp_(min=0.0)
        total += flat_r.sum(dtype=torch.float64) - torch.dot(flat_s, flat_r)  # (1 - s) max(m - d, 0)
        active = r.gt_(0.0).sub_(s).clamp_(min=0.0)  # (1 - s) [d < m]
        weight = s.sub_(active)
        weight_sum += weight.sum(1)
        return total
