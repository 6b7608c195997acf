"""CSQ: Yuan, Wang, Zhang, Yang, Chen, Jin, "Central Similarity Quantization for Efficient Image
and Video Retrieval", CVPR 2020.

Each class gets a hash centre in {-1, +1}^K: the rows of a Sylvester Hadamard matrix and their
negations when K is a power of two and 2K >= classes, else seeded Bernoulli(0.5) vectors (as the
paper prescribes). A multi-label sample's centre is the sign of the sum of its classes' centres,
zeros filled from a seeded random centre. With ``h = tanh(u)`` the loss is the binary
cross-entropy between ``(h + 1)/2`` and ``(c + 1)/2``, averaged over bits and samples, plus
``lambda_q * mean((|h| - 1)^2)``. Default ``lambda_q = 1e-4`` (the paper's AlexNet setting).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from .base import HashLoss, check_positive_int
from .functional import label_centers


def hadamard(n: int) -> torch.Tensor:
    """Sylvester Hadamard matrix of order n (a power of two), entries +-1."""
    if n < 1 or n & (n - 1):
        raise ValueError(f"n: expected a power of two, got {n}")
    h = torch.ones(1, 1)
    while h.shape[0] < n:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    return h


def hash_centers(num_classes: int, nbits: int, seed: int = 0) -> torch.Tensor:
    """(num_classes, nbits) centres in {-1, +1}: Hadamard when possible, else seeded Bernoulli."""
    check_positive_int(num_classes, "num_classes")
    check_positive_int(nbits, "nbits")
    if nbits & (nbits - 1) == 0 and num_classes <= 2 * nbits:
        h = hadamard(nbits)
        return torch.cat([h, -h], 0)[:num_classes].clone()
    gen = torch.Generator().manual_seed(seed)
    return torch.where(torch.rand(num_classes, nbits, generator=gen) < 0.5, -1.0, 1.0)


class CSQLoss(HashLoss):
    method = "csq"

    def __init__(
        self, nbits: int, num_classes: int, lambda_q: float = 1e-4, seed: int = 0
    ) -> None:
        super().__init__(nbits)
        self.lambda_q = float(lambda_q)
        self.register_buffer("centers", hash_centers(num_classes, nbits, seed))
        gen = torch.Generator().manual_seed(seed + 1)
        fill = torch.where(torch.rand(nbits, generator=gen) < 0.5, -1.0, 1.0)
        self.register_buffer("tie_fill", fill)

    def sample_centers(self, target: torch.Tensor) -> torch.Tensor:
        """Centre of each sample: its class centre, or sign of the sum for several labels."""
        return label_centers(target, self.centers, self.tie_fill)

    def compute(self, u, target, index):
        if target.shape[1] != self.centers.shape[0]:
            raise ValueError(
                f"target: expected {self.centers.shape[0]} classes, got {target.shape[1]}"
            )
        h = torch.tanh(u)
        c = self.sample_centers(target).to(u.dtype)
        center = F.binary_cross_entropy((h + 1.0) / 2.0, (c + 1.0) / 2.0)
        quantization = ((h.abs() - 1.0) ** 2).mean()
        return center + self.lambda_q * quantization
