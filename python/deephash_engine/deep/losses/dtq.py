"""DTQ: Liu, Cao, Long, Wang, Wang, "Deep Triplet Quantization", ACM MM 2018.

Loss over triplets (anchor a, positive p sharing a label, negative n sharing none), with
``z = tanh(u)`` and ``d`` the squared Euclidean distance (thulab's ``euclidean2``):

    L = mean_{(a, p, n) in T} max(0, d(z_a, z_p) - d(z_a, z_n) + margin)
        + lambda * mean_i ||z_i - C b_i||^2

with product-quantization codebooks C (M subspaces x K codewords) learned alternately, as for
DQN. Triplet selection ("Group Hard" in the paper): the training set is split at random into
groups and triplets are mined inside each group from the current embeddings; here each shuffled
batch is a group (a fresh random partition every epoch). ``select`` follows thulab's options:

- ``"margin"``: for each anchor-positive pair one negative drawn at random among those inside
  the margin, ``d(a, n) - d(a, p) < margin`` (the paper's hard triplets; pairs with none are
  dropped);
- ``"all"``: for each anchor-positive pair one negative drawn at random among all negatives;
- ``"hard"``: per anchor, its farthest positive and its nearest negative.

Defaults: ``select = "margin"``, ``margin = nbits / 4`` (thulab: 30 on 300 unbounded outputs; here
the outputs are tanh-bounded, d ranges over [0, 4 nbits]), M = nbits / 8 subspaces of 256
codewords, ``quant_weight = 0.05``.
"""

from __future__ import annotations

from typing import Optional

import torch

from .base import similarity
from .quantized import QuantizationLoss

SELECTIONS = ("margin", "all", "hard")


def squared_distances(z: torch.Tensor) -> torch.Tensor:
    """(n, n) squared Euclidean distances between rows (exact zeros on the diagonal)."""
    diff = z[:, None, :] - z[None, :, :]
    return (diff * diff).sum(2)


def select_triplets(dist: torch.Tensor, sim: torch.Tensor, select: str, margin: float,
                    generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """int64 (t, 3) triplets (anchor, positive, negative) of one group, chosen as the module
    doc says from the (detached) distances ``dist`` and the 0/1 similarity ``sim``."""
    n = dist.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=dist.device)
    pos, neg = (sim > 0) & ~eye, sim == 0
    if select == "hard":
        anchors = torch.nonzero(pos.any(1) & neg.any(1)).flatten()
        far_pos = torch.where(pos, dist, torch.full_like(dist, -float("inf"))).argmax(1)
        near_neg = torch.where(neg, dist, torch.full_like(dist, float("inf"))).argmin(1)
        return torch.stack([anchors, far_pos[anchors], near_neg[anchors]], 1)
    a, p = torch.nonzero(pos, as_tuple=True)
    allowed = neg[a].clone()
    if select == "margin":
        allowed &= (dist[a] - dist[a, p][:, None]) < margin
    keep = allowed.any(1)
    a, p, allowed = a[keep], p[keep], allowed[keep]
    if a.numel() == 0:
        return torch.zeros(0, 3, dtype=torch.int64, device=dist.device)
    noise = torch.rand(allowed.shape, generator=generator, device="cpu").to(dist.device)
    n_pick = torch.where(allowed, noise, torch.full_like(noise, -1.0)).argmax(1)
    return torch.stack([a, p, n_pick], 1)


def triplet_margin_loss(z: torch.Tensor, triplets: torch.Tensor, margin: float) -> torch.Tensor:
    """``mean max(0, d(a, p) - d(a, n) + margin)`` over the triplets (0 when there are none)."""
    if triplets.shape[0] == 0:
        return z.sum() * 0.0
    a, p, n = z[triplets[:, 0]], z[triplets[:, 1]], z[triplets[:, 2]]
    d_ap = ((a - p) ** 2).sum(1)
    d_an = ((a - n) ** 2).sum(1)
    return torch.relu(d_ap - d_an + margin).mean()


class DTQLoss(QuantizationLoss):
    method = "dtq"

    def __init__(self, nbits: int, num_train: int, margin: Optional[float] = None, select: str = "margin",
                 subspaces=None, codewords: int = 256, quant_weight: float = 0.05,
                 codebook_iters: int = 5, seed: int = 0, embed_dim: Optional[int] = None) -> None:
        super().__init__(nbits, num_train, subspaces, codewords, quant_weight, codebook_iters, seed=seed,
                         embed_dim=embed_dim)
        if select not in SELECTIONS:
            raise ValueError(f"select: expected one of {SELECTIONS}, got {select!r}")
        self.margin = self.nbits / 4.0 if margin is None else float(margin)  # a quarter of the embedding width
        if self.margin < 0:
            raise ValueError(f"margin: expected >= 0, got {margin}")
        self.select = select

    def similarity_loss(self, z, target):
        with torch.no_grad():
            dist = squared_distances(z.detach())
            triplets = select_triplets(dist, similarity(target, target), self.select, self.margin)
        return triplet_margin_loss(z, triplets, self.margin)
