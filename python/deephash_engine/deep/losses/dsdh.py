"""DSDH: Li, Sun, He, Tan, "Deep Supervised Discrete Hashing", NIPS 2017.

Objective, with samples as rows (B, U: n x K, labels Y: n x C, classifier W: K x C):

    J = PL(U) + (1/n) * ( mu ||Y - B W||^2 + nu ||W||^2 + eta ||B - U||^2 )

PL is the pairwise likelihood of DPSH against a memory bank of outputs. The three blocks are
optimised in turn, as in the official MatConvNet code, on every training batch:

1. **B step** (discrete): bit-wise coordinate descent (DCC) on
   ``mu ||Y - B W||^2 + eta ||B - U||^2`` for the batch rows; each bit is set to its exact
   minimiser given the others, so the objective never increases.
2. **W step**: ridge regression in closed form, ``W = (B^T B + nu/mu I)^-1 B^T Y`` over all codes
   seen so far (B^T B and B^T Y are kept up to date incrementally: O(batch K^2) per step).
3. **Network step**: the returned loss, ``PL + eta * mean_i ||b_i - u_i||^2``. This B-U coupling
   is the term DeepHash-pytorch drops, which leaves its classification term without gradient.

Defaults: ``mu = 1``, ``nu = 0.1`` (the official ridge weight nu/mu = 0.1), ``eta = 0.01`` for the
per-sample coupling (TreezzZ/DSDH_PyTorch's value; the official ``eta = 55`` multiplies a loss
summed over all n^2 pairs, so per pair it is far smaller), 10 DCC sweeps per B step as in the
official code. The choice of eta was made on the Fashion-MNIST validation split
(docs/benchmarks.md, "Measurements behind the deep-hashing code").
"""

from __future__ import annotations

import numpy as np
import torch

from .base import HashLoss, MemoryBank, bank_pairing, check_positive_int, sign_pm1, similarity
from .functional import pairwise_likelihood


def dsdh_b_objective(B, U, Y, W, mu: float, eta: float) -> torch.Tensor:
    """``mu ||Y - B W||^2 + eta ||B - U||^2``: what the B step minimises."""
    return mu * ((Y - B @ W) ** 2).sum() + eta * ((B - U) ** 2).sum()


def dsdh_b_step(B, U, Y, W, mu: float, eta: float, sweeps: int = 10) -> torch.Tensor:
    """Discrete cyclic coordinate descent over bits; returns a new B in {-1, +1}.

    For bit k, with ``Q = mu Y W^T + eta U`` and ``G = W W^T``, the minimiser given the other
    bits is ``sign(Q_k - mu * sum_{l != k} G_kl B_l)``. ``mu G`` with a zero diagonal gives the
    sum over l != k in one product; the bits are kept as rows of B^T (each contiguous). A sweep
    that changes no bit is a fixed point, so the sweeps left would change nothing: stop there.

    The loop runs in NumPy on the CPU (float64): it is K small vector operations per sweep, where
    a framework's per-operation overhead would cost more than the arithmetic. The result goes
    back to B's device and dtype.
    """
    as_np = lambda t: t.detach().to("cpu", torch.float64).numpy()  # noqa: E731
    w = as_np(W)
    Qt = np.ascontiguousarray((mu * (as_np(Y) @ w.T) + eta * as_np(U)).T)
    coupling = mu * (w @ w.T)
    np.fill_diagonal(coupling, 0.0)
    Bt = np.ascontiguousarray(as_np(B).T)
    for _ in range(sweeps):
        changed = False
        for k in range(Bt.shape[0]):
            new = np.where(Qt[k] - coupling[k] @ Bt >= 0, 1.0, -1.0)
            if not np.array_equal(new, Bt[k]):
                Bt[k] = new
                changed = True
        if not changed:
            break
    return torch.from_numpy(np.ascontiguousarray(Bt.T)).to(device=B.device, dtype=B.dtype)


def dsdh_w_step(BtB: torch.Tensor, BtY: torch.Tensor, mu: float, nu: float) -> torch.Tensor:
    """Closed-form ``argmin_W mu ||Y - B W||^2 + nu ||W||^2`` from B^T B and B^T Y."""
    eye = torch.eye(BtB.shape[0], dtype=BtB.dtype, device=BtB.device)
    return torch.linalg.solve(BtB + (nu / mu) * eye, BtY)


class DSDHLoss(HashLoss):
    method = "dsdh"
    needs_index = True

    def __init__(
        self,
        nbits: int,
        num_train: int,
        num_classes: int,
        mu: float = 1.0,
        nu: float = 0.1,
        eta: float = 0.01,
        dcc_sweeps: int = 10,
    ) -> None:
        super().__init__(nbits)
        if mu <= 0 or nu < 0 or eta < 0:
            raise ValueError(f"mu, nu, eta: expected mu > 0, nu >= 0, eta >= 0, got {mu}, {nu}, {eta}")
        self.mu, self.nu, self.eta = float(mu), float(nu), float(eta)
        self.dcc_sweeps = check_positive_int(dcc_sweeps, "dcc_sweeps")
        self.bank = MemoryBank(num_train, nbits, num_classes)
        self.register_buffer("B", torch.zeros(num_train, nbits))
        # Sums over the codes written so far, in float64 (entries are small integers: exact).
        self.register_buffer("BtB", torch.zeros(nbits, nbits, dtype=torch.float64))
        self.register_buffer("BtY", torch.zeros(nbits, num_classes, dtype=torch.float64))
        self.register_buffer("W", torch.zeros(nbits, num_classes, dtype=torch.float64))

    @torch.no_grad()
    def _discrete_steps(self, u, target, index) -> torch.Tensor:
        y = target.to(torch.float64)
        old = self.B[index].to(torch.float64)  # zero rows for samples not seen before
        start = torch.where(self.bank.seen[index].unsqueeze(1), old, sign_pm1(u.to(torch.float64)))
        new = dsdh_b_step(start, u.to(torch.float64), y, self.W, self.mu, self.eta, self.dcc_sweeps)
        old_y = torch.where(self.bank.seen[index].unsqueeze(1), self.bank.Y[index].double(), 0.0)
        self.BtB += new.t() @ new - old.t() @ old
        self.BtY += new.t() @ y - old.t() @ old_y
        self.B[index] = new.to(self.B.dtype)
        self.W.copy_(dsdh_w_step(self.BtB, self.BtY, self.mu, self.nu))
        return new

    def compute(self, u, target, index):
        if self.training:
            b = self._discrete_steps(u, target, index).to(u.dtype)
            self.bank.update(u, target, index)
        else:
            b = sign_pm1(u).detach()
        v, yv, mask, class_v, products = bank_pairing(self.bank, u, target)
        likelihood = pairwise_likelihood(u, v, target, yv, mask, class_v=class_v, products=products)
        coupling = ((b - u) ** 2).sum(1).mean()
        return likelihood + self.eta * coupling

    def objective(self) -> torch.Tensor:
        """The discrete part ``mu ||Y - B W||^2 + nu ||W||^2 + eta ||B - U||^2`` over seen rows."""
        seen = self.bank.seen
        B = self.B[seen].double()
        U = self.bank.U[seen].double()
        Y = self.bank.Y[seen].double()
        return dsdh_b_objective(B, U, Y, self.W, self.mu, self.eta) + self.nu * (self.W ** 2).sum()
