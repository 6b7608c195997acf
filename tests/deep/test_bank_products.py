"""The AMX bank products (``_core.PackedBank``) and the bank losses that use them.

The products run only on CPUs with AMX-BF16 whose system grants the tile state; elsewhere these
tests check that nothing selects them and skip the rest. Each product keeps about 16
significant bits (bfloat16 halves, ``hi hi + lo hi + hi lo``), so results are compared to a
float64 oracle at 2e-5 relative, and to the float32 path (``DEEPHASH_BANK_PRODUCTS=float32``).
"""

import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from deephash_engine import _core
from deephash_engine.deep import losses as L
from deephash_engine.deep.losses import base

AMX = _core.bank_products_available()
needs_amx = pytest.mark.skipif(not AMX, reason=f"no AMX bank products here: "
                                              f"{_core.bank_products_unavailable_reason()}")


def oracle(u, bank):
    """(sum of softplus(u V^T), sigmoid(u V^T) V) in float64."""
    theta = u.double() @ bank.double().t()
    return float(F.softplus(theta).sum()), (torch.sigmoid(theta) @ bank.double())


def test_unavailable_means_unused(monkeypatch):
    if AMX:
        assert _core.bank_products_unavailable_reason() == ""
    else:
        assert _core.bank_products_unavailable_reason()
        with pytest.raises(RuntimeError, match="cannot run here"):
            _core.PackedBank(4, 4)
    bank = base.MemoryBank(10, 8, 3)
    u = torch.randn(4, 8)
    monkeypatch.setenv("DEEPHASH_BANK_PRODUCTS", "float32")
    assert bank.products(u) is None
    monkeypatch.setenv("DEEPHASH_BANK_PRODUCTS", "fast")
    with pytest.raises(ValueError, match="DEEPHASH_BANK_PRODUCTS: expected one of"):
        bank.products(u)


@needs_amx
@pytest.mark.parametrize("batch, dim, rows", [(128, 64, 700), (1, 8, 1), (33, 48, 70), (5, 100, 300)])
def test_packed_bank_matches_oracle(batch, dim, rows):
    gen = torch.Generator().manual_seed(batch + dim + rows)
    bank = torch.rand(rows, dim, generator=gen) * 2 - 1
    u = (torch.rand(batch, dim, generator=gen) * 2 - 1) * 0.5
    packed = _core.PackedBank(rows, dim)
    assert (packed.rows, packed.dim) == (rows, dim)
    written = torch.randperm(rows, generator=gen)[: max(1, 2 * rows // 3)]
    packed.write(bank[written].numpy(), written.numpy())
    full = torch.zeros_like(bank)
    full[written] = bank[written]
    for threads in (1, 2):
        out = np.full((batch, dim), np.nan, np.float32)
        total = packed.logistic(u.numpy(), out, threads)
        want_total, want = oracle(u, full)
        assert abs(total - want_total) <= 2e-5 * abs(want_total)
        scale = full.abs().sum(0, dtype=torch.float64)  # per column: the sum the output is made of
        assert (torch.from_numpy(out).double() - want).abs().le(2e-5 * scale + 1e-6).all()


@needs_amx
def test_packed_bank_argument_errors():
    packed = _core.PackedBank(10, 4)
    values, out = np.zeros((2, 4), np.float32), np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match="index 10 outside"):
        packed.write(values, np.array([1, 10], np.int64))
    with pytest.raises(TypeError, match="int64"):
        packed.write(values, np.array([1, 2], np.int32))
    with pytest.raises(ValueError, match=r"values: expected shape \(n, 4\)"):
        packed.write(np.zeros((2, 5), np.float32), np.array([1, 2], np.int64))
    with pytest.raises(ValueError, match="index: expected shape"):
        packed.write(values, np.array([1], np.int64))
    with pytest.raises(TypeError, match="float32"):
        packed.logistic(np.zeros((3, 4)), out)
    with pytest.raises(ValueError, match="sigmoid_v: expected the shape of u"):
        packed.logistic(np.zeros((2, 4), np.float32), out)
    with pytest.raises(ValueError, match="writeable"):
        out.flags.writeable = False
        packed.logistic(np.zeros((3, 4), np.float32), out)
    with pytest.raises(ValueError, match="batch must be >= 1"):
        packed.logistic(np.zeros((0, 4), np.float32), np.zeros((0, 4), np.float32))
    assert packed.memory_bytes == 4 * 32 * 32 * 2 + 32 * 4 + 32 * 4  # four layouts, norms, classes


N, NB, NC, BATCH = 300, 24, 5, 16

MAKERS = {
    "dpsh": lambda pairs: L.DPSHLoss(NB, num_train=N, num_classes=NC, bank_pairs=pairs),
    "dhn": lambda pairs: with_pairs(L.DHNLoss(NB, memory_bank=True, num_train=N, num_classes=NC), pairs),
    "dbdh": lambda pairs: L.DBDHLoss(NB, num_train=N, num_classes=NC, bank_pairs=pairs),
    "dsdh": lambda pairs: L.DSDHLoss(NB, num_train=N, num_classes=NC),  # pairs with written rows
}


def with_pairs(loss, pairs):
    loss.bank_pairs = pairs
    return loss


def filled(make, written, multi_hot=False, seed=0):
    gen = torch.Generator().manual_seed(seed)
    loss = make()
    y = F.one_hot(torch.randint(NC, (N,), generator=gen), NC).float()
    if multi_hot:
        y[0, (y[0].argmax() + 1) % NC] = 1.0
    rows = torch.randperm(N, generator=gen)[:written]
    loss.bank.update(torch.tanh(torch.randn(written, NB, generator=gen)), y[rows], rows)
    index = rows[:BATCH]
    u = torch.randn(BATCH, NB, generator=gen)
    return loss, u, y[index], index


def value_and_grad(loss, u, target, index):
    x = u.clone().requires_grad_(True)
    value = loss(x, target, index)
    value.backward()
    return float(value.detach()), x.grad


@needs_amx
@pytest.mark.parametrize("name", sorted(MAKERS))
@pytest.mark.parametrize("pairs", ["written", "all"])
@pytest.mark.parametrize("written", [N, 120])
def test_bank_losses_take_the_products_and_agree_with_float32(monkeypatch, name, pairs, written):
    if name == "dsdh" and pairs == "all":
        pytest.skip("DSDH pairs with written rows only")
    loss, u, target, index = filled(lambda: MAKERS[name](pairs), written)
    loss.eval()  # no writes: both paths see the same bank
    bank = loss.bank
    assert bank_pairing_uses_products(bank, u, target, pairs)
    got = value_and_grad(loss, u, target, index)
    monkeypatch.setenv("DEEPHASH_BANK_PRODUCTS", "float32")
    assert bank.products(u) is None
    want = value_and_grad(loss, u, target, index)
    assert abs(got[0] - want[0]) <= 2e-5 * max(1.0, abs(want[0]))
    assert float((got[1] - want[1]).abs().max()) <= 2e-5 * float(want[1].abs().max())
    assert float(want[1].abs().max()) > 1e-6


def bank_pairing_uses_products(bank, u, target, pairs):
    written_only = pairs == "written"
    v, yv, mask, class_v, products = base.bank_pairing(bank, u, target, written_only=written_only)
    if products is None:
        return False
    assert v is None and yv is None and class_v is not None
    unwritten = int((~bank.seen).sum())
    assert products.unwritten == (unwritten if written_only else 0)
    return True


@needs_amx
def test_multi_hot_labels_and_float64_use_the_float32_path():
    loss, u, target, index = filled(lambda: MAKERS["dpsh"]("all"), N, multi_hot=True)
    assert base.bank_pairing(loss.bank, u, target)[4] is None  # a multi-hot row in the bank
    loss, u, target, index = filled(lambda: MAKERS["dpsh"]("all"), N)
    assert base.bank_pairing(loss.bank, u, target)[4] is not None
    assert base.bank_pairing(loss.bank, u, target + F.one_hot(torch.zeros(BATCH, dtype=torch.long), NC))[4] is None
    assert loss.bank.products(u.double()) is None
    loss.double()
    assert loss.bank.products(u.double()) is None


@needs_amx
def test_layouts_follow_the_bank_through_writes_repeats_and_loads():
    loss, u, target, index = filled(lambda: MAKERS["dpsh"]("written"), 120)
    bank = loss.bank

    def matches_oracle():
        products = bank.products(u, written_only=False)
        total, sigmoid_v, paired = products.logistic(u)
        want_total, want = oracle(u, torch.where(bank.seen.unsqueeze(1), bank.U, 0.0))
        assert paired == N
        assert abs(total - want_total) <= 2e-5 * abs(want_total)
        assert float((sigmoid_v.double() - want).abs().max()) <= 2e-5 * float(want.abs().max())

    matches_oracle()  # built from the bank on first use
    gen = torch.Generator().manual_seed(5)
    rows = torch.tensor([3, 200, 3, 299])  # a repeat: whichever write the backend keeps
    bank.update(torch.randn(4, NB, generator=gen), F.one_hot(torch.tensor([0, 1, 2, 3]), NC).float(), rows)
    matches_oracle()
    bank.update(torch.randn(2, NB, generator=gen), F.one_hot(torch.tensor([4, 4]), NC).float(),
                torch.tensor([7, 8]))
    matches_oracle()
    state = loss.state_dict()
    fresh = MAKERS["dpsh"]("written")
    fresh.load_state_dict(state)
    a = bank.products(u).logistic(u)
    b = fresh.bank.products(u).logistic(u)
    assert a[0] == b[0] and torch.equal(a[1], b[1]) and a[2] == b[2]


@needs_amx
def test_unwritten_rows_leave_the_written_only_value_unchanged():
    # pairing with written rows only through the full layouts (unwritten rows are zeros, taken
    # out as log 2 per pair) equals pairing with the written rows alone
    loss, u, target, index = filled(lambda: MAKERS["dpsh"]("written"), 40)
    products = loss.bank.products(u, written_only=True)
    total, sigmoid_v, paired = products.logistic(u)
    assert paired == 40
    want_total, want = oracle(u, loss.bank.U[loss.bank.seen])
    assert abs(total - want_total) <= 2e-5 * abs(want_total)
    assert float((sigmoid_v.double() - want).abs().max()) <= 2e-5 * float(want.abs().max())
    assert products.unwritten * BATCH * math.log(2.0) > 0


@needs_amx
@pytest.mark.parametrize("pairs", ["written", "all"])
@pytest.mark.parametrize("written", [N, 120])
def test_dsh_bank_takes_the_products_and_agrees_with_float32(monkeypatch, pairs, written):
    make = lambda: with_pairs(L.DSHLoss(NB, memory_bank=True, num_train=N, num_classes=NC), pairs)  # noqa: E731
    loss, u, target, index = filled(make, written)
    loss.eval()
    assert bank_pairing_uses_products(loss.bank, u, target, pairs)
    got = value_and_grad(loss, u, target, index)
    monkeypatch.setenv("DEEPHASH_BANK_PRODUCTS", "float32")
    assert not bank_pairing_uses_products(loss.bank, u, target, pairs)
    want = value_and_grad(loss, u, target, index)
    assert abs(got[0] - want[0]) <= 2e-5 * max(1.0, abs(want[0]))
    assert float((got[1] - want[1]).abs().max()) <= 2e-5 * float(want[1].abs().max())
    assert float(want[1].abs().max()) > 1e-6


@needs_amx
def test_dsh_multi_hot_labels_use_the_float32_path():
    make = lambda: L.DSHLoss(NB, memory_bank=True, num_train=N, num_classes=NC)  # noqa: E731
    loss, u, target, index = filled(make, N, multi_hot=True)
    loss.eval()  # pairing without writes
    assert loss.pairing(u, target, index)[4] is None and loss.pairing(u, target, index)[0] is not None
    loss, u, target, index = filled(make, N)
    loss.eval()
    assert loss.pairing(u, target, index)[4] is not None
    assert loss.pairing(u, target + F.one_hot(torch.zeros(BATCH, dtype=torch.long), NC), index)[4] is None


@needs_amx
def test_contrastive_binding_checks_its_arguments():
    packed = _core.PackedBank(10, 4)
    u, norm, cls = np.zeros((3, 4), np.float32), np.zeros(3, np.float32), np.zeros(3, np.int32)
    wv, ws = np.zeros((3, 4), np.float32), np.zeros(3, np.float32)
    # ten zero rows without a class, at d = 0: dissimilar pairs inside the margin
    assert packed.contrastive(u, norm, cls, 1.0, wv, ws) == 30.0
    assert (ws == -10.0).all() and (wv == 0.0).all()
    with pytest.raises(TypeError, match="int32"):
        packed.contrastive(u, norm, cls.astype(np.int64), 1.0, wv, ws)
    with pytest.raises(ValueError, match="u_norm: expected shape"):
        packed.contrastive(u, norm[:2], cls, 1.0, wv, ws)
    with pytest.raises(ValueError, match="weight_sum: expected shape"):
        packed.contrastive(u, norm, cls, 1.0, wv, ws[:2])
    with pytest.raises(ValueError, match="classes: expected shape"):
        packed.write(np.zeros((2, 4), np.float32), np.array([1, 2], np.int64), np.zeros(3, np.int32))


@needs_amx
def test_a_bank_with_layouts_copies_and_pickles():
    # the layouts are not copied: the copy rebuilds its own from U, with the same results
    import copy
    import pickle

    loss, u, target, index = filled(lambda: MAKERS["dpsh"]("all"), N)
    loss.eval()
    want = value_and_grad(loss, u, target, index)
    assert loss.bank._packed is not None
    for clone in (copy.deepcopy(loss), pickle.loads(pickle.dumps(loss))):
        assert clone.bank._packed is None
        got = value_and_grad(clone, u, target, index)
        assert clone.bank._packed is not None and clone.bank._packed is not loss.bank._packed
        assert got[0] == want[0] and torch.equal(got[1], want[1])


def test_pairwise_likelihood_refuses_products_without_class_sums_or_with_a_margin():
    from deephash_engine.deep.losses.functional import pairwise_likelihood

    u, target = torch.randn(4, NB), F.one_hot(torch.arange(4) % NC, NC).float()
    products = base.BankProducts(packed=None, unwritten=0)  # refused before it is used
    with pytest.raises(ValueError, match="needs class_v .* got class_v None and margin 0"):
        pairwise_likelihood(u, None, target, None, None, products=products)
    with pytest.raises(ValueError, match=r"margin 0, got class_v \(5, 24\) and margin 1.0"):
        pairwise_likelihood(u, None, target, None, None, class_v=torch.zeros(NC, NB), margin=1.0,
                            products=products)
