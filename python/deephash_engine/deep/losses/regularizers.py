"""Regularisers that compose with any loss: ``loss.add_regularizer(BitBalance(), weight=0.1)``.

Each term maps the raw hash outputs ``u`` (batch, nbits) to a non-negative scalar that is exactly
zero on the configurations it rewards; :class:`OrthogonalityPenalty` looks at the hash layer's
weight instead of the outputs. Each is registered in :data:`REGULARIZERS` under the name a run
config uses (``regularizers: {bit_balance: 0.01}``).
"""

from __future__ import annotations

import torch
from torch import nn

from .base import sign_pm1
from .functional import cauchy_quantization

#: Name -> regulariser class. A class with ``takes_hash_layer = True`` is built from the model's
#: hash layer, the others without arguments.
REGULARIZERS: dict[str, type[nn.Module]] = {}


def register_regularizer(name: str):
    """Class decorator: register a regulariser under ``name``."""

    def register(cls: type[nn.Module]) -> type[nn.Module]:
        REGULARIZERS[name] = cls
        return cls

    return register


@register_regularizer("quantization")
class QuantizationPenalty(nn.Module):
    """``mean((u - sign u)^2)``: zero iff every output is exactly +1 or -1."""

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return ((u - sign_pm1(u).detach()) ** 2).mean()


@register_regularizer("cauchy_quantization")
class CauchyQuantization(nn.Module):
    """DCH's ``mean log(1 + d(|u|, 1)/gamma)``, ``d = K/2 (1 - cos)``: zero iff each row's |u|
    is constant across bits (a scaled binary vector)."""

    def __init__(self, gamma: float = 20.0) -> None:
        super().__init__()
        if gamma <= 0:
            raise ValueError(f"gamma: expected > 0, got {gamma}")
        self.gamma = float(gamma)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return cauchy_quantization(u, self.gamma)


@register_regularizer("bit_balance")
class BitBalance(nn.Module):
    """``mean_k (mean_i u_ik)^2``: zero iff every bit averages to 0 over the batch (fires half the
    time for binary outputs)."""

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return (u.mean(0) ** 2).mean()


@register_regularizer("decorrelation")
class BitDecorrelation(nn.Module):
    """Mean squared off-diagonal entry of the bits' covariance over the batch: zero iff the bits
    are pairwise uncorrelated. Needs a batch of at least two samples."""

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        n, k = u.shape
        if n < 2:
            raise ValueError(f"u: expected at least 2 rows for a covariance, got {n}")
        if k < 2:
            return u.sum() * 0.0
        centred = u - u.mean(0, keepdim=True)
        cov = centred.t() @ centred / (n - 1)
        off = cov - torch.diag(torch.diagonal(cov))
        return (off ** 2).sum() / (k * (k - 1))


@register_regularizer("orthogonality")
class OrthogonalityPenalty(nn.Module):
    """``||W W^T - I||_F^2 / K^2`` for the hash layer weight W (K x D): zero iff its rows are
    orthonormal. The layer is held by reference (not registered), so its parameters are not
    duplicated among the loss's own."""

    takes_hash_layer = True

    def __init__(self, layer: nn.Linear) -> None:
        super().__init__()
        if not isinstance(layer, nn.Linear):
            raise TypeError(f"layer: expected torch.nn.Linear, got {type(layer).__name__}")
        self._layer = [layer]

    def forward(self, u: torch.Tensor | None = None) -> torch.Tensor:
        w = self._layer[0].weight
        k = w.shape[0]
        gram = w @ w.t()
        eye = torch.eye(k, dtype=w.dtype, device=w.device)
        return ((gram - eye) ** 2).sum() / (k * k)
