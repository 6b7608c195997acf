"""The closed-form memory-bank paths against autograd through the explicit formula (float64).

The bank paths compute value and gradient block by block (``base.BANK_BLOCK`` rows at a time),
so every case runs with small blocks that leave a partial last block, with odd and even widths.
"""

import math

import pytest
import torch
from torch.nn import functional as F

from deephash_engine.deep import losses as L
from deephash_engine.deep.losses import base
from deephash_engine.deep.losses.functional import (log_sum, pairwise_likelihood, sigmoid_softplus_,
                                                     soft_pair_terms, softsign)

NB, NC, N, BATCH = 6, 4, 23, 5


def labels(n, multi_hot, gen):
    y = F.one_hot(torch.randint(NC, (n,), generator=gen), NC).double()
    if multi_hot:
        y = ((y + (torch.rand(n, NC, generator=gen, dtype=torch.float64) < 0.3)) > 0).double()
    return y


def filled_bank_loss(make, written, scale, multi_hot, seed=0):
    """A bank loss with ``written`` random rows written, and a batch whose rows are among them."""
    gen = torch.Generator().manual_seed(seed)
    loss = make().double()
    y = labels(N, multi_hot, gen)
    rows = torch.randperm(N, generator=gen)[:written]
    loss.bank.update(scale * torch.randn(written, NB, generator=gen, dtype=torch.float64), y[rows], rows)
    index = rows[:BATCH]
    u = scale * torch.randn(BATCH, NB, generator=gen, dtype=torch.float64)
    return loss, u, y[index], index


def value_and_grad(fn, u):
    x = u.clone().requires_grad_(True)
    value = fn(x)
    value.backward()
    return value.detach(), x.grad


def assert_close(got, want):
    (gv, gg), (wv, wg) = got, want
    assert float(abs(gv - wv)) <= 1e-10 * max(1.0, float(abs(wv)))
    assert float((gg - wg).abs().max()) <= 1e-10 * max(1.0, float(wg.abs().max()))


CASES = [
    pytest.param(written, scale, multi_hot, block,
                 id=f"{'full' if written == N else 'partial'}-x{scale:g}-{'multi' if multi_hot else 'one'}-b{block}")
    for written in (N, 14)
    for scale in (1.0, 12.0)  # 12: |theta| in the hundreds, where a naive log(1 + e^theta) overflows
    for multi_hot in (False, True)
    for block in (4, 7)
]


@pytest.mark.parametrize("written, scale, multi_hot, block", CASES)
def test_dpsh_dhn_dsdh_bank_match_autograd(monkeypatch, written, scale, multi_hot, block):
    monkeypatch.setattr(base, "BANK_BLOCK", block)

    def explicit(x, v, yv, target):
        theta = 0.5 * x @ v.t()
        s = (target @ yv.t() > 0).double()
        return (torch.logaddexp(theta, torch.zeros_like(theta)) - s * theta).mean()

    for make in (lambda: L.DPSHLoss(NB, num_train=N, num_classes=NC, eta=0.0, bank_pairs="written"),
                 lambda: L.DHNLoss(NB, alpha=0.0, memory_bank=True, num_train=N, num_classes=NC),
                 lambda: L.DSDHLoss(NB, num_train=N, num_classes=NC, eta=0.0)):
        loss, u, target, index = filled_bank_loss(make, written, scale, multi_hot)
        loss.eval()  # the bank as written; pairs are every batch row with every written row
        v, yv = loss.bank.U[loss.bank.seen], loss.bank.Y[loss.bank.seen]
        assert v.shape[0] == written
        assert_close(value_and_grad(lambda x: loss(x, target, index), u),
                     value_and_grad(lambda x: explicit(x, v, yv, target), u))


@pytest.mark.parametrize("written, scale, multi_hot, block", CASES)
def test_isdh_idhn_bank_match_autograd(monkeypatch, written, scale, multi_hot, block):
    # the closed-form bank path against autograd through the pair terms over the written rows
    # (multi-hot labels give soft pairs, one-hot ones only hard pairs)
    monkeypatch.setattr(base, "BANK_BLOCK", block)
    for make in (lambda: L.ISDHLoss(NB, memory_bank=True, num_train=N, num_classes=NC, lambda_q=0.0),
                 lambda: L.IDHNLoss(NB, memory_bank=True, num_train=N, num_classes=NC, lambda_q=0.0)):
        loss, u, target, index = filled_bank_loss(make, written, scale, multi_hot)
        loss.eval()
        v, yv = loss.bank.U[loss.bank.seen], loss.bank.Y[loss.bank.seen]

        def explicit(x):
            theta, s, hard, likelihood = soft_pair_terms(softsign(x), v, target, yv, loss.beta / NB)
            return loss.pair_term(theta, s, hard, likelihood).mean()

        (gv, gg), (wv, wg) = value_and_grad(lambda x: loss(x, target, index), u), value_and_grad(explicit, u)
        # IDHN's soft term reaches K^2 / beta before the mean: float64 rounding near 1e-10 of 1
        assert float(abs(gv - wv)) <= 1e-9 * max(1.0, float(abs(wv)))
        assert float((gg - wg).abs().max()) <= 1e-9 * max(1.0, float(wg.abs().max()))
        assert float(wg.abs().max()) > 1e-6  # a gradient to compare


@pytest.mark.parametrize("written, scale, multi_hot, block", CASES)
def test_bank_pairs_all_averages_over_every_row_with_unwritten_ones_as_zeros(monkeypatch, written, scale,
                                                                             multi_hot, block):
    # DeepHash-pytorch's banks: the unwritten rows are zero outputs with no label, so each adds
    # log 2 per pair and no gradient, and the mean is over all N rows
    monkeypatch.setattr(base, "BANK_BLOCK", block)

    def explicit(x, v, yv, target, clamp):
        h = x.clamp(-1.0, 1.0) if clamp else x
        theta = 0.5 * h @ v.t()
        s = (target @ yv.t() > 0).double()
        return (torch.logaddexp(theta, torch.zeros_like(theta)) - s * theta).mean()

    for make, clamp in ((lambda: L.DPSHLoss(NB, num_train=N, num_classes=NC, eta=0.0), False),  # the default
                        (lambda: L.DBDHLoss(NB, num_train=N, num_classes=NC, alpha=0.0), True)):
        loss, u, target, index = filled_bank_loss(make, written, scale, multi_hot)
        assert loss.bank_pairs == "all"
        loss.eval()
        v = torch.where(loss.bank.seen.unsqueeze(1), loss.bank.U, 0.0)
        yv = torch.where(loss.bank.seen.unsqueeze(1), loss.bank.Y, 0.0)
        assert v.shape[0] == N
        want = value_and_grad(lambda x: explicit(x, v, yv, target, clamp), u)
        assert_close(value_and_grad(lambda x: loss(x, target, index), u), want)
        if written < N:  # pairing only with written rows is another loss
            loss.bank_pairs = "written"
            other = value_and_grad(lambda x: loss(x, target, index), u)
            assert float(abs(other[0] - want[0])) > 1e-6
    with pytest.raises(ValueError, match="bank_pairs: expected one of"):
        L.DPSHLoss(NB, num_train=N, num_classes=NC, bank_pairs="seen")


@pytest.mark.parametrize("written, scale, multi_hot, block", CASES)
def test_dsh_bank_matches_autograd(monkeypatch, written, scale, multi_hot, block):
    monkeypatch.setattr(base, "BANK_BLOCK", block)
    margin = 2.0 * NB * scale ** 2  # about the median distance: pairs on both sides of it
    make = lambda: L.DSHLoss(NB, margin=margin, alpha=0.0, memory_bank=True, num_train=N, num_classes=NC)
    loss, u, target, index = filled_bank_loss(make, written, scale, multi_hot)
    loss.eval()
    v, yv = loss.bank.U[loss.bank.seen], loss.bank.Y[loss.bank.seen]

    def explicit(x):
        d = ((x.unsqueeze(1) - v.unsqueeze(0)) ** 2).sum(-1)
        s = (target @ yv.t() > 0).double()
        return (0.5 * s * d + 0.5 * (1.0 - s) * (margin - d).clamp(min=0.0)).mean()

    inside = ((u.unsqueeze(1) - v.unsqueeze(0)) ** 2).sum(-1) < margin
    assert bool(inside.any()) and not bool(inside.all())
    assert_close(value_and_grad(lambda x: loss(x, target, index), u), value_and_grad(explicit, u))


def test_bank_pairs_include_a_batch_row_with_itself_and_training_writes_first():
    # in training the batch is written before pairing, so its rows pair with themselves (d = 0)
    loss, u, target, index = filled_bank_loss(
        lambda: L.DSHLoss(NB, margin=4.0, alpha=0.0, memory_bank=True, num_train=N, num_classes=NC),
        written=9, scale=1.0, multi_hot=False)
    fresh = torch.tensor([r for r in range(N) if not bool(loss.bank.seen[r])][:BATCH])
    value, grad = value_and_grad(lambda x: loss(x, target, fresh), u)
    assert int(loss.bank.seen.sum()) == 9 + BATCH
    assert torch.equal(loss.bank.U[fresh], u)
    v, yv = loss.bank.U[loss.bank.seen], loss.bank.Y[loss.bank.seen]
    x = u.clone().requires_grad_(True)
    d = ((x.unsqueeze(1) - v.unsqueeze(0)) ** 2).sum(-1)
    s = (target @ yv.t() > 0).double()
    want = (0.5 * s * d + 0.5 * (1.0 - s) * (4.0 - d).clamp(min=0.0)).mean()
    want.backward()
    assert_close((value, grad), (want.detach(), x.grad))


def test_pairwise_likelihood_closed_form_equals_its_autograd_path(monkeypatch):
    monkeypatch.setattr(base, "BANK_BLOCK", 8)
    gen = torch.Generator().manual_seed(3)
    u = 4.0 * torch.randn(BATCH, NB, generator=gen, dtype=torch.float64)
    v = 4.0 * torch.randn(N, NB, generator=gen, dtype=torch.float64)
    target, yv = labels(BATCH, False, gen), labels(N, False, gen)
    closed = value_and_grad(lambda x: pairwise_likelihood(x, v, target, yv, None), u)
    # a v that requires grad takes the autograd path of the same function
    graph = value_and_grad(lambda x: pairwise_likelihood(x, v.clone().requires_grad_(True), target, yv, None), u)
    assert_close(closed, graph)


def test_empty_bank_contributes_nothing():
    # pairing only with written rows (bank_pairs="all" pairs with the empty rows: log 2 a pair)
    loss = L.DPSHLoss(NB, num_train=N, num_classes=NC, eta=0.0, bank_pairs="written").double().eval()
    gen = torch.Generator().manual_seed(0)
    u = torch.randn(BATCH, NB, generator=gen, dtype=torch.float64)
    value, grad = value_and_grad(lambda x: loss(x, labels(BATCH, False, gen), torch.arange(BATCH)), u)
    assert float(value) == 0.0 and float(grad.abs().max()) == 0.0


@pytest.mark.parametrize("width", [1, 7, 11, 32, 64, 100])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_log_sum_of_grouped_products_equals_the_sum_of_logs(width, dtype):
    gen = torch.Generator().manual_seed(width)
    x = 0.5 + 0.5 * torch.rand(3, width, generator=gen, dtype=torch.float64)
    x[0, 0] = 0.5  # both ends of the range
    x[-1, -1] = 1.0
    want = float(torch.log(x).sum())
    got = float(log_sum(x.to(dtype)))
    assert abs(got - want) <= 4 * torch.finfo(dtype).eps * x.numel()
    worst = torch.full((4, 40), 0.5, dtype=dtype)  # the smallest products: 2^-32, no underflow
    assert float(log_sum(worst)) == pytest.approx(160 * math.log(0.5), rel=10 * torch.finfo(dtype).eps)


# ---- the fused logistic pass (float32 on the CPU: the engine's kernel) --------------------------

@pytest.mark.parametrize("n", [1, 7, 8, 9, 257, 5000])
@pytest.mark.parametrize("scale", [0.1, 5.0, 60.0])
def test_sigmoid_softplus_matches_float64(n, scale):
    gen = torch.Generator().manual_seed(n)
    theta = scale * torch.randn(n, generator=gen)
    exact = theta.double()
    x = theta.clone()
    total = sigmoid_softplus_(x, torch.empty_like(x))
    want = float(F.softplus(exact).sum())
    assert abs(total - want) <= 1e-6 * abs(want)
    assert torch.allclose(x.double(), torch.sigmoid(exact), rtol=4e-7, atol=1e-37)


def test_sigmoid_softplus_fallback_agrees_with_kernel():
    # a non-contiguous view takes the torch passes; the same values through the kernel
    gen = torch.Generator().manual_seed(1)
    wide = 8.0 * torch.randn(64, 2 * 33, generator=gen)
    strided = wide[:, ::2]
    packed = strided.contiguous()
    assert not strided.is_contiguous()
    total_torch = float(sigmoid_softplus_(strided, torch.empty_like(packed)))
    total_kernel = sigmoid_softplus_(packed, torch.empty_like(packed))
    assert abs(total_torch - total_kernel) <= 1e-6 * abs(total_kernel)
    assert torch.allclose(strided, packed, rtol=1e-6, atol=1e-30)


def test_float32_bank_path_matches_float64_formula(monkeypatch):
    monkeypatch.setattr(base, "BANK_BLOCK", 16)
    gen = torch.Generator().manual_seed(5)
    u = 3.0 * torch.randn(BATCH, 32, generator=gen, dtype=torch.float64)
    v = 3.0 * torch.randn(101, 32, generator=gen, dtype=torch.float64)
    target, yv = labels(BATCH, False, gen), labels(101, False, gen)
    got_value, got_grad = value_and_grad(
        lambda x: pairwise_likelihood(x, v.float(), target.float(), yv.float(), None), u.float())

    def explicit(x):
        theta = 0.5 * x @ v.t()
        s = (target @ yv.t() > 0).double()
        return (F.softplus(theta) - s * theta).mean()

    want_value, want_grad = value_and_grad(explicit, u)
    assert abs(float(got_value) - float(want_value)) <= 1e-5 * float(want_value)
    assert float((got_grad.double() - want_grad).abs().max()) <= 1e-5 * float(want_grad.abs().max())


def test_sigmoid_softplus_binding_rejects_what_it_cannot_update_in_place():
    from deephash_engine import _core
    import numpy as np

    with pytest.raises(TypeError, match="float32"):
        _core.sigmoid_softplus_(np.zeros(4))
    with pytest.raises(TypeError, match="ndarray"):
        _core.sigmoid_softplus_([0.0, 1.0])
    with pytest.raises(ValueError, match=r"C-contiguous array, got strides \(16, 8\)"):
        _core.sigmoid_softplus_(np.zeros((4, 4), dtype=np.float32)[:, ::2])
    frozen = np.zeros(4, dtype=np.float32)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="writeable.*got a read-only one"):
        _core.sigmoid_softplus_(frozen)
    x = np.array([[0.0, 2.0], [-3.0, 40.0]], dtype=np.float32)
    total = _core.sigmoid_softplus_(x)
    assert x[0, 0] == 0.5 and abs(x[1, 1] - 1.0) < 1e-7
    assert abs(total - (math.log(2) + math.log1p(math.exp(2)) + math.log1p(math.exp(-3)) + 40.0)) < 1e-5


# ---- the bank's running summaries ---------------------------------------------------------------

def recount(bank):
    return bank.Y.double().t() @ bank.U.double(), int((bank.seen & (bank.Y.sum(1) != 1)).sum())


def test_bank_summaries_follow_overwrites_multi_hot_rows_and_repeated_indices():
    gen = torch.Generator().manual_seed(7)
    bank = L.MemoryBank(N, NB, NC)
    for step in range(40):
        index = torch.randperm(N, generator=gen)[:BATCH]
        if step % 9 == 4:
            index[1] = index[0]  # a repeated index
        y = labels(BATCH, multi_hot=step % 5 == 0, gen=gen).float()
        bank.update(torch.randn(BATCH, NB, generator=gen), y, index)
        sums, not_one_hot = recount(bank)
        assert torch.allclose(bank.class_sums, sums, atol=1e-5)
        assert int(bank.not_one_hot) == not_one_hot
        assert (bank.one_hot_class_sums() is None) == (not_one_hot > 0)
    # rewrite every row one-hot: the multi-hot count drops back to zero
    bank.update(torch.randn(N, NB, generator=gen), labels(N, False, gen).float(), torch.arange(N))
    assert int(bank.not_one_hot) == 0
    assert torch.allclose(bank.one_hot_class_sums(), recount(bank)[0], atol=1e-5)


def test_bank_summaries_are_rebuilt_on_load():
    gen = torch.Generator().manual_seed(8)
    loss = L.DPSHLoss(NB, num_train=N, num_classes=NC)
    loss.bank.update(torch.randn(9, NB, generator=gen), labels(9, False, gen).float(), torch.arange(9))
    state = loss.state_dict()
    assert not any(k.endswith(("class_sums", "not_one_hot")) for k in state)  # derived, not saved
    fresh = L.DPSHLoss(NB, num_train=N, num_classes=NC)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.bank.class_sums, loss.bank.class_sums)
    assert torch.equal(fresh.bank.class_sums, recount(fresh.bank)[0])


@pytest.mark.parametrize("multi_hot", [False, True])
def test_dsh_float32_bank_path_matches_float64_formula(monkeypatch, multi_hot):
    # float32 on the CPU runs the engine's contrastive kernel; the reference is float64 autograd
    monkeypatch.setattr(base, "BANK_BLOCK", 16)
    gen = torch.Generator().manual_seed(6)
    bits, n = 24, 101
    margin = 2.0 * bits
    loss = L.DSHLoss(bits, margin=margin, alpha=0.0, memory_bank=True, num_train=n, num_classes=NC)
    y = labels(n, multi_hot, gen)
    loss.bank.update(torch.randn(n, bits, generator=gen), y.float(), torch.arange(n))
    loss.eval()
    index = torch.arange(BATCH)
    u = torch.randn(BATCH, bits, generator=gen, dtype=torch.float64)
    got_value, got_grad = value_and_grad(lambda x: loss(x, y[index].float(), index), u.float())
    v = loss.bank.U.double()

    def explicit(x):
        d = ((x.unsqueeze(1) - v.unsqueeze(0)) ** 2).sum(-1)
        s = (y[index] @ y.t() > 0).double()
        return (0.5 * s * d + 0.5 * (1.0 - s) * (margin - d).clamp(min=0.0)).mean()

    want_value, want_grad = value_and_grad(explicit, u)
    assert abs(float(got_value) - float(want_value)) <= 1e-5 * float(want_value)
    assert float((got_grad.double() - want_grad).abs().max()) <= 1e-4 * float(want_grad.abs().max())
