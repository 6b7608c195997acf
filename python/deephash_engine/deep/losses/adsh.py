"""ADSH: Jiang, Li, "Asymmetric Deep Supervised Hashing", AAAI 2018.

The network encodes queries only; the database (here: the training set, Gamma, n samples) gets
discrete codes V in {-1, +1}^{n x c} learned directly. With u_i = tanh(output_i) for the
sampled training points Omega, S_ij = +1 when i and j share a label and -1 otherwise:

    J(Theta, V) = sum_{i in Omega} sum_{j in Gamma} (u_i^T v_j - c S_ij)^2
                  + gamma sum_{i in Omega} ||v_i - u_i||^2

- **Network step** (the returned loss, V fixed): J restricted to the batch, divided by
  (batch * n) as the authors' code does. With one-hot labels the sum over j is
  ``u_i^T (V^T V) u_i - 2 c u_i^T (S V)_i + c^2 sum_j S_ij^2`` with
  ``(S V)_i = 2 (Y^T V)_{y_i} - 1^T V``, O(c^2) per sample instead of O(n c) (V^T V and Y^T V
  are computed once per V); with multi-hot labels S V is accumulated over blocks.
- **V step** (:meth:`ADSHLoss.on_epoch_end`, the network fixed): with U the tanh outputs of the
  samples seen in the epoch (Omega), Ubar (n x c) equal to U on Omega and 0 elsewhere, and
  ``Q = -2 c S^T U - 2 gamma Ubar``, each bit k in turn is set to its exact minimiser given the
  other bits, ``V_{:,k} = -sign(2 V_{:,not k} U_{:,not k}^T U_{:,k} + Q_{:,k})``
  (:func:`adsh_v_step`).

The authors' code samples m = 2000 database points per outer iteration (50 of them) and trains
3 epochs on them before each V step. By default a trainer epoch is one pass over the whole
training set, so Omega is the training set and a V step follows every epoch. With
``sample_size=m`` (and ``inner_epochs``, T_in) a trainer epoch is the paper's outer iteration:
Omega is m training samples drawn without replacement (:meth:`ADSHLoss.epoch_samples`, seeded
by the run's seed and the epoch), the network makes ``inner_epochs`` shuffled passes over them,
then the V step runs over Omega; ``sample_size=2000, inner_epochs=3`` with 50 epochs is the
authors' schedule. V starts at zero, as in the
authors' code: the first epoch only shrinks the outputs, the first V step then gives the codes
their structure. ``soft_similarity=True`` sets S_ij = -r for dissimilar pairs, r the ratio of
similar to dissimilar pairs in the training set: the authors' code's "soft constraint", which
DeepHash-pytorch copies, and our default (``False`` gives the paper's +-1; on the
fashion-mnist-mini protocol at 16 bits, 3 epochs, mAP@all 0.742 against 0.292).

Evaluation (``eval_codes``): ``"discrete"`` (default, the paper's way) gives database items
that are training samples their code in V (:meth:`database_codes`); ``"network"`` encodes them
with the network, as DeepHash-pytorch evaluates. Defaults: ``gamma = 200`` (paper and
DeepHash-pytorch),
``sample_size=None`` (every training sample each epoch), ``inner_epochs=1``.
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from .base import BANK_BLOCK, HashLoss, check_positive_int, is_one_hot, sign_pm1, similarity

EVAL_CODES = ("discrete", "network")


def signed_similarity(target: torch.Tensor, yv: torch.Tensor, dissimilar: float = 1.0) -> torch.Tensor:
    """S: +1 where rows of ``target`` and ``yv`` share a label, ``-dissimilar`` elsewhere."""
    return (1.0 + dissimilar) * similarity(target, yv) - dissimilar


def signed_similarity_times(target: torch.Tensor, yv: torch.Tensor, v: torch.Tensor,
                            class_v=None, dissimilar: float = 1.0) -> torch.Tensor:
    """``S @ v`` for S = :func:`signed_similarity`; with one-hot labels through the class sums
    ``yv^T v`` (``class_v`` when given), else block by block over ``v`` (never a
    (len(target), len(v)) matrix)."""
    total = v.sum(0, keepdim=True)
    if is_one_hot(target) and (class_v is not None or is_one_hot(yv)):
        class_v = yv.t() @ v if class_v is None else class_v
        return (1.0 + dissimilar) * (target @ class_v) - dissimilar * total
    out = torch.zeros(target.shape[0], v.shape[1], dtype=v.dtype, device=v.device)
    for start in range(0, v.shape[0], BANK_BLOCK):
        rows = slice(start, start + BANK_BLOCK)
        out += similarity(target, yv[rows]) @ v[rows]
    return (1.0 + dissimilar) * out - dissimilar * total


def similar_counts(target: torch.Tensor, yv: torch.Tensor) -> torch.Tensor:
    """For each row of ``target``, how many rows of ``yv`` share a label with it."""
    if is_one_hot(target) and is_one_hot(yv):
        return target @ yv.sum(0)
    return sum(similarity(target, yv[start:start + BANK_BLOCK]).sum(1)
               for start in range(0, yv.shape[0], BANK_BLOCK))


def similar_pair_ratio(Y: torch.Tensor) -> float:
    """(number of similar ordered pairs) / (number of dissimilar ones) among the rows of Y,
    self-pairs included; inf when no pair is dissimilar."""
    Y = Y.double()
    similar = float(similar_counts(Y, Y).sum())
    dissimilar = float(Y.shape[0]) ** 2 - similar
    return similar / dissimilar if dissimilar > 0 else float("inf")


def adsh_objective(U, V, Y_omega, Y, omega, nbits: int, gamma: float,
                   dissimilar: float = 1.0) -> torch.Tensor:
    """J(V) summed over every pair (float64; for tests and diagnostics): ``U`` holds the outputs
    of the samples ``omega`` (positions in V), ``Y_omega`` their labels, ``Y`` all labels."""
    S = signed_similarity(Y_omega.double(), Y.double(), dissimilar)
    square = ((U.double() @ V.double().t() - nbits * S) ** 2).sum()
    return square + gamma * ((V.double()[omega] - U.double()) ** 2).sum()


def adsh_v_step(V, U, Y_omega, Y, omega, nbits: int, gamma: float,
                dissimilar: float = 1.0) -> torch.Tensor:
    """One pass of the closed-form bit-wise V update; returns the new V (+-1, V's dtype).

    Each bit is the exact minimiser of J given the other bits (J separates over database rows
    and, given the other bits, over the entries of a column). Runs in float64.
    """
    V64, U64 = V.double(), U.double()
    Q = -2.0 * nbits * signed_similarity_times(Y.double(), Y_omega.double(), U64, dissimilar=dissimilar)
    Q[omega] -= 2.0 * gamma * U64
    gram = U64.t() @ U64
    gram.fill_diagonal_(0.0)  # the sum over the other bits only
    Vt = V64.t().contiguous()  # bits as contiguous rows
    Qt = Q.t().contiguous()
    for k in range(Vt.shape[0]):
        Vt[k] = sign_pm1(-(2.0 * (gram[k] @ Vt) + Qt[k]))
    return Vt.t().to(V.dtype).contiguous()


class ADSHLoss(HashLoss):
    method = "adsh"
    needs_index = True
    needs_train_targets = True

    def __init__(self, nbits: int, num_train: int, num_classes: int, gamma: float = 200.0,
                 eval_codes: str = "discrete", soft_similarity: bool = True,
                 sample_size: Optional[int] = None, inner_epochs: int = 1) -> None:
        super().__init__(nbits)
        check_positive_int(num_train, "num_train")
        check_positive_int(num_classes, "num_classes")
        self.sample_size = None if sample_size is None else check_positive_int(sample_size, "sample_size")
        self.inner_epochs = check_positive_int(inner_epochs, "inner_epochs")
        if gamma < 0:
            raise ValueError(f"gamma: expected >= 0, got {gamma}")
        if eval_codes not in EVAL_CODES:
            raise ValueError(f"eval_codes: expected one of {EVAL_CODES}, got {eval_codes!r}")
        self.gamma, self.eval_codes, self.soft_similarity = float(gamma), eval_codes, bool(soft_similarity)
        self.register_buffer("V", torch.zeros(num_train, nbits))  # database codes
        self.register_buffer("Y", torch.zeros(num_train, num_classes))  # database labels
        self.register_buffer("U", torch.zeros(num_train, nbits))  # tanh outputs of this epoch
        self.register_buffer("fresh", torch.zeros(num_train, dtype=torch.bool))  # seen this epoch
        self.register_buffer("ready", torch.zeros((), dtype=torch.bool))  # Y is set
        self.register_buffer("steps", torch.zeros((), dtype=torch.int64))  # V steps done
        # the weight of a dissimilar pair (S_ij = -dissimilar): 1, or r with soft_similarity
        self.register_buffer("dissimilar", torch.ones((), dtype=torch.float64))
        self._summary = None  # (V^T V, Y^T V or None, dtype) while V is unchanged
        self.register_load_state_dict_post_hook(lambda module, _keys: module._forget_summary())

    def _forget_summary(self) -> None:
        self._summary = None

    @torch.no_grad()
    def prepare(self, train_targets: torch.Tensor) -> None:
        """Store the labels of the whole training set (the database Gamma of the paper)."""
        if tuple(train_targets.shape) != tuple(self.Y.shape):
            raise ValueError(f"train_targets: expected shape {tuple(self.Y.shape)}, "
                             f"got {tuple(train_targets.shape)}")
        self.Y.copy_(train_targets)
        if self.soft_similarity:
            ratio = similar_pair_ratio(self.Y)
            self.dissimilar.fill_(ratio if math.isfinite(ratio) else 1.0)
        self.ready.fill_(True)
        self._summary = None

    def _v_summary(self, dtype: torch.dtype):
        """(V^T V, Y^T V or None when a label is not one-hot), computed once per V."""
        stale = self._summary is None or self._summary[2] != dtype
        if stale or self._summary[0].device != self.V.device:
            v = self.V.to(dtype)
            class_v = self.Y.to(dtype).t() @ v if is_one_hot(self.Y) else None
            self._summary = (v.t() @ v, class_v, dtype)
        return self._summary[:2]

    def compute(self, u, target, index):
        if not bool(self.ready):
            raise RuntimeError("ADSHLoss: no database labels yet; call prepare(train_targets) "
                               "first (the Trainer does, before the first epoch)")
        n = self.V.shape[0]
        if int(index.min()) < 0 or int(index.max()) >= n:
            raise IndexError(f"index: expected values in [0, {n}), got [{int(index.min())}, {int(index.max())}]")
        z = torch.tanh(u)
        if self.training:
            with torch.no_grad():
                self.U[index] = z.detach().to(self.U.dtype)
                self.fresh[index] = True
        v = self.V.to(u.dtype)
        with torch.no_grad():
            vtv, class_v = self._v_summary(u.dtype)
            d = float(self.dissimilar)
            s_v = signed_similarity_times(target.to(u.dtype), self.Y.to(u.dtype), v, class_v, d)
            similar = similar_counts(target.to(u.dtype), self.Y.to(u.dtype)).sum()
            s_squared = similar + d * d * (n * z.shape[0] - similar)  # sum of S_ij^2 over the batch
        c = float(self.nbits)
        square = ((z @ vtv) * z).sum() - 2.0 * c * (z * s_v).sum() + c * c * s_squared
        quantization = ((v[index] - z) ** 2).sum()
        return (square + self.gamma * quantization) / (z.shape[0] * n)

    def epoch_samples(self, epoch: int, num_train: int, generator: torch.Generator):
        """Omega for this epoch: ``sample_size`` training samples drawn without replacement
        (all of them when it is None or not smaller), visited ``inner_epochs`` times."""
        if num_train != self.V.shape[0]:
            raise ValueError(f"num_train: expected the {self.V.shape[0]} rows of V, got {num_train}")
        if self.sample_size is None or self.sample_size >= num_train:
            return None if self.inner_epochs == 1 else (torch.arange(num_train), self.inner_epochs)
        return torch.randperm(num_train, generator=generator)[:self.sample_size], self.inner_epochs

    @torch.no_grad()
    def on_epoch_end(self, epoch: int) -> None:
        """The V step over the samples seen in this epoch (Omega)."""
        omega = torch.nonzero(self.fresh).squeeze(1)
        if omega.numel() == 0:
            return
        self.V.copy_(adsh_v_step(self.V, self.U[omega], self.Y[omega], self.Y, omega,
                                 self.nbits, self.gamma, float(self.dissimilar)))
        self.fresh.zero_()
        self.steps += 1
        self._summary = None

    def database_codes(self, index):
        """V rows once a V step has run (``eval_codes="discrete"``), else None."""
        if self.eval_codes != "discrete" or int(self.steps) == 0:
            return None
        return self.V[index.to(self.V.device)]
