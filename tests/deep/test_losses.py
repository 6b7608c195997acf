"""Each loss against a value computed by explicit Python loops on tiny inputs, plus gradcheck."""

import math

import pytest
import torch

from deephash_engine.deep import losses as L

NB = 4  # bits
U = [
    [0.5, -1.2, 0.3, 0.9],
    [-0.7, 0.4, 1.1, -0.2],
    [0.8, -0.9, 0.1, 1.3],
    [-0.3, 0.6, -1.4, 0.05],
]
LABELS = [0, 1, 0, 2]  # samples 0 and 2 are similar, every other pair is not
NC = 3


def tensors(dtype=torch.float64):
    u = torch.tensor(U, dtype=dtype)
    target = torch.zeros(len(LABELS), NC, dtype=dtype)
    for i, c in enumerate(LABELS):
        target[i, c] = 1.0
    return u, target, torch.arange(len(LABELS))


def sim(i, j):
    return 1.0 if LABELS[i] == LABELS[j] else 0.0


def dot(a, b):
    return sum(x * y for x, y in zip(a, b))


def sgn(x):
    return 1.0 if x >= 0 else -1.0


def softplus(x):
    return math.log1p(math.exp(x))


def pairs_off_diagonal(n):
    return [(i, j) for i in range(n) for j in range(n) if i != j]


def quant_mean(rows):
    vals = [(x - sgn(x)) ** 2 for r in rows for x in r]
    return sum(vals) / len(vals)


def ref_pairwise_likelihood(rows, pairs):
    total = 0.0
    for i, j in pairs:
        theta = 0.5 * dot(rows[i], rows[j])
        total += softplus(theta) - sim(i, j) * theta
    return total / len(pairs)


def close(value, expected):
    assert float(value.detach()) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_dpsh_with_bank_matches_loops():
    u, t, idx = tensors()
    # the bank holds the 4 batch rows (seen); pairs include i == j
    pairs = [(i, j) for i in range(4) for j in range(4)]
    written = L.DPSHLoss(NB, num_train=10, num_classes=NC, eta=0.3, bank_pairs="written").double()
    close(written(u, t, idx), ref_pairwise_likelihood(U, pairs) + 0.3 * quant_mean(U))  # rows 4..9 ignored
    # the default, DeepHash-pytorch's: rows 4..9 are zero outputs with no label, log 2 a pair
    every = L.DPSHLoss(NB, num_train=10, num_classes=NC, eta=0.3).double()
    mean = (16 * ref_pairwise_likelihood(U, pairs) + 24 * math.log(2.0)) / 40
    close(every(u, t, idx), mean + 0.3 * quant_mean(U))


def test_dpsh_in_batch_and_dhn_match_loops():
    u, t, idx = tensors()
    pairs = pairs_off_diagonal(4)
    dpsh = L.DPSHLoss(NB, eta=0.5, memory_bank=False)
    close(dpsh(u, t, idx), ref_pairwise_likelihood(U, pairs) + 0.5 * quant_mean(U))
    dhn = L.DHNLoss(NB, alpha=0.2)
    logcosh = [math.log(math.cosh(abs(x) - 1.0)) for r in U for x in r]
    close(dhn(u, t), ref_pairwise_likelihood(U, pairs) + 0.2 * sum(logcosh) / len(logcosh))


def test_dsh_matches_loops_in_batch_and_with_bank():
    u, t, idx = tensors()
    m, alpha = 5.0, 0.05
    reg = sum(sum(abs(abs(x) - 1.0) for x in r) for r in U) / 4

    def ref(pairs):
        total = 0.0
        for i, j in pairs:
            d = sum((a - b) ** 2 for a, b in zip(U[i], U[j]))
            total += 0.5 * d if sim(i, j) else 0.5 * max(m - d, 0.0)
        return total / len(pairs) + alpha * reg

    close(L.DSHLoss(NB, margin=m, alpha=alpha)(u, t), ref(pairs_off_diagonal(4)))
    bank = L.DSHLoss(NB, margin=m, alpha=alpha, memory_bank=True, num_train=6, num_classes=NC)
    close(bank.double()(u, t, idx), ref([(i, j) for i in range(4) for j in range(4)]))
    assert L.DSHLoss(16).margin == 32.0


def test_hashnet_matches_loops_and_continuation():
    u, t, _ = tensors()
    loss = L.HashNetLoss(NB, step_size=2)
    assert loss.alpha == pytest.approx(10 / NB)
    pairs = pairs_off_diagonal(4)
    for it in range(5):
        beta = (1 + 0.005 * ((it // 2) * 2)) ** 0.5
        h = [[math.tanh(beta * x) for x in r] for r in U]
        n_sim = sum(sim(i, j) for i, j in pairs)
        w = {1.0: len(pairs) / n_sim, 0.0: len(pairs) / (len(pairs) - n_sim)}
        expected = 0.0
        for i, j in pairs:
            theta = loss.alpha * dot(h[i], h[j])
            expected += w[sim(i, j)] * (softplus(theta) - sim(i, j) * theta)
        close(loss(u, t), expected / len(pairs))
    assert int(loss.iteration) == 5
    loss.eval()
    loss(u, t)
    assert int(loss.iteration) == 5  # evaluation does not advance the schedule


def test_dch_matches_loops():
    u, t, _ = tensors()
    gamma, lam = 3.0, 0.2
    pairs = pairs_off_diagonal(4)

    def cosd(a, b):
        c = dot(a, b) / math.sqrt(dot(a, a) * dot(b, b))
        return NB / 2 * (1 - c)

    n_sim = sum(sim(i, j) for i, j in pairs)
    w = {1.0: len(pairs) / n_sim, 0.0: len(pairs) / (len(pairs) - n_sim)}
    total = 0.0
    for i, j in pairs:
        d = cosd(U[i], U[j])
        s = sim(i, j)
        total += w[s] * (s * math.log(1 + d / gamma) + (1 - s) * math.log(1 + gamma / d))
    quant = sum(math.log(1 + cosd([abs(x) for x in r], [1.0] * NB) / gamma) for r in U) / 4
    close(L.DCHLoss(NB, gamma=gamma, lambda_q=lam)(u, t), total / len(pairs) + lam * quant)


def test_csq_centres_and_value():
    h4 = L.hadamard(4)
    assert torch.equal(h4 @ h4.t(), 4 * torch.eye(4))
    centres = L.hash_centers(3, NB)
    assert torch.equal(centres, torch.cat([h4, -h4])[:3])
    bern = L.hash_centers(40, 8, seed=3)  # 40 > 2*8: Bernoulli, seeded
    assert torch.equal(bern, L.hash_centers(40, 8, seed=3))
    assert set(bern.unique().tolist()) == {-1.0, 1.0}
    u, t, _ = tensors()
    lam = 0.01
    loss = L.CSQLoss(NB, NC, lambda_q=lam)
    bce, quant = 0.0, 0.0
    for i, r in enumerate(U):
        c = centres[LABELS[i]].tolist()
        for x, ck in zip(r, c):
            p, q = (math.tanh(x) + 1) / 2, (ck + 1) / 2
            bce += -(q * math.log(p) + (1 - q) * math.log(1 - p))
            quant += (abs(math.tanh(x)) - 1) ** 2
    close(loss(u, t), bce / 16 + lam * quant / 16)
    # a multi-label sample's centre is the sign of the summed centres, ties from the fill vector
    both = torch.tensor([[1.0, 1.0, 0.0]])
    summed = centres[0] + centres[1]
    expect = torch.where(summed == 0, loss.tie_fill, torch.sign(summed))
    assert torch.equal(loss.sample_centers(both)[0], expect)


def test_greedyhash_value_and_straight_through_gradient():
    u, t, _ = tensors()
    loss = L.GreedyHashLoss(NB, NC, alpha=0.1).double()
    W = loss.classifier.weight.detach().tolist()
    ce = 0.0
    for i, r in enumerate(U):
        b = [sgn(x) for x in r]
        logits = [dot(W[c], b) for c in range(NC)]
        ce += -logits[LABELS[i]] + math.log(sum(math.exp(z) for z in logits))
    pen = sum(abs(abs(x) - 1) ** 3 for r in U for x in r) / 16
    close(loss(u, t), ce / 4 + 0.1 * pen)
    # straight-through: forward is sign with sign(0) = +1, backward passes the gradient unchanged
    x = torch.tensor([-2.0, -0.0, 0.0, 0.3], dtype=torch.float64, requires_grad=True)
    y = L.sign_straight_through(x)
    assert y.tolist() == [-1.0, 1.0, 1.0, 1.0]
    g = torch.tensor([0.5, -1.0, 2.0, 3.0], dtype=torch.float64)
    y.backward(g)
    assert torch.equal(x.grad, g)


def test_dlbhc_matches_loops():
    u, t, _ = tensors()
    loss = L.DLBHCLoss(NB, NC).double()
    W = loss.classifier.weight.detach().tolist()
    bias = loss.classifier.bias.detach().tolist()
    ce = 0.0
    for i, r in enumerate(U):
        h = [1 / (1 + math.exp(-x)) for x in r]
        logits = [dot(W[c], h) + bias[c] for c in range(NC)]
        ce += -logits[LABELS[i]] + math.log(sum(math.exp(z) for z in logits))
    close(loss(u, t), ce / 4)


@pytest.mark.parametrize("scale, average, self_positive",
                         [(0.5, "triplets", False), (1.0, "triplets", False), (1.0, "anchors", True),
                          (0.5, "anchors", False)])
def test_dtsh_matches_loops(scale, average, self_positive):
    u, t, _ = tensors()
    alpha, lam = 1.0, 0.5
    per_anchor = {}
    for i in range(4):
        for j in range(4):
            for k in range(4):
                if (j != i or self_positive) and sim(i, j) and not sim(i, k):
                    m = scale * dot(U[i], U[j]) - scale * dot(U[i], U[k]) - alpha
                    per_anchor.setdefault(i, []).append(-(m - math.log1p(math.exp(m))))
    every = [x for terms in per_anchor.values() for x in terms]
    # anchors 0 and 2 have one other positive and two negatives (4 triplets); counting the
    # anchor itself doubles those (8) and adds anchors 1 and 3, each with 3 negatives (6)
    assert len(every) == (14 if self_positive else 4)
    if average == "triplets":
        want = sum(every) / len(every)
    else:
        want = sum(sum(terms) / len(terms) for terms in per_anchor.values()) / len(per_anchor)
    loss = L.DTSHLoss(NB, alpha=alpha, lambda_q=lam, scale=scale, average=average, self_positive=self_positive)
    close(loss(u, t), want + lam * quant_mean(U))


def test_dtsh_checks_its_arguments():
    with pytest.raises(ValueError, match="scale: expected > 0"):
        L.DTSHLoss(NB, scale=0.0)
    with pytest.raises(ValueError, match="average: expected one of"):
        L.DTSHLoss(NB, average="pairs")


def loss_factories():
    return {
        "dpsh": lambda: L.DPSHLoss(NB, num_train=8, num_classes=NC),
        "dhn": lambda: L.DHNLoss(NB),
        "dsh": lambda: L.DSHLoss(NB),
        "hashnet": lambda: L.HashNetLoss(NB),
        "dch": lambda: L.DCHLoss(NB),
        "csq": lambda: L.CSQLoss(NB, NC),
        "greedyhash": lambda: L.GreedyHashLoss(NB, NC),
        "dsdh": lambda: L.DSDHLoss(NB, num_train=8, num_classes=NC),
        "dtsh": lambda: L.DTSHLoss(NB),
        "dlbhc": lambda: L.DLBHCLoss(NB, NC),
    }


@pytest.mark.parametrize("name", sorted(loss_factories()))
def test_gradcheck_float64(name):
    u, t, idx = tensors()
    loss = loss_factories()[name]().double()
    loss(u, t, idx)  # fill any per-sample state once, then freeze it for gradcheck
    loss.eval()
    if name == "greedyhash":
        # sign is piecewise constant; the STE gradient is checked above, here the smooth part
        def fn(x):
            return loss.classifier(x).logsumexp(1).sum() + loss.alpha * (x.abs() - 1).abs().pow(3).mean()
    else:
        def fn(x):
            return loss(x, t, idx)
    x = u.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(fn, (x,), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", sorted(loss_factories()))
def test_backward_reaches_inputs_and_loss_parameters(name):
    u, t, idx = tensors(torch.float32)
    loss = loss_factories()[name]()
    x = u.clone().requires_grad_(True)
    loss(x, t, idx).backward()
    assert x.grad is not None and bool(x.grad.abs().sum() > 0)
    for p in loss.parameters():
        assert p.grad is not None and bool(p.grad.abs().sum() > 0)


def test_bank_losses_need_index_and_validate_shapes():
    u, t, idx = tensors()
    with pytest.raises(ValueError, match="index"):
        L.DPSHLoss(NB, num_train=8, num_classes=NC)(u, t)
    with pytest.raises(ValueError, match=r"u: expected shape \(batch, 8\)"):
        L.DPSHLoss(8, memory_bank=False)(u, t)
    with pytest.raises(IndexError, match="index"):
        L.DPSHLoss(NB, num_train=2, num_classes=NC)(u, t, idx)
    with pytest.raises(ValueError, match="num_train"):
        L.DPSHLoss(NB)


def test_dpsh_bank_with_multi_hot_labels_matches_loops():
    u, _, idx = tensors()
    multi = [[1, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1]]
    t = torch.tensor(multi, dtype=torch.float64)

    def s(i, j):
        return 1.0 if dot(multi[i], multi[j]) > 0 else 0.0

    total = 0.0
    for i in range(4):
        for j in range(4):
            theta = 0.5 * dot(U[i], U[j])
            total += softplus(theta) - s(i, j) * theta
    loss = L.DPSHLoss(NB, num_train=4, num_classes=NC, eta=0.0).double()
    close(loss(u, t, idx), total / 16)
    # and the closed-form gradient of the bank path equals autograd through the same formula
    loss.eval()
    x = u.clone().requires_grad_(True)
    loss(x, t, idx).backward()
    y = u.clone().requires_grad_(True)
    v = loss.bank.U.clone()
    theta = 0.5 * y @ v.t()
    sm = (t @ t.t() > 0).double()
    (torch.nn.functional.softplus(theta) - sm * theta).mean().backward()
    assert torch.allclose(x.grad, y.grad, atol=1e-12)
