"""Regularisers are zero exactly where they should be; DSDH's discrete steps never go uphill."""

import math

import pytest
import torch
from torch import nn

from deephash_engine.deep import losses as L


def test_quantization_zero_only_on_binary_outputs():
    q = L.QuantizationPenalty()
    assert float(q(torch.tensor([[1.0, -1.0], [-1.0, 1.0]]))) == 0.0
    assert float(q(torch.tensor([[0.0, -1.0]]))) == pytest.approx(0.5)  # sign(0) = +1
    assert float(q(torch.tensor([[0.9, -1.0]]))) == pytest.approx(0.01 / 2)


def test_cauchy_quantization_zero_on_scaled_binary_rows():
    c = L.CauchyQuantization(gamma=2.0)
    assert float(c(torch.tensor([[3.0, -3.0, 3.0, 3.0], [0.5, 0.5, -0.5, -0.5]]))) == pytest.approx(0.0, abs=1e-7)
    row = [2.0, 1.0, -1.0, 1.0]
    cos = sum(abs(x) for x in row) / math.sqrt(sum(x * x for x in row)) / 2.0
    expected = math.log(1 + 4 / 2 * (1 - cos) / 2.0)
    assert float(c(torch.tensor([row], dtype=torch.float64))) == pytest.approx(expected, rel=1e-9)


def test_bit_balance_zero_iff_every_bit_averages_zero():
    b = L.BitBalance()
    balanced = torch.tensor([[1.0, -1.0, 1.0], [-1.0, 1.0, 1.0], [1.0, 1.0, -1.0], [-1.0, -1.0, -1.0]])
    assert float(b(balanced)) == 0.0
    skew = balanced.clone()
    skew[3, 0] = 1.0  # bit 0 now averages 0.5
    assert float(b(skew)) == pytest.approx(0.25 / 3)


def test_decorrelation_zero_iff_bits_uncorrelated():
    d = L.BitDecorrelation()
    # columns of a 4x4 Hadamard matrix without the constant one: mutually orthogonal, zero mean
    h = L.hadamard(4)[:, 1:]
    assert float(d(h)) == 0.0
    correlated = torch.stack([h[:, 0], h[:, 0], h[:, 1]], 1)  # bits 0 and 1 identical
    cov01 = float((h[:, 0] * h[:, 0]).sum() / 3)  # covariance of a zero-mean column with itself
    assert float(d(correlated)) == pytest.approx(2 * cov01 ** 2 / 6)
    with pytest.raises(ValueError, match="at least 2 rows"):
        d(torch.ones(1, 3))


def test_orthogonality_zero_iff_rows_orthonormal_and_not_registered():
    layer = nn.Linear(4, 2, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 0.6, 0.8, 0.0]]))
    pen = L.OrthogonalityPenalty(layer)
    assert float(pen(None).detach()) == pytest.approx(0.0, abs=1e-12)
    with torch.no_grad():
        layer.weight[1] = torch.tensor([1.0, 0.0, 0.0, 0.0])  # gram [[1,1],[1,1]]
    assert float(pen(None).detach()) == pytest.approx(2 / 4)
    assert list(pen.parameters()) == []
    loss = L.DHNLoss(2).add_regularizer(pen, weight=0.5)
    assert list(loss.parameters()) == []  # the layer's weight is not duplicated in the loss


def test_regularizer_weight_is_added_to_the_loss():
    u = torch.tensor([[0.5, -0.2], [0.3, 0.4], [-0.6, 0.1]], dtype=torch.float64)
    t = torch.eye(3, dtype=torch.float64)
    base = L.DSHLoss(2)(u, t)
    with_reg = L.DSHLoss(2).add_regularizer(L.BitBalance(), weight=2.0)(u, t)
    assert float(with_reg - base) == pytest.approx(2.0 * float(L.BitBalance()(u)))


def _random_problem(seed, n=30, k=8, c=4):
    g = torch.Generator().manual_seed(seed)
    U = torch.randn(n, k, generator=g, dtype=torch.float64)
    Y = torch.nn.functional.one_hot(torch.randint(0, c, (n,), generator=g), c).double()
    W = torch.randn(k, c, generator=g, dtype=torch.float64)
    B = torch.where(torch.rand(n, k, generator=g) < 0.5, -1.0, 1.0).double()
    return B, U, Y, W


@pytest.mark.parametrize("seed", range(5))
def test_dsdh_b_step_never_increases_its_objective(seed):
    B, U, Y, W = _random_problem(seed)
    mu, eta = 1.0, 0.7
    before = L.dsdh_b_objective(B, U, Y, W, mu, eta)
    values = [float(before)]
    for _ in range(4):
        B = L.dsdh_b_step(B, U, Y, W, mu, eta, sweeps=1)
        values.append(float(L.dsdh_b_objective(B, U, Y, W, mu, eta)))
    assert all(b <= a + 1e-9 for a, b in zip(values, values[1:]))
    assert values[-1] < values[0]  # it does move
    assert set(B.unique().tolist()) <= {-1.0, 1.0}
    # every bit is at its conditional optimum: flipping any single bit cannot help
    best = values[-1]
    for i in range(0, B.shape[0], 7):
        for k in range(B.shape[1]):
            flipped = B.clone()
            flipped[i, k] = -flipped[i, k]
            assert float(L.dsdh_b_objective(flipped, U, Y, W, mu, eta)) >= best - 1e-9


def test_dsdh_w_step_is_the_ridge_minimiser():
    B, _, Y, _ = _random_problem(7)
    mu, nu = 1.0, 0.1
    W = L.dsdh_w_step(B.t() @ B, B.t() @ Y, mu, nu)
    grad = -2 * mu * B.t() @ (Y - B @ W) + 2 * nu * W
    assert float(grad.abs().max()) < 1e-9


def test_dsdh_loss_keeps_incremental_sums_exact():
    torch.manual_seed(0)
    loss = L.DSDHLoss(6, num_train=12, num_classes=3, dcc_sweeps=2).double()
    for step in range(6):
        idx = torch.randperm(12)[:5]
        u = torch.randn(5, 6, dtype=torch.float64, requires_grad=True)
        t = torch.nn.functional.one_hot(idx % 3, 3).double()
        loss(u, t, idx).backward()
        assert u.grad is not None
    seen = loss.bank.seen
    B, Y = loss.B[seen].double(), loss.bank.Y[seen].double()
    assert torch.equal(loss.BtB, B.t() @ B)
    assert torch.equal(loss.BtY, B.t() @ Y)
    assert torch.allclose(loss.W, L.dsdh_w_step(loss.BtB, loss.BtY, loss.mu, loss.nu))


def plain_dcc(B, U, Y, W, mu, eta, sweeps):
    """DSDH's B step written out: bit by bit, sign(Q_k - mu * sum_{l != k} G_kl B_l)."""
    B = B.clone()
    Q = mu * (Y @ W.t()) + eta * U
    G = W @ W.t()
    for _ in range(sweeps):
        for k in range(B.shape[1]):
            others = B @ G[:, k] - B[:, k] * G[k, k]
            B[:, k] = L.sign_pm1(Q[:, k] - mu * others)
    return B


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("sweeps", [1, 3, 10])
def test_dsdh_b_step_equals_plain_coordinate_descent(seed, sweeps):
    B, U, Y, W = _random_problem(seed)
    start = B.clone()
    got = L.dsdh_b_step(B, U, Y, W, 1.0, 0.3, sweeps)
    assert torch.equal(got, plain_dcc(start, U, Y, W, 1.0, 0.3, sweeps))
    assert not torch.equal(got, start)  # it moved
    assert torch.equal(B, start)  # and left its input alone
    if sweeps == 10:  # converged: the early stop at a fixed point returned what 10 sweeps give
        assert torch.equal(L.dsdh_b_step(got, U, Y, W, 1.0, 0.3, 1), got)
