"""Plumbing shared by every deep-hashing loss: the base class, pairwise similarity, the
sign convention of the engine, and a memory bank of per-sample outputs.

Conventions, for every loss in this package:

- ``u`` is the raw output of the hash head, shape (batch, nbits), float. A loss applies its own
  squashing (tanh, sigmoid, sign) inside; the code of a sample is always ``u >= 0`` bit by bit,
  which is the packing contract of the engine (x >= 0 -> 1).
- ``target`` is a float (batch, n_classes) one-hot or multi-hot label matrix; for a label-free
  loss (``label_free = True``: BiHalf, unsupervised GreedyHash) it is instead the (batch, d)
  frozen features of the batch, and no label reaches the loss.
- ``index`` is the int64 (batch,) position of each sample in the training set; losses with
  per-sample state (memory banks, discrete codes) need it, the others ignore it.
- Two samples are similar (s = 1) when they share at least one label.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch
from torch import nn

from ... import _core
from ..._checks import check_positive_int


def sign_pm1(x: torch.Tensor) -> torch.Tensor:
    """+1 where x >= 0, -1 elsewhere (so sign(0) = +1, as the packing contract wants)."""
    return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))


def similarity(target_a: torch.Tensor, target_b: torch.Tensor) -> torch.Tensor:
    """(na, nb) matrix with 1.0 where two label rows share a label, else 0.0."""
    return (target_a @ target_b.t() > 0).to(target_a.dtype)


def is_one_hot(labels: torch.Tensor) -> bool:
    """True when every label row holds exactly one 1 (labels are 0/1 by convention)."""
    return bool((labels.sum(1) == 1).all())


def check_batch(u: torch.Tensor, target: torch.Tensor, nbits: int) -> None:
    """Validate the shapes every loss relies on, naming argument, expected and actual value."""
    if u.dim() != 2 or u.shape[1] != nbits:
        raise ValueError(f"u: expected shape (batch, {nbits}), got {tuple(u.shape)}")
    if target.dim() != 2 or target.shape[0] != u.shape[0]:
        raise ValueError(
            f"target: expected shape ({u.shape[0]}, n_classes), got {tuple(target.shape)}"
        )
    if not torch.is_floating_point(u):
        raise TypeError(f"u: expected a floating dtype, got {u.dtype}")


#: Method name -> loss class, for every loss class that sets ``method`` (filled on import).
LOSSES: dict[str, type["HashLoss"]] = {}


class HashLoss(nn.Module):
    """Base class: ``forward(u, target, index)`` returns the scalar training loss.

    A subclass that sets ``method`` (the name a run config uses, ``method: dpsh``) is registered
    in :data:`LOSSES` when its module is imported. Subclasses implement :meth:`compute`. Regularisers added with :meth:`add_regularizer` are
    summed on top, each with its weight. Losses that own parameters (a classifier) expose them
    through the usual ``parameters()``; the trainer puts them in the optimiser. Per-sample state
    lives in buffers, so ``state_dict()`` carries it into checkpoints and a resumed run continues
    identically.
    """

    #: The registered name of the method; empty for helper base classes.
    method: str = ""
    #: True when :meth:`compute` needs the dataset ``index`` of each sample.
    needs_index: bool = False
    #: True when ``target`` holds the frozen features of the batch, not labels (see
    #: :mod:`deephash_engine.deep.label_free`).
    label_free: bool = False
    #: True when :meth:`prepare` needs the labels of the whole training set (the trainer reads
    #: them only then).
    needs_train_targets: bool = False
    #: True for the quantization methods (DQN, DTQ, DVSQ): their codes are codebook indices,
    #: ranked by asymmetric distance, not bits (see :mod:`.quantized`).
    quantized: bool = False
    #: True when :meth:`compute` also reads the network's features below the hash layer (the
    #: trainer passes ``features``: the model's hidden layer, else its backbone output).
    needs_features: bool = False
    #: Width of the hidden layer the method's network has between the backbone and the hash
    #: layer by default (0: none); a run config's ``head_hidden`` overrides it.
    head_hidden: int = 0

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("method"):
            LOSSES[cls.method] = cls

    def __init__(self, nbits: int) -> None:
        super().__init__()
        self.nbits = check_positive_int(nbits, "nbits")
        self._regularizers: list[tuple[float, nn.Module]] = []

    def add_regularizer(self, term: nn.Module, weight: float = 1.0) -> "HashLoss":
        """Add ``weight * term(u)`` to the loss; returns self so calls chain."""
        if weight < 0:
            raise ValueError(f"weight: expected >= 0, got {weight}")
        self._regularizers.append((float(weight), term))
        return self

    def compute(
        self, u: torch.Tensor, target: torch.Tensor, index: Optional[torch.Tensor]
    ) -> torch.Tensor:
        raise NotImplementedError

    def forward(
        self, u: torch.Tensor, target: torch.Tensor, index: Optional[torch.Tensor] = None,
        features: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        check_batch(u, target, self.nbits)
        if features is not None and (features.dim() != 2 or features.shape[0] != u.shape[0]):
            raise ValueError(f"features: expected shape ({u.shape[0]}, d), got {tuple(features.shape)}")
        if self.needs_index:
            if index is None:
                raise ValueError(f"index: {type(self).__name__} needs the dataset index, got None")
            if index.dim() != 1 or index.shape[0] != u.shape[0]:
                raise ValueError(
                    f"index: expected shape ({u.shape[0]},), got {tuple(index.shape)}"
                )
        loss = self.compute(u, target, index, features) if self.needs_features else self.compute(u, target, index)
        for weight, term in self._regularizers:
            loss = loss + weight * term(u)
        return loss

    def on_epoch_end(self, epoch: int) -> None:
        """Hook the trainer calls after each epoch (schedules, discrete steps). Default: nothing."""

    def epoch_samples(self, epoch: int, num_train: int,
                      generator: torch.Generator) -> Optional[tuple[torch.Tensor, int]]:
        """Hook the trainer calls before each epoch: ``(positions, passes)`` to train the epoch on
        the training samples at ``positions`` (int64, distinct), ``passes`` times over, each pass
        shuffled; or None for one pass over the whole training set (the default).

        ``generator`` is seeded from (run seed, epoch), so a resumed run draws the same samples.
        ADSH's sampled schedule uses it (m samples, several passes, then a V step).
        """
        return None

    def prepare(self, train_targets: torch.Tensor) -> None:
        """Hook the trainer calls once, before the first epoch of a fresh run (not on resume),
        when :attr:`needs_train_targets` is set, with the (n_train, n_classes) labels of the
        whole training set in dataset order: for methods that learn something from all labels
        before the network trains (CNNH's target codes). What it learns belongs in buffers, so
        checkpoints carry it. Default: nothing."""

    def database_codes(self, index: torch.Tensor) -> Optional[torch.Tensor]:
        """Codes the loss holds for the training samples ``index`` (int64, (m,)): a (m, nbits)
        tensor of +-1, or None to use the network's codes (the default).

        Asymmetric methods (ADSH) learn discrete database codes for the training set; evaluation
        uses them for database items that are training samples (the run's database and the
        trainer's validation database) instead of encoding those items with the network.
        """
        return None


#: How a label-free loss pairs the samples of a batch (:func:`.functional.cosine_preserving_mse`).
PAIRINGS = ("halves", "all")


class LabelFreeLoss(HashLoss):
    """Base of the label-free losses: ``target`` is the (batch, d) frozen features of the batch;
    ``pairs`` says which pairs of the batch their similarity term compares."""

    label_free = True

    def __init__(self, nbits: int, pairs: str = "halves") -> None:
        super().__init__(nbits)
        if pairs not in PAIRINGS:
            raise ValueError(f"pairs: expected one of {PAIRINGS}, got {pairs!r}")
        self.pairs = pairs


#: How a bank's products are taken: "auto" (AMX where the CPU and system have it, see
#: :class:`BankProducts`), or "float32" (torch's float32 products everywhere). Read from the
#: environment variable ``DEEPHASH_BANK_PRODUCTS`` (default "auto").
BANK_PRODUCTS = ("auto", "float32")


def bank_products_mode() -> str:
    """The ``DEEPHASH_BANK_PRODUCTS`` setting, checked: "auto" or "float32"."""
    mode = os.environ.get("DEEPHASH_BANK_PRODUCTS", "auto") or "auto"
    if mode not in BANK_PRODUCTS:
        raise ValueError(f"DEEPHASH_BANK_PRODUCTS: expected one of {BANK_PRODUCTS}, got {mode!r}")
    return mode


@dataclass(frozen=True)
class BankProducts:
    """A bank in the AMX tile layouts (``_core.PackedBank``), for the logistic or contrastive
    terms against all of its rows in one call, and how many of those rows the loss leaves out
    (rows not written yet, which the layouts hold as zeros, when the loss pairs with written rows
    only).

    Each product is taken from bfloat16 halves of both sides, ``hi hi + lo hi + hi lo``
    (about 16 significant bits, where float32 keeps 24; the sums run in float32 as before).
    """

    packed: Any
    unwritten: int

    def contrastive(self, u: torch.Tensor, u_norm: torch.Tensor, target: torch.Tensor,
                    margin: float) -> tuple[float, torch.Tensor, torch.Tensor, int]:
        """(sum of the DSH pair terms over the rows paired, W @ V, W @ 1, rows paired) for one-hot
        ``target``, with ``d = u_norm_i + |v_j|^2 - 2 u_i.v_j`` and the pair weights
        ``W = S - (1 - S) [d < margin]`` (see ``_core.PackedBank.contrastive``)."""
        weight_v = torch.empty_like(u)
        weight_sum = torch.empty_like(u_norm)
        u_class = target.argmax(1).to(torch.int32).contiguous()
        total = self.packed.contrastive(u.detach().contiguous().numpy(), u_norm.contiguous().numpy(),
                                        u_class.numpy(), float(margin), weight_v.numpy(),
                                        weight_sum.numpy(), torch.get_num_threads())
        if self.unwritten:
            # a row never written is zero with no class: a dissimilar pair at d = u_norm_i
            inside = u_norm < float(margin)
            total -= self.unwritten * float((float(margin) - u_norm.double()).clamp(min=0.0).sum())
            weight_sum += self.unwritten * inside.to(weight_sum.dtype)
        return total, weight_v, weight_sum, self.packed.rows - self.unwritten

    def logistic(self, u: torch.Tensor) -> tuple[float, torch.Tensor, int]:
        """(sum of softplus(theta) over the rows paired, sigmoid(theta) @ V, rows paired) for
        ``theta = u V^T`` (u float32 on the CPU)."""
        sigmoid_v = torch.empty_like(u)
        total = self.packed.logistic(u.detach().contiguous().numpy(), sigmoid_v.numpy(),
                                     torch.get_num_threads())
        # a row never written is zero: log 2 for each pair with it, nothing in sigmoid_v
        total -= self.unwritten * u.shape[0] * math.log(2.0)
        return total, sigmoid_v, self.packed.rows - self.unwritten


def _rebuild_after_load(bank: "MemoryBank", _keys) -> None:
    # a module-level function, not a lambda, so that a bank can be pickled
    bank.rebuild_summaries()


class MemoryBank(nn.Module):
    """Latest outputs and labels of every training sample: ``U`` (n, nbits), ``Y`` (n, classes).

    Only rows that have been written count (``seen``), so the first epoch never compares against
    the zeros the bank starts with. Everything is a buffer, hence saved and restored with the loss.

    Two summaries are kept in step with every write, so that a step against the bank never
    reads all of ``Y``: ``class_sums = Y^T U`` in float64 (the per-class sums of the outputs;
    with one-hot labels ``S @ U = target @ class_sums``) and the number of written rows whose
    label is not one-hot. They are not saved; loading a state rebuilds them.

    On a CPU with AMX (:meth:`products`) the outputs are also kept in the tile layouts of
    ``_core.PackedBank``, written with ``U`` and rebuilt from it on load (twice the memory of
    ``U``, as bfloat16 halves in two layouts).
    """

    def __init__(self, num_train: int, nbits: int, num_classes: int) -> None:
        super().__init__()
        check_positive_int(num_train, "num_train")
        check_positive_int(num_classes, "num_classes")
        self.register_buffer("U", torch.zeros(num_train, nbits))
        self.register_buffer("Y", torch.zeros(num_train, num_classes))
        self.register_buffer("seen", torch.zeros(num_train, dtype=torch.bool))
        self.register_buffer("class_sums", torch.zeros(num_classes, nbits, dtype=torch.float64),
                             persistent=False)
        self.register_buffer("not_one_hot", torch.zeros((), dtype=torch.int64), persistent=False)
        self._packed: Optional[Any] = None  # _core.PackedBank of U, built on first use
        self.register_load_state_dict_post_hook(_rebuild_after_load)

    def __getstate__(self):
        # the packed layouts are a core object: not copied or pickled, rebuilt from U on next use
        state = self.__dict__.copy()
        state["_packed"] = None
        return state

    @torch.no_grad()
    def rebuild_summaries(self) -> None:
        """Recompute ``class_sums``, ``not_one_hot`` and the packed layouts from ``U``, ``Y`` and
        ``seen``."""
        self._rebuild_counts()
        self._packed = None

    def _rebuild_counts(self) -> None:
        self.class_sums.copy_(self.Y.double().t() @ self.U.double())
        self.not_one_hot.fill_(int((self.seen & (self.Y.sum(1) != 1)).sum()))

    def products(self, u: torch.Tensor, written_only: bool = True) -> Optional[BankProducts]:
        """The bank in AMX tile layouts for the pair terms of ``u`` against it, or None where
        they do not apply: a CPU without AMX-BF16 (``_core.bank_products_available()``), a bank
        or batch that is not float32 on the CPU, or ``DEEPHASH_BANK_PRODUCTS=float32``.
        The layouts are built on the first call (about 15 ms for 60,000 rows) and kept in step
        with every write after it."""
        if (u.dtype != torch.float32 or u.device.type != "cpu" or self.U.dtype != torch.float32
                or self.U.device.type != "cpu" or bank_products_mode() != "auto"
                or not _core.bank_products_available()):
            return None
        if self._packed is None:
            self._packed = _core.PackedBank(self.U.shape[0], self.U.shape[1])
            rows = torch.nonzero(self.seen).view(-1)
            if rows.numel():
                self._write_packed(rows)
        unwritten = int((~self.seen).sum()) if written_only else 0
        return BankProducts(self._packed, unwritten)

    def _repack(self, index: torch.Tensor) -> None:
        """Copy rows ``index`` of U (as written, whichever repeat won) into the packed layouts."""
        if self._packed is not None:
            if self.U.device.type != "cpu" or self.U.dtype != torch.float32:
                self._packed = None  # moved or cast: rebuilt on the next products() call
                return
            self._write_packed(index.detach().to("cpu", torch.int64))

    def _write_packed(self, rows: torch.Tensor) -> None:
        """Rows of U into the packed layouts, each with its class (-1 where its label is not
        one-hot: such a bank never takes the contrastive products)."""
        labels = self.Y[rows]
        classes = torch.where(labels.sum(1) == 1, labels.argmax(1), -1).to(torch.int32)
        self._packed.write(self.U[rows].contiguous().numpy(), rows.contiguous().numpy(), classes.numpy())

    @torch.no_grad()
    def update(self, u: torch.Tensor, target: torch.Tensor, index: torch.Tensor) -> None:
        n = self.U.shape[0]
        if int(index.min()) < 0 or int(index.max()) >= n:
            raise IndexError(
                f"index: expected values in [0, {n}), got [{int(index.min())}, {int(index.max())}]"
            )
        if target.shape[1] != self.Y.shape[1]:
            raise ValueError(
                f"target: expected {self.Y.shape[1]} classes, got {target.shape[1]}"
            )
        u, target = u.detach().to(self.U.dtype), target.detach().to(self.Y.dtype)
        if index.unique().numel() != index.numel():
            # a repeated index: which write wins is up to the backend, so recount from scratch
            self.U[index], self.Y[index], self.seen[index] = u, target, True
            self._rebuild_counts()
            self._repack(index)
            return
        # rows not written yet hold zeros, so taking out their old part changes nothing
        old_u, old_y = self.U[index], self.Y[index]
        self.class_sums.sub_(old_y.double().t() @ old_u.double())
        self.not_one_hot.sub_((self.seen[index] & (old_y.sum(1) != 1)).sum())
        self.U[index], self.Y[index], self.seen[index] = u, target, True
        self.class_sums.add_(target.double().t() @ u.double())
        self.not_one_hot.add_((target.sum(1) != 1).sum())
        self._repack(index)

    def one_hot_class_sums(self) -> Optional[torch.Tensor]:
        """``Y^T U`` over the written rows (float64) when every written label is one-hot, else None."""
        return self.class_sums if int(self.not_one_hot) == 0 else None

    def pairs(self, u: torch.Tensor, written_only: bool = True) -> tuple[torch.Tensor, torch.Tensor, None]:
        """(V, Yv, None): the rows written so far (``written_only``) or every row, the rows not
        written yet being zeros, cast to u's dtype; every pair counts."""
        if not written_only or bool(self.seen.all()):
            return self.U.to(u.dtype), self.Y.to(u.dtype), None
        return self.U[self.seen].to(u.dtype), self.Y[self.seen].to(u.dtype), None


def batch_pairs(u: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(V, Yv, pair mask) for in-batch pairs: every ordered pair i != j of the batch."""
    n = u.shape[0]
    mask = 1.0 - torch.eye(n, dtype=u.dtype, device=u.device)
    return u, target.to(u.dtype), mask


#: Bank rows per block in the closed-form bank paths. A (batch, block) block of pair terms stays in
#: cache, and no (batch, n) matrix is allocated per step (a fresh allocation that large costs a
#: page fault per 4 KiB on every step, more than the arithmetic on a virtualised host).
BANK_BLOCK = 2048


def bank_blocks(u: torch.Tensor, v: torch.Tensor, scratch: int = 0, block: Optional[int] = None):
    """Yield ``(rows, products, *spares)`` over row blocks ``v[rows]`` of a bank: ``products`` is
    ``u @ v[rows]^T`` and each of the ``scratch`` spares an uninitialised tensor of its shape.

    All of them are views of buffers reused from block to block, so each is valid only until
    the next block is yielded. Call under ``torch.no_grad()``.
    """
    block = block or BANK_BLOCK
    batch, n = u.shape[0], v.shape[0]
    size = batch * min(block, n)
    buffers = [u.new_empty(size) for _ in range(1 + scratch)]
    for start in range(0, n, block):
        rows = slice(start, min(start + block, n))
        shape = (batch, rows.stop - rows.start)
        views = [buf[: shape[0] * shape[1]].view(shape) for buf in buffers]
        torch.mm(u, v[rows].t(), out=views[0])
        yield (rows, *views)


def with_gradient(value: torch.Tensor, u: torch.Tensor, grad_u: torch.Tensor) -> torch.Tensor:
    """A tensor equal to ``value`` whose gradient with respect to ``u`` is ``grad_u``.

    Bank losses compute their (batch, n) terms and the gradient in closed form under no_grad,
    so autograd keeps no (batch, n) intermediates and runs no extra (batch, n) passes.
    """
    return value.detach() + ((u - u.detach()) * grad_u.detach()).sum()


def masked_mean(values: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
    """Mean of ``values`` over the entries where ``mask`` is 1 (all when None; 0 if empty)."""
    if mask is None:
        return values.mean()
    total = mask.sum()
    return (values * mask).sum() / total.clamp(min=1.0)


#: Which bank rows a pairwise loss pairs with while the bank fills (:class:`PairwiseLoss`).
BANK_PAIRS = ("written", "all")


class PairwiseLoss(HashLoss):
    """A loss over pairs (batch sample, other sample); the others are either the rest of the
    batch (``memory_bank=False``) or the latest outputs of every training sample seen so far
    (``memory_bank=True``, the DPSH trick, which needs ``num_train`` and ``num_classes``).

    Against a bank only the batch side carries gradient; the cost is one (batch, n) matrix
    product per step, never a (batch, n, nbits) tensor.

    In-batch pairs are i != j unless a subclass sets ``pairs_with_self = True`` (losses whose
    reference code averages over all n^2 pairs, i == j included).

    ``bank_pairs`` says which bank rows a batch pairs with before every row has been written
    (the first epoch): ``"written"`` (only those written so far) or ``"all"`` (every row, the
    unwritten ones as zero outputs with no label, as DeepHash-pytorch's banks do: their pairs
    add a constant and no gradient, so the pair term's weight grows over the first epoch).
    """

    pairs_with_self: bool = False

    def __init__(
        self,
        nbits: int,
        memory_bank: bool = False,
        num_train: Optional[int] = None,
        num_classes: Optional[int] = None,
        bank_pairs: str = "written",
    ) -> None:
        super().__init__(nbits)
        if bank_pairs not in BANK_PAIRS:
            raise ValueError(f"bank_pairs: expected one of {BANK_PAIRS}, got {bank_pairs!r}")
        self.bank_pairs = bank_pairs
        self.bank: Optional[MemoryBank] = None
        if memory_bank:
            if num_train is None or num_classes is None:
                raise ValueError(
                    "num_train, num_classes: expected positive ints with memory_bank=True, "
                    f"got {num_train!r}, {num_classes!r}"
                )
            self.bank = MemoryBank(num_train, nbits, num_classes)
            self.needs_index = True

    def others(
        self, u: torch.Tensor, target: torch.Tensor, index: Optional[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(V, Yv, mask): the samples to pair the batch with, and which pairs count (None:
        all of them)."""
        if self.bank is None:
            if self.pairs_with_self:
                return u, target.to(u.dtype), None
            return batch_pairs(u, target)
        if self.training:
            self.bank.update(u, target, index)
        return self.bank.pairs(u, written_only=self.bank_pairs == "written")

    def pairing(self, u: torch.Tensor, target: torch.Tensor, index: Optional[torch.Tensor]):
        """:meth:`others` for the losses with an AMX bank step: ``(v, yv, mask, class_v,
        products)`` with the bank's ``Y^T U`` and, where they serve the whole step, its AMX
        layouts (:func:`bank_pairing`; then v and yv are None)."""
        if self.bank is None:
            return (*self.others(u, target, index), None, None)
        if self.training:
            self.bank.update(u, target, index)
        return bank_pairing(self.bank, u, target, written_only=self.bank_pairs == "written")


def bank_pairing(bank: MemoryBank, u: torch.Tensor, target: torch.Tensor, written_only: bool = True):
    """``(v, yv, mask, class_v, products)`` for the pair terms of ``u`` against a bank.

    Where the bank's AMX layouts serve the whole step (:meth:`MemoryBank.products`: a CPU with
    AMX-BF16, float32; and one-hot labels on both sides, so that ``S @ V = target @ class_v``),
    ``products`` is set and ``v``, ``yv`` are None: the rows are not copied out of the bank.
    Otherwise ``products`` is None and ``v, yv, mask`` are :meth:`MemoryBank.pairs`.
    """
    class_v = bank.one_hot_class_sums()
    if class_v is not None and is_one_hot(target):
        products = bank.products(u, written_only=written_only)
        if products is not None:
            return None, None, None, class_v, products
    v, yv, mask = bank.pairs(u, written_only=written_only)
    return v, yv, mask, class_v, None
