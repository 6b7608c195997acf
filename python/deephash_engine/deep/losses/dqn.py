"""DQN: Cao, Long, Wang, Zhu, Wen, "Deep Quantization Network for Efficient Image Retrieval",
AAAI 2016.

Loss over the batch, with ``z = tanh(u)`` and ``s_ij = +1`` for similar pairs, ``-1`` otherwise:

    L = mean_{i != j} (s_ij - cos(z_i, z_j))^2  +  lambda * mean_i ||z_i - C b_i||^2

``C b_i`` is the product-quantization reconstruction of z_i: M codebooks of K codewords, each on
its own d/M slice. The network step fixes C and b; the codebook step (at each epoch end, k-means
rounds over the epoch's embeddings) refits C and the codes: the paper's alternating scheme.
Codes are the M codeword indices; search is by the asymmetric inner product ``<z_q, C b_x>``
(FAISS IndexPQ with the learned codebooks), as thulab's evaluation ranks (``get_mAPs_AQD``).

Defaults: M = nbits / 8 subspaces of K = 256 codewords (a code of exactly nbits bits, so runs
compare with binary methods at equal code length; thulab uses 4 x 256 on a 300-d layer),
``quant_weight = 1e-4`` (thulab's ``cq_lambda``, on the same term: a mean over the batch of the
squared error summed over dimensions), 5 k-means rounds per epoch. Beside thulab's own graph
(benchmarks/thulab_peer.py) the former defaults, a weight of 0.05 and squared-Euclidean ADC,
trailed it by up to 0.036 mAP on fashion-mnist-mini (docs/benchmarks.md).
"""

from __future__ import annotations

from typing import Optional

import torch

from .base import similarity
from .quantized import QuantizationLoss


def cosine_pair_loss(z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``mean_{i != j} (s_ij - cos(z_i, z_j))^2`` with s in {-1, +1}."""
    unit = z / z.norm(dim=1, keepdim=True).clamp(min=1e-12)
    cos = unit @ unit.t()
    s = 2.0 * similarity(target, target).to(z.dtype) - 1.0
    n = z.shape[0]
    off = 1.0 - torch.eye(n, dtype=z.dtype, device=z.device)
    return (((s - cos) ** 2) * off).sum() / max(n * (n - 1), 1)


class DQNLoss(QuantizationLoss):
    method = "dqn"
    metric = "ip"

    def __init__(self, nbits: int, num_train: int, subspaces=None, codewords: int = 256,
                 quant_weight: float = 1e-4, codebook_iters: int = 5, seed: int = 0,
                 embed_dim: Optional[int] = None) -> None:
        super().__init__(nbits, num_train, subspaces, codewords, quant_weight, codebook_iters, seed=seed,
                         embed_dim=embed_dim)

    def similarity_loss(self, z, target):
        return cosine_pair_loss(z, target)
