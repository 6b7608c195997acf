"""CNNH: Xia, Pan, Lai, Liu, Yan, "Supervised Hashing for Image Retrieval via Image
Representation Learning", AAAI 2014.

Two stages, with samples as rows (H: n x q, q = nbits, S: n x n with S_ij = +1 when samples i
and j share a label and -1 otherwise):

1. **Target codes** (:meth:`CNNHLoss.prepare`, before the network trains): approximately solve

       min_H ||H H^T - q S||_F^2   subject to  H in [-1, 1]^{n x q}

   by coordinate descent, ``sweeps`` passes over every entry (:func:`cnnh_stage_one`).
2. **Network** (the returned loss): regress the raw outputs onto the target codes,
   ``mean_ik (u_ik - sign(H)_ik)^2``.

Stage 1 follows the paper's random coordinate descent with Newton directions: for entry H_ij,
with R = H H^T - q S, the objective moved by d along that entry is the quartic

    f(d) - f(0) = 4 g d + 2 a d^2 + 4 H_ij d^3 + d^4,
    g = (R H_{:,j})_i,  a = ||H_{:,j}||^2 + H_ij^2 + R_ii,

and the Newton step is ``d = -g / a``, clipped so that H_ij + d stays in [-1, 1]. Two
departures, both for speed or safety and documented in docs/methods.md: the entries are
visited row by row (rows in a random order, the bits of a row in a random order) instead of in
one random order over all entries, and a step that would not lower the objective is skipped, so
the objective never increases. R is never formed: ``R H_{:,j}`` needs ``G = H^T H`` (q x q) and
the row ``(S H)_i``, which with one-hot labels is ``2 C_{y_i} - s`` from the per-class sums
``C = Y^T H`` and the column sums ``s`` (O(q) per entry, O(n q^2) per sweep); with multi-hot
labels the similarity row of each sample is computed once per sweep (O(n^2 (q + classes)) per
sweep, never an n x n matrix).

Defaults: ``sweeps = 10`` (DeepHash-pytorch's T). The target codes live in a buffer, so a
checkpoint carries them and a resumed run never redoes stage 1.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from .base import HashLoss, check_positive_int, sign_pm1

#: Entries (n * nbits) from which stage 1 shows a progress bar, when ``progress`` is on.
PROGRESS_ENTRIES = 1 << 20


def _labels(targets) -> np.ndarray:
    return np.asarray(torch.as_tensor(targets).detach().cpu().double().numpy())


def cnnh_objective(H, targets, nbits: int) -> float:
    """``||H H^T - q S||_F^2`` (float64), with S = +1 for pairs sharing a label, -1 otherwise.

    With one-hot labels it is ``||G||^2 - 2 q (2 ||C||^2 - ||s||^2) + q^2 n^2`` (G = H^T H,
    C = Y^T H, s the column sums); with multi-hot labels it is summed over blocks of rows.
    """
    H = np.asarray(torch.as_tensor(H).detach().cpu().double().numpy())
    Y = _labels(targets)
    n, q = H.shape[0], float(nbits)
    if bool((Y.sum(1) == 1).all()):
        G, C, s = H.T @ H, Y.T @ H, H.sum(0)
        return float((G ** 2).sum() - 2 * q * (2 * (C ** 2).sum() - s @ s) + q * q * n * n)
    total = 0.0
    for start in range(0, n, 1024):
        rows = slice(start, min(start + 1024, n))
        S = np.where(Y[rows] @ Y.T > 0, 1.0, -1.0)
        total += float(((H[rows] @ H.T - q * S) ** 2).sum())
    return total


def cnnh_stage_one(targets, nbits: int, sweeps: int = 10, seed: int = 0,
                   progress: bool = False, H: Optional[np.ndarray] = None) -> np.ndarray:
    """Target codes H in [-1, 1]^{n x nbits} (float64) for labels ``targets`` (n, classes):
    ``sweeps`` passes of coordinate descent on ``||H H^T - nbits S||^2`` from a uniform random
    start drawn with ``seed`` (or from ``H``). The objective never increases."""
    from tqdm.auto import tqdm

    Y = _labels(targets)
    n, q = Y.shape[0], int(nbits)
    check_positive_int(sweeps, "sweeps")
    rng = np.random.default_rng(seed)
    H = rng.uniform(-1.0, 1.0, (n, q)) if H is None else np.array(H, dtype=np.float64)
    if H.shape != (n, q):
        raise ValueError(f"H: expected shape ({n}, {q}), got {H.shape}")
    one_hot = bool((Y.sum(1) == 1).all())
    labels = Y.argmax(1)
    G = H.T @ H
    C = Y.T @ H if one_hot else None
    s = H.sum(0)
    norms = (H * H).sum(1)
    for sweep in range(sweeps):
        bar = tqdm(rng.permutation(n), desc=f"CNNH stage 1, sweep {sweep + 1}/{sweeps}",
                   disable=not progress, leave=False)
        for i in bar:
            row = H[i]
            if one_hot:
                t = 2.0 * C[labels[i]] - s  # (S H)_i
            else:
                t = 2.0 * ((Y @ Y[i] > 0).astype(np.float64) @ H) - s
            for j in rng.permutation(q):
                h = row[j]
                g = row @ G[:, j] - q * t[j]
                a = G[j, j] + h * h + norms[i] - q
                d = -g / a if a > 0 else (-1.0 - h if g > 0 else 1.0 - h)
                d = min(max(d, -1.0 - h), 1.0 - h)
                if d == 0.0 or 4 * g * d + 2 * a * d * d + 4 * h * d ** 3 + d ** 4 >= 0:
                    continue
                G[j, :] += d * row
                G[:, j] += d * row
                G[j, j] += d * d
                if one_hot:
                    C[labels[i], j] += d
                s[j] += d
                t[j] += d
                norms[i] += 2 * h * d + d * d
                row[j] = h + d
    return H


class CNNHLoss(HashLoss):
    method = "cnnh"
    needs_index = True
    needs_train_targets = True

    def __init__(self, nbits: int, num_train: int, sweeps: int = 10, seed: Optional[int] = None,
                 progress: bool = True) -> None:
        super().__init__(nbits)
        self.num_train = check_positive_int(num_train, "num_train")
        self.sweeps = check_positive_int(sweeps, "sweeps")
        self.seed, self.progress = seed, bool(progress)
        self.register_buffer("H", torch.zeros(num_train, nbits))
        self.register_buffer("ready", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def prepare(self, train_targets: torch.Tensor) -> None:
        """Stage 1: learn the target codes of the training set from its labels."""
        if train_targets.dim() != 2 or train_targets.shape[0] != self.num_train:
            raise ValueError(f"train_targets: expected shape ({self.num_train}, n_classes), "
                             f"got {tuple(train_targets.shape)}")
        seed = self.seed if self.seed is not None else int(torch.randint(0, 2 ** 31 - 1, ()))
        long = self.num_train * self.nbits >= PROGRESS_ENTRIES
        H = cnnh_stage_one(train_targets, self.nbits, self.sweeps, seed, self.progress and long)
        self.H.copy_(torch.from_numpy(H))
        self.ready.fill_(True)

    def targets_of(self, index: torch.Tensor) -> torch.Tensor:
        """sign(H) rows of the training samples ``index``."""
        if not bool(self.ready):
            raise RuntimeError("CNNHLoss: no target codes yet; call prepare(train_targets) first "
                               "(the Trainer does, before the first epoch)")
        return sign_pm1(self.H[index])

    def compute(self, u, target, index):
        return ((u - self.targets_of(index).to(u.dtype)) ** 2).mean()

