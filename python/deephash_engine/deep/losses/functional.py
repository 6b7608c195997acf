"""The terms several losses share, as plain functions of tensors (no state, no parameters).

- :func:`pairwise_likelihood`: the negative log-likelihood of pairwise labels (DPSH, DHN, DSDH,
  DBDH, LCDSH, and with a margin DFH), in closed form block by block against a memory bank; with
  its helpers :func:`sigmoid_softplus_` and :func:`log_sum`.
- :func:`contrastive` and :func:`squared_distances`: the DSH contrastive pair term (DSH, DSHSD).
- :func:`soft_similarity`, :func:`soft_pair_terms` and :func:`soft_pair_parts`: cosine label
  similarity and the split into hard (0 or 1) and soft pairs (ISDH, IDHN).
- :func:`label_centers`: a target code per sample from per-class codes, multi-label by the sign
  of the sum (CSQ, DPN).
- :func:`abs_quantization`: ``mean | |u| - 1 |`` (ISDH, IDHN, QSMIH); :func:`softsign`.
- :func:`balance_weights`: the class-balance weights of similar and dissimilar pairs (HashNet, DCH).
- :func:`cauchy_quantization`: DCH's Cauchy quantization term (DCH and the composable regulariser).
- :func:`classification_loss`: cross-entropy of a classifier on codes (GreedyHash, DLBHC).
- :func:`cosine_preserving_mse`: MSE between the cosine similarities of codes and of frozen
  features over pairs of a batch (the label-free BiHalf and unsupervised GreedyHash).

A loss file imports only :mod:`.base` and this module, so each stands alone.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch.nn import functional as F

from ... import _core
from .base import (PAIRINGS, BankProducts, bank_blocks, is_one_hot, masked_mean, sign_pm1, similarity,
                   with_gradient)


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
    margin: float = 0.0, products: Optional[BankProducts] = None,
) -> torch.Tensor:
    """Mean over pairs of ``softplus(theta) - s * theta``, ``theta = scale * u_i . v_j``, with
    ``s`` the label similarity of ``target`` rows and ``yv`` rows.

    ``margin`` m (DFH) moves theta to ``theta - m`` on similar pairs and ``theta + m`` on
    dissimilar ones, so a pair costs ``softplus(m - theta)`` or ``softplus(m + theta)``: similar
    pairs are pushed past +m, dissimilar ones past -m.

    When ``v`` carries no gradient (a memory bank) the value and the gradient with respect to
    ``u``, ``scale / count * (sigmoid(theta) - S) @ v``, are computed in closed form, one block of
    bank rows at a time (:func:`bank_blocks`): per block one product for theta, one pass that
    turns theta into ``sigmoid(theta)`` and sums ``softplus(theta)`` (:func:`sigmoid_softplus_`),
    and one product for ``sigmoid(theta) @ v``. With one-hot labels and no margin
    ``S @ v = target @ (yv^T v)``, so S itself is never formed; ``class_v``, when given, is that
    ``yv^T v`` with every ``yv`` row one-hot (a memory bank keeps it:
    :meth:`MemoryBank.one_hot_class_sums`). A margin needs S block by block.

    ``products``, the bank in AMX tile layouts (:func:`~.base.bank_pairing` gives it where it
    applies: one-hot labels, float32 on a CPU with AMX-BF16), takes the two products, the
    logistic pass and the sums over the bank in one call of the engine's core; ``v``, ``yv``
    and ``mask`` are then not read (None), ``class_v`` is needed and ``margin`` must be 0.
    """
    target = target.to(u.dtype)
    if products is not None:
        if class_v is None or margin:
            raise ValueError("products: needs class_v (one-hot labels) and margin 0, got class_v "
                             f"{'None' if class_v is None else tuple(class_v.shape)} and margin {margin}")
        with torch.no_grad():
            scaled = scale * u
            total, sigmoid_v, paired = products.logistic(scaled)
            count = float(u.shape[0] * paired) or 1.0
            s_v = target @ class_v.to(u.dtype)
            value = ((total - (scaled.double() * s_v.double()).sum()) / count).to(u.dtype)
            grad_u = (sigmoid_v - s_v) * (scale / count)
        return with_gradient(value, u, grad_u)
    if v.requires_grad or mask is not None:
        s = similarity(target, yv)
        theta = scale * (u @ v.t())
        if margin:
            theta = theta + margin * (1.0 - 2.0 * s)
        return masked_mean(F.softplus(theta) - s * theta, mask)
    with torch.no_grad():
        scaled = scale * u
        count = float(u.shape[0] * v.shape[0]) or 1.0
        if margin:
            one_hot = False
        elif class_v is not None:
            one_hot = is_one_hot(target)
            class_v = class_v.to(u.dtype)
        else:
            one_hot = is_one_hot(target) and is_one_hot(yv)
            if one_hot:
                class_v = yv.t() @ v
        s_v = torch.zeros_like(u)  # S @ v
        sigmoid_v = torch.zeros_like(u)  # sigmoid(theta) @ v
        total = u.new_zeros((), dtype=torch.float64)  # sum of softplus(theta), in double
        similar = u.new_zeros((), dtype=torch.float64)  # similar pairs (counted with a margin)
        for rows, theta, work in bank_blocks(scaled, v, scratch=1):
            if not one_hot:
                s = similarity(target, yv[rows])
                s_v.addmm_(s, v[rows])
                if margin:
                    theta.add_(s, alpha=-2.0 * margin).add_(margin)
                    similar += s.sum(dtype=torch.float64)
            total += sigmoid_softplus_(theta, work)
            sigmoid_v.addmm_(theta, v[rows])  # theta now holds sigmoid(theta)
        if one_hot:
            s_v = target @ class_v
        # sum of s * theta' = sum of s * theta - m * (similar pairs)
        value = ((total - (scaled.double() * s_v.double()).sum() + margin * similar) / count).to(u.dtype)
        grad_u = (sigmoid_v - s_v) * (scale / count)
    return with_gradient(value, u, grad_u)


def squared_distances(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(na, nb) squared Euclidean distances, clamped at 0 against rounding."""
    d = (u * u).sum(1, keepdim=True) + (v * v).sum(1).unsqueeze(0) - 2.0 * (u @ v.t())
    return d.clamp(min=0.0)


def contrastive(u: torch.Tensor, v: torch.Tensor, s: torch.Tensor, margin: float,
                mask: Optional[torch.Tensor]) -> torch.Tensor:
    """DSH's pair term, averaged over pairs: ``s/2 d + (1 - s)/2 max(m - d, 0)`` with
    ``d = ||u_i - v_j||^2`` and ``s`` the (na, nb) similarity."""
    d = squared_distances(u, v)
    pair = 0.5 * s * d + 0.5 * (1.0 - s) * (margin - d).clamp(min=0.0)
    return masked_mean(pair, mask)


def soft_similarity(target_a: torch.Tensor, target_b: torch.Tensor) -> torch.Tensor:
    """(na, nb) cosine similarity of label rows, in [0, 1] for 0/1 labels (0 for an empty row):
    1 for equal label sets, 0 for disjoint ones, a fraction for overlapping multi-label sets."""
    na = target_a.norm(dim=1, keepdim=True)
    nb = target_b.norm(dim=1, keepdim=True)
    return (target_a @ target_b.t()) / (na @ nb.t()).clamp(min=torch.finfo(target_a.dtype).tiny)


#: Similarities within this distance of 0 or 1 count as hard (ISDH's and IDHN's 0.01 / 0.99 split).
HARD_TOLERANCE = 0.01


def soft_pair_terms(u: torch.Tensor, v: torch.Tensor, target: torch.Tensor, yv: torch.Tensor,
                    scale: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(theta, s, hard, likelihood)`` for the soft-similarity losses: ``theta = scale u_i . v_j``,
    ``s`` the cosine label similarity, ``hard`` 1.0 where s is (within 0.01 of) 0 or 1, and the
    pairwise likelihood ``softplus(theta) - s theta`` of every pair (used on the hard ones)."""
    theta = scale * (u @ v.t())
    return (theta, *soft_pair_parts(theta, target, yv))


def soft_pair_parts(theta: torch.Tensor, target: torch.Tensor,
                    yv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(s, hard, likelihood)`` of :func:`soft_pair_terms` for given pair scores ``theta``
    (the bank path forms theta block by block)."""
    s = soft_similarity(target.to(theta.dtype), yv.to(theta.dtype))
    hard = ((s < HARD_TOLERANCE) | (s > 1.0 - HARD_TOLERANCE)).to(theta.dtype)
    return s, hard, F.softplus(theta) - s * theta


def softsign(u: torch.Tensor) -> torch.Tensor:
    """``u / (1 + |u|)``, in (-1, 1): the relaxation of ISDH and IDHN."""
    return u / (1.0 + u.abs())


def abs_quantization(u: torch.Tensor) -> torch.Tensor:
    """``mean | |u| - 1 |`` over every entry: the L1 pull of each output to +-1."""
    return (u.abs() - 1.0).abs().mean()


def label_centers(target: torch.Tensor, centers: torch.Tensor, fill: torch.Tensor) -> torch.Tensor:
    """A target code per sample from per-class codes ``centers`` (classes, nbits) in {-1, +1}:
    the class code for a one-hot row, the sign of the summed codes of a multi-hot row, with the
    entries that sum to 0 taken from ``fill`` (nbits,)."""
    summed = target.to(centers.dtype) @ centers
    return torch.where(summed == 0, fill.expand_as(summed), sign_pm1(summed))


def balance_weights(s: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """HashNet/DCH class-balance weights: |S|/|S1| on similar pairs, |S|/|S0| on dissimilar."""
    total = mask.sum()
    n_sim = (s * mask).sum()
    n_dis = total - n_sim
    w_sim = total / n_sim.clamp(min=1.0)
    w_dis = total / n_dis.clamp(min=1.0)
    return (s * w_sim + (1.0 - s) * w_dis) * mask


def cauchy_quantization(u: torch.Tensor, gamma: float) -> torch.Tensor:
    """Mean over samples of ``log(1 + d(|u|, 1)/gamma)``; zero iff every |u_ik| of a row is equal."""
    nbits = u.shape[1]
    cos = F.normalize(u.abs(), dim=1).sum(1) / (nbits ** 0.5)
    d = 0.5 * nbits * (1.0 - cos)
    return torch.log1p(d / gamma).mean()


def classification_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Softmax cross-entropy for one-hot targets, sigmoid cross-entropy for multi-hot ones."""
    if bool((target.sum(1) == 1).all()):
        return F.cross_entropy(logits, target.argmax(1))
    return F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype))


def cosine_preserving_mse(b: torch.Tensor, x: torch.Tensor, pairs: str = "halves") -> torch.Tensor:
    """Mean over pairs (i, j) of ``(cos(b_i, b_j) - cos(x_i, x_j))^2``.

    ``pairs="halves"`` pairs sample i with sample i + n // 2 for i < n // 2 (the research code of
    BiHalf and unsupervised GreedyHash); with an odd batch the last sample is in no pair.
    ``pairs="all"`` takes every pair i < j of the batch.
    """
    n = b.shape[0]
    if n < 2:
        raise ValueError(f"u: expected a batch of at least 2 samples (pairs), got {n}")
    if pairs == "halves":
        half = n // 2
        cos_b = F.cosine_similarity(b[:half], b[half:2 * half], dim=1)
        cos_x = F.cosine_similarity(x[:half], x[half:2 * half], dim=1)
    elif pairs == "all":
        i, j = torch.triu_indices(n, n, offset=1, device=b.device)
        nb, nx = F.normalize(b, dim=1), F.normalize(x, dim=1)
        cos_b, cos_x = (nb @ nb.t())[i, j], (nx @ nx.t())[i, j]
    else:
        raise ValueError(f"pairs: expected one of {PAIRINGS}, got {pairs!r}")
    return F.mse_loss(cos_b, cos_x.to(cos_b.dtype))
