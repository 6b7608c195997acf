"""DAPH: Shen, Gao, Liu, Yang, Shen, "Deep Asymmetric Pairwise Hashing", ACM MM 2017.

Two streams encode the same images, u = tanh(F(x)) and z = tanh(G(x)), and an asymmetric
pairwise likelihood ties one stream to the other. With theta_ij = u_i^T z_j / 2 and s_ij = 1 when
samples i and j share a label, over a batch of m samples:

    L = mean_ij (log(1 + exp(theta_ij)) - s_ij theta_ij)
        + alpha * mean_ik ((u_ik - b_ik)^2 + (z_ik - h_ik)^2)
        + lambda * mean_kl ((U^T U / m - I)_kl^2 + (Z^T Z / m - I)_kl^2)
        + beta * mean_k ((U^T 1 / m)_k^2 + (Z^T 1 / m)_k^2)

with per-sample discrete codes B (for u) and H (for z) updated after each epoch in closed form
from the last outputs U, Z of every sample: ``B = sign(alpha U + gamma H)``, then
``H = sign(alpha Z + gamma B)`` (the minimisers of alpha ||B - U||^2 + gamma ||B - H||^2 and its
counterpart).

Inside one model and one optimiser (what our trainer runs), the second stream G is a head owned
by the loss on the first stream's raw outputs, z = tanh(W u + c) with W initialised to the
identity and c to 0, trained jointly with the network instead of in alternating epochs; the
codes are those of the first stream, sign(u). The quantization term starts after the first
B/H step (it has no target before), and that first step starts H from sign(Z). Defaults from
DeepHash-pytorch: alpha = 10, gamma = 10, lambda = 0.01, beta = 0.01. Every difference from the
paper and DeepHash-pytorch is listed in docs/methods.md.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .base import HashLoss, check_positive_int, sign_pm1, similarity


def independence(x: torch.Tensor) -> torch.Tensor:
    """``mean_kl ((X^T X / m - I)_kl^2)`` for a batch X of m rows."""
    eye = torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
    return ((x.t() @ x / x.shape[0] - eye) ** 2).mean()


def balance(x: torch.Tensor) -> torch.Tensor:
    """``mean_k (mean_i x_ik)^2``: zero when every bit averages zero over the batch."""
    return (x.mean(0) ** 2).mean()


def asymmetric_likelihood(u: torch.Tensor, z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over all ordered pairs (i, j) of ``softplus(theta) - s theta``, theta = u_i.z_j / 2."""
    theta = 0.5 * (u @ z.t())
    s = similarity(target.to(u.dtype), target.to(u.dtype))
    return (F.softplus(theta) - s * theta).mean()


class DAPHLoss(HashLoss):
    method = "daph"
    needs_index = True

    def __init__(self, nbits: int, num_train: int, alpha: float = 10.0, gamma: float = 10.0,
                 lambda_: float = 0.01, beta: float = 0.01) -> None:
        super().__init__(nbits)
        check_positive_int(num_train, "num_train")
        if min(alpha, gamma, lambda_, beta) < 0:
            raise ValueError(f"alpha, gamma, lambda_, beta: expected >= 0, got {alpha}, {gamma}, "
                             f"{lambda_}, {beta}")
        self.alpha, self.gamma, self.lambda_, self.beta = map(float, (alpha, gamma, lambda_, beta))
        self.second_stream = nn.Linear(nbits, nbits)
        with torch.no_grad():
            self.second_stream.weight.copy_(torch.eye(nbits))
            self.second_stream.bias.zero_()
        for name in ("U", "Z", "B", "H"):
            self.register_buffer(name, torch.zeros(num_train, nbits))
        self.register_buffer("seen", torch.zeros(num_train, dtype=torch.bool))
        self.register_buffer("coded", torch.zeros(num_train, dtype=torch.bool))  # B, H are set

    def streams(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(tanh(u), tanh(W u + c)): the outputs of the two streams."""
        return torch.tanh(u), torch.tanh(self.second_stream(u.to(self.second_stream.weight.dtype)))

    def compute(self, u, target, index):
        a, z = self.streams(u)
        z = z.to(a.dtype)
        if self.training:
            with torch.no_grad():
                self.U[index], self.Z[index] = a.detach().to(self.U.dtype), z.detach().to(self.Z.dtype)
                self.seen[index] = True
        loss = asymmetric_likelihood(a, z, target)
        coded = self.coded[index].to(a.dtype).unsqueeze(1)  # no target before the first step
        b, h = self.B[index].to(a.dtype), self.H[index].to(a.dtype)
        loss = loss + self.alpha * ((coded * ((a - b) ** 2 + (z - h) ** 2)).mean())
        loss = loss + self.lambda_ * (independence(a) + independence(z))
        return loss + self.beta * (balance(a) + balance(z))

    @torch.no_grad()
    def on_epoch_end(self, epoch: int) -> None:
        """B = sign(alpha U + gamma H), then H = sign(alpha Z + gamma B), for the samples seen
        (H starts from sign(Z) for a sample without codes yet)."""
        seen = self.seen
        h = torch.where(self.coded[seen].unsqueeze(1), self.H[seen], sign_pm1(self.Z[seen]))
        b = sign_pm1(self.alpha * self.U[seen] + self.gamma * h)
        self.B[seen] = b
        self.H[seen] = sign_pm1(self.alpha * self.Z[seen] + self.gamma * b)
        self.coded |= seen
