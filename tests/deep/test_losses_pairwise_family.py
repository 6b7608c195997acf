"""LCDSH, DFH, DBDH, QSMIH, ISDH, IDHN, DSHSD and DPN (with DPN-A and DPN-T): values against
explicit loops on tiny inputs, gradcheck, invariants, registration, and a short training run each
that must beat random codes."""

import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from deephash_engine.deep import losses as L
from deephash_engine.deep.losses import base
from toy_images import quadrant_images

NB = 4
U = [
    [0.5, -1.2, 0.3, 0.9],
    [-0.7, 0.4, 1.1, -0.2],
    [0.8, -0.9, 0.1, 1.3],
    [-0.3, 0.6, -1.4, 0.05],
]
LABELS = [0, 1, 0, 2]
NC = 3
# multi-hot rows: cos similarities 1 (rows 0, 3), 0 (rows 1, 2) and fractions (1/2, 1/sqrt(2), ...)
MULTI = [[1, 1, 0], [0, 0, 1], [1, 0, 0], [1, 1, 0]]

NEW_METHODS = ["lcdsh", "dfh", "dbdh", "qsmih", "isdh", "idhn", "dshsd", "dpn", "dpn-a", "dpn-t"]


def tensors(labels=None, dtype=torch.float64):
    u = torch.tensor(U, dtype=dtype)
    if labels is None:
        target = F.one_hot(torch.tensor(LABELS), NC).to(dtype)
    else:
        target = torch.tensor(labels, dtype=dtype)
    return u, target, torch.arange(len(U))


def dot(a, b):
    return float(np.dot(a, b))


def softplus(x):
    return math.log1p(math.exp(x))


def sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


def sgn(x):  # the engine's sign: 0 counts as +1
    return 1.0 if x >= 0 else -1.0


def sim(i, j, labels=LABELS):
    return 1.0 if labels[i] == labels[j] else 0.0


def cos_labels(a, b):
    return dot(a, b) / math.sqrt(dot(a, a) * dot(b, b))


def close(value, expected, rel=1e-9):
    assert float(value.detach()) == pytest.approx(expected, rel=rel, abs=1e-12)


ALL_PAIRS = [(i, j) for i in range(4) for j in range(4)]
OFF_DIAGONAL = [(i, j) for i, j in ALL_PAIRS if i != j]


# -- values against loops ------------------------------------------------------------------------

def test_lcdsh_matches_loops():
    u, t, _ = tensors()
    lam = 3.0
    total = 0.0
    for i, j in OFF_DIAGONAL:
        theta = 0.5 * dot(U[i], U[j])
        s = 1.0 if sim(i, j) else -1.0
        theta_b = 0.5 * dot([sgn(x) for x in U[i]], [sgn(x) for x in U[j]])
        total += math.log1p(math.exp(-s * theta)) + lam * (sigmoid(theta) - sigmoid(theta_b)) ** 2
    close(L.LCDSHLoss(NB, lambda_q=lam)(u, t), total / len(OFF_DIAGONAL))


@pytest.mark.parametrize("p, bank_pairs", [(1, "all"), (2, "all"), (2, "written")])
def test_dbdh_with_bank_matches_loops(p, bank_pairs):
    u, t, idx = tensors()
    alpha = 0.3
    h = [[min(1.0, max(-1.0, x)) for x in r] for r in U]
    likelihood = sum(softplus(0.5 * dot(h[i], h[j])) - sim(i, j) * 0.5 * dot(h[i], h[j])
                     for i, j in ALL_PAIRS)
    if bank_pairs == "all":  # (the default) the 5 unwritten rows of 9: theta 0, log 2 a pair
        likelihood = (likelihood + 4 * 5 * math.log(2.0)) / (4 * 9)
    else:
        likelihood /= 16
    balance = sum(abs(sum(r) / NB) ** p for r in h) / 4
    kwargs = {} if bank_pairs == "all" else {"bank_pairs": bank_pairs}
    loss = L.DBDHLoss(NB, num_train=9, num_classes=NC, alpha=alpha, p=p, **kwargs).double()
    close(loss(u, t, idx), likelihood + alpha * balance)
    assert torch.equal(loss.bank.U[:4], u.clamp(-1, 1))  # the bank holds the relaxed outputs
    with pytest.raises(ValueError, match="p: expected 1 or 2, got 3"):
        L.DBDHLoss(NB, num_train=9, num_classes=NC, p=3)


def dfh_pairs(rows, m, pairs):
    total = 0.0
    for i, j in pairs:
        theta = 0.5 * dot(rows[i], rows[j])
        total += softplus(m - theta) if sim(i, j) else softplus(m + theta)
    return total / len(pairs)


def test_dfh_value_codes_and_centre_step_match_loops():
    u, t, idx = tensors()
    m, mu, eta = 2.0, 0.7, 0.4
    loss = L.DFHLoss(NB, num_train=6, num_classes=NC, margin=m, mu=mu, eta=eta).double()
    centres = [[1, -1, 1], [-1, -1, 1], [1, 1, -1], [1, -1, -1]]  # nbits x classes
    loss.C.copy_(torch.tensor(centres, dtype=torch.float64))
    b = [[sgn(mu * centres[k][LABELS[i]] + U[i][k]) for k in range(NB)] for i in range(4)]
    assert any(b[i][k] != sgn(U[i][k]) for i in range(4) for k in range(NB))  # centres flip bits
    quant = sum((b[i][k] - U[i][k]) ** 2 for i in range(4) for k in range(NB)) / 16
    close(loss(u, t, idx), dfh_pairs(U, m, ALL_PAIRS) + eta * quant)
    # the centre step ran once from V = 0 on this batch's labels and codes
    expected_v = L.dfh_centre_step(torch.zeros(NB, NC, dtype=torch.float64), t.t(),
                                   torch.tensor(b, dtype=torch.float64).t(), 1.0, 1.0)
    assert torch.allclose(loss.V, expected_v, atol=1e-12)
    assert torch.equal(loss.C, torch.where(expected_v >= 0, 1.0, -1.0).double())
    # in-batch variant: ordered pairs i != j
    in_batch = L.DFHLoss(NB, num_classes=NC, margin=m, mu=mu, eta=0.0, memory_bank=False).double()
    close(in_batch(u, t), dfh_pairs(U, m, OFF_DIAGONAL))


@pytest.mark.parametrize("steps", [1, 160, 200])
def test_dfh_closed_form_centre_step_equals_autograd_descent(steps):
    gen = torch.Generator().manual_seed(steps)
    K, C, n = 6, 3, 9
    Y = F.one_hot(torch.randint(C, (n,), generator=gen), C).double().t()
    B = torch.where(torch.rand(K, n, generator=gen) < 0.5, -1.0, 1.0).double()
    V0 = 0.3 * torch.randn(K, C, generator=gen, dtype=torch.float64)
    vul, nta = 0.8, 1.3
    V = V0.clone().requires_grad_(True)
    for step in range(steps):  # the reference: plain gradient descent through autograd
        rate = 0.03 if step < 149 else (0.003 if step < 179 else 0.0003)
        grad, = torch.autograd.grad(L.dfh_centre_objective(V, Y, B, vul, nta), V)
        V = (V - rate * grad).detach().requires_grad_(True)
    got = L.dfh_centre_step(V0, Y, B, vul, nta, steps)
    assert torch.allclose(got, V.detach(), atol=1e-11)
    assert float(L.dfh_centre_objective(got, Y, B, vul, nta)) < float(L.dfh_centre_objective(V0, Y, B, vul, nta))


@pytest.mark.parametrize("multi_hot", [False, True])
def test_margin_likelihood_bank_path_matches_autograd_and_float32_kernel(monkeypatch, multi_hot):
    """The closed-form bank path with a margin, small blocks, float64 and float32."""
    monkeypatch.setattr(base, "BANK_BLOCK", 5)
    gen = torch.Generator().manual_seed(3)
    n, batch = 13, 4
    y = F.one_hot(torch.randint(NC, (n,), generator=gen), NC).double()
    if multi_hot:
        y = ((y + (torch.rand(n, NC, generator=gen, dtype=torch.float64) < 0.4)) > 0).double()
    v = 2.0 * torch.randn(n, NB, generator=gen, dtype=torch.float64)
    u = 2.0 * torch.randn(batch, NB, generator=gen, dtype=torch.float64)
    target = y[:batch]
    m = 3.0
    x = u.clone().requires_grad_(True)
    got = L.functional.pairwise_likelihood(x, v, target, y, None, margin=m)
    got.backward()
    ref_x = u.clone().requires_grad_(True)
    s = (target @ y.t() > 0).double()
    theta = 0.5 * ref_x @ v.t()
    want = (s * F.softplus(m - theta) + (1 - s) * F.softplus(m + theta)).mean()
    want.backward()
    assert float(abs(got.detach() - want.detach())) < 1e-12 and torch.allclose(x.grad, ref_x.grad, atol=1e-12)
    x32 = u.float().requires_grad_(True)
    got32 = L.functional.pairwise_likelihood(x32, v.float(), target.float(), y.float(), None, margin=m)
    got32.backward()
    assert float(got32.detach()) == pytest.approx(float(want.detach()), rel=1e-5)
    assert torch.allclose(x32.grad.double(), ref_x.grad, atol=1e-5)


@pytest.mark.parametrize("square_clamp, regularize", [(True, "normalized"), (False, "normalized"),
                                                     (True, "outputs")])
def test_qsmih_matches_loops(square_clamp, regularize):
    u, t, _ = tensors()
    alpha = 0.05
    z = [[x / math.sqrt(dot(r, r)) for x in r] for r in U]
    n_sim = sum(sim(i, j) for i, j in ALL_PAIRS)
    M = 16 / n_sim
    total = 0.0
    for i, j in ALL_PAIRS:
        k = 0.5 * (dot(z[i], z[j]) + 1)
        d = sim(i, j)
        total += (d * k - 1) ** 2 + k * k / M if square_clamp else k / M - d * k
    pulled = z if regularize == "normalized" else U  # the default: the normalised outputs
    reg = sum(abs(abs(x) - 1) for r in pulled for x in r) / 16
    kwargs = {} if regularize == "normalized" else {"regularize": regularize}
    close(L.QSMIHLoss(NB, alpha=alpha, square_clamp=square_clamp, **kwargs)(u, t), total / 16 + alpha * reg)
    with pytest.raises(ValueError, match="regularize: expected one of"):
        L.QSMIHLoss(NB, regularize="codes")


def soft_reference(soft_term, hard_weight, beta):
    """Mean over all 16 pairs of the ISDH/IDHN pair terms on MULTI labels, plus the regulariser."""
    h = [[x / (1 + abs(x)) for x in r] for r in U]
    fractional = 0
    total = 0.0
    for i, j in ALL_PAIRS:
        s = cos_labels(MULTI[i], MULTI[j])
        inner = dot(h[i], h[j])
        theta = beta / NB * inner
        if s < 0.01 or s > 0.99:
            total += hard_weight * (softplus(theta) - s * theta)
        else:
            fractional += 1
            total += soft_term(s, theta, inner)
    assert fractional == 4  # the fixture has fractional similarities (pairs 0-2 and 2-3)
    reg = sum(abs(abs(x) - 1) for r in h for x in r) / 16
    return total / 16, reg


def test_isdh_matches_loops_on_multi_label_targets():
    u, t, _ = tensors(MULTI)
    beta, gamma, lam = 5.0, 10.0, 0.2
    pairs, reg = soft_reference(lambda s, theta, inner: (s - sigmoid(theta)) ** 2, gamma, beta)
    close(L.ISDHLoss(NB, beta=beta, gamma=gamma, lambda_q=lam)(u, t), pairs + lam * reg)


def test_idhn_matches_loops_on_multi_label_targets():
    u, t, _ = tensors(MULTI)
    beta, gamma, lam = 5.0, 0.1, 0.2

    def soft(s, theta, inner):  # the authors' form: gamma * K * ((<h_i, h_j> + K) / 2K - s)^2
        return gamma * NB * ((inner + NB) / (2 * NB) - s) ** 2

    pairs, reg = soft_reference(soft, 1.0, beta)
    close(L.IDHNLoss(NB, beta=beta, gamma=gamma, lambda_q=lam)(u, t), pairs + lam * reg)


def test_soft_similarity_is_the_label_cosine():
    _, t, _ = tensors(MULTI)
    s = L.functional.soft_similarity(t, t)
    for i, j in ALL_PAIRS:
        assert float(s[i, j]) == pytest.approx(cos_labels(MULTI[i], MULTI[j]), rel=1e-12)
    assert float(L.functional.soft_similarity(torch.zeros(1, 3, dtype=t.dtype), t).abs().sum()) == 0.0


@pytest.mark.parametrize("multi", [False, True])
def test_dshsd_matches_loops(multi):
    labels = MULTI if multi else [[1.0 if c == k else 0.0 for k in range(NC)] for c in LABELS]
    u, t, _ = tensors(labels)
    alpha, m = 0.3, 5.0
    loss = L.DSHSDLoss(NB, NC, alpha=alpha, margin=m).double()
    W = loss.classifier.weight.detach().tolist()
    h = [[math.tanh(x) for x in r] for r in U]
    pair = 0.0
    for i, j in ALL_PAIRS:
        d = sum((a - b) ** 2 for a, b in zip(h[i], h[j]))
        share = dot(labels[i], labels[j]) > 0
        pair += 0.5 * d if share else 0.5 * max(m - d, 0.0)
    ce = 0.0
    for i in range(4):
        logits = [dot(W[c], h[i]) for c in range(NC)]
        if multi:
            ce += sum(-(y * math.log(sigmoid(z)) + (1 - y) * math.log(1 - sigmoid(z)))
                      for y, z in zip(labels[i], logits)) / NC
        else:
            ce += -logits[LABELS[i]] + math.log(sum(math.exp(z) for z in logits))
    close(loss(u, t), ce / 4 + alpha * pair / 16)
    assert L.DSHSDLoss(16, NC).margin == 32.0


def test_dshsd_classifier_is_optimised_by_the_trainer():
    from deephash_engine.deep.models import build_model
    from deephash_engine.deep.trainer import build_optimizer

    model = build_model("small_cnn", NB, in_channels=1, image_size=8)
    loss = L.DSHSDLoss(NB, NC)
    opt = build_optimizer(model, loss, "adam", 1e-2)
    optimised = {id(p) for g in opt.param_groups for p in g["params"]}
    assert id(loss.classifier.weight) in optimised
    u, t, _ = tensors(dtype=torch.float32)
    before = loss.classifier.weight.detach().clone()
    opt.zero_grad()
    loss(u.requires_grad_(True), t).backward()
    opt.step()
    assert not torch.equal(before, loss.classifier.weight.detach())


# -- DPN -----------------------------------------------------------------------------------------

def test_dpn_targets_are_seeded_buffers_and_value_matches_loops():
    u, t, _ = tensors()
    m = 0.8
    loss = L.DPNLoss(NB, NC, margin=m, seed=5).double()
    again = L.DPNLoss(NB, NC, margin=m, seed=5)
    assert torch.equal(loss.targets.float(), again.targets)
    assert not torch.equal(again.targets, L.DPNLoss(NB, NC, seed=6).targets)
    assert {"targets", "tie_fill"} <= set(loss.state_dict())
    big = L.random_targets(200, 64, seed=1)[0]
    assert set(big.unique().tolist()) == {-1.0, 1.0} and abs(float(big.mean())) < 0.05
    assert len({float(r.sum()) for r in big}) > 1  # independent entries: rows are not all balanced
    for nbits in (7, 16):
        targets, fill = L.random_targets(50, nbits, seed=1, balanced=True)
        # exactly nbits // 2 entries -1 in every target and in the tie fill, at varying places
        assert all(int((r < 0).sum()) == nbits // 2 for r in torch.cat([targets, fill[None]]))
        assert len({tuple(r.tolist()) for r in targets}) > 20  # of C(7, 3) = 35 or C(16, 8)
        assert torch.equal(targets, L.random_targets(50, nbits, seed=1, balanced=True)[0])
    assert int((L.DPNLoss(16, NC, balanced=True).targets < 0).sum()) == 8 * NC
    T = loss.targets.tolist()
    expected = sum(max(m - U[i][k] * T[LABELS[i]][k], 0.0) for i in range(4) for k in range(NB)) / 16
    close(loss(u, t), expected)


def test_dpn_multi_label_target_is_the_sign_of_the_sum_with_seeded_ties():
    loss = L.DPNLoss(8, NC, seed=2)
    both = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0], [0.0, 0.0, 1.0]])
    got = loss.sample_targets(both)
    T, fill = loss.targets, loss.tie_fill
    pair = T[0] + T[1]
    assert torch.equal(got[0], torch.where(pair == 0, fill, torch.sign(pair)))
    assert torch.equal(got[1], torch.sign(T[0] + T[1] + T[2]))  # three +-1 never sum to 0
    assert torch.equal(got[2], T[2])
    assert bool((pair == 0).any())  # the tie rule was exercised


def test_dpn_ternary_forward_and_straight_through_gradient():
    m = 0.5
    x = torch.tensor([[0.2, -0.7, 0.5, 1.5]], dtype=torch.float64, requires_grad=True)
    assert L.ternary_assignment(x, m).tolist() == [[0.0, -1.0, 0.0, 1.0]]
    loss = L.DPNTernaryLoss(4, 1, margin=m).double()
    loss.targets.copy_(torch.tensor([[1.0, 1.0, -1.0, 1.0]]))
    value = loss(x, torch.ones(1, 1, dtype=torch.float64))
    # hinge on T(u) * t = [0, -1, 0, 1] -> [0.5, 1.5, 0.5, 0]
    close(value, (0.5 + 1.5 + 0.5 + 0.0) / 4)
    value.backward()
    assert x.grad.tolist() == [[-0.25, -0.25, 0.25, 0.0]]  # -t/4 where the hinge is active


@pytest.mark.parametrize("m", [0.4, 1.0])
def test_dpn_ternary_trains_as_dpn_for_margins_up_to_one(m):
    gen = torch.Generator().manual_seed(4)
    u = 2.0 * torch.randn(6, 8, generator=gen, dtype=torch.float64)
    t = F.one_hot(torch.arange(6) % NC, NC).double()
    grads = []
    for cls in (L.DPNLoss, L.DPNTernaryLoss):
        x = u.clone().requires_grad_(True)
        cls(8, NC, margin=m).double()(x, t).backward()
        grads.append(x.grad)
    assert torch.equal(grads[0], grads[1]) and bool(grads[0].abs().sum() > 0)
    wide = []
    for cls in (L.DPNLoss, L.DPNTernaryLoss):  # past 1 they differ: T(u) t = 1 < m keeps pushing
        x = u.clone().requires_grad_(True)
        cls(8, NC, margin=1.5).double()(x, t).backward()
        wide.append(x.grad)
    assert not torch.equal(wide[0], wide[1])


def test_dpn_adaptive_updates_targets_from_the_bank_each_epoch():
    u, t, idx = tensors()
    m = 0.6
    loss = L.DPNAdaptiveLoss(NB, NC, num_train=6, margin=m, seed=1).double()
    old = loss.targets.clone()
    loss(u, t, idx)
    assert torch.equal(loss.targets, old)  # only the epoch end moves the targets
    loss.on_epoch_end(0)
    tern = [[sgn(x) if abs(x) > m else 0.0 for x in r] for r in U]
    for c in range(NC):
        for k in range(NB):
            total = sum(tern[i][k] for i in range(4) if LABELS[i] == c)
            want = float(old[c, k]) if total == 0 else sgn(total)
            assert float(loss.targets[c, k]) == want, (c, k)
    assert not torch.equal(loss.targets, old)
    every_two = L.DPNLoss(NB, NC, num_train=6, adaptive=True, update_every=2).double()
    before = every_two.targets.clone()
    every_two(u, t, idx)
    every_two.on_epoch_end(0)
    assert torch.equal(every_two.targets, before)
    with pytest.raises(ValueError, match="num_train"):
        L.DPNLoss(NB, NC, adaptive=True)


# -- gradients, invariants, registration -----------------------------------------------------------

def factories():
    return {
        "lcdsh": lambda: L.LCDSHLoss(NB),
        "dfh": lambda: L.DFHLoss(NB, num_train=8, num_classes=NC),
        "dbdh": lambda: L.DBDHLoss(NB, num_train=8, num_classes=NC),
        "qsmih": lambda: L.QSMIHLoss(NB),
        "isdh": lambda: L.ISDHLoss(NB),
        "idhn": lambda: L.IDHNLoss(NB),
        "dshsd": lambda: L.DSHSDLoss(NB, NC),
        "dpn": lambda: L.DPNLoss(NB, NC),
        "dpn-a": lambda: L.DPNAdaptiveLoss(NB, NC, num_train=8),
        "dpn-t": lambda: L.DPNTernaryLoss(NB, NC),
    }


@pytest.mark.parametrize("name", sorted(factories()))
def test_gradcheck_float64(name):
    labels = MULTI if name in ("isdh", "idhn") else None
    u, t, idx = tensors(labels)
    loss = factories()[name]().double()
    loss(u, t, idx)  # fill per-sample state once, then freeze it
    loss.eval()
    x = u.clone().requires_grad_(True)
    if name == "dpn-t":  # piecewise constant forward: check the straight-through gradient instead
        loss(x, t, idx).backward()
        t_vec = loss.sample_targets(t)
        active = (loss.margin - L.ternary_assignment(u, loss.margin) * t_vec) > 0
        assert torch.equal(x.grad, torch.where(active, -t_vec, 0.0) / u.numel())
        return
    assert torch.autograd.gradcheck(lambda y: loss(y, t, idx), (x,), eps=1e-6, atol=1e-6)


def perfect_and_random(nbits=8, n=8, scale=3.0, seed=0):
    """Outputs of magnitude ``scale`` that are one Hadamard code per class, and random ones."""
    labels = torch.arange(n) % 4
    codes = L.hadamard(nbits)[labels].double()
    gen = torch.Generator().manual_seed(seed)
    random = torch.where(torch.rand(n, nbits, generator=gen) < 0.5, -1.0, 1.0).double()
    return scale * codes, scale * random, F.one_hot(labels, 4).double(), torch.arange(n)


@pytest.mark.parametrize("name", NEW_METHODS)
def test_a_perfect_code_scores_lower_than_a_random_one(name):
    from deephash_engine.deep.methods import build_loss

    perfect, random, target, index = perfect_and_random()

    def value(u):
        loss = build_loss(name, 8, 8, 4).double()
        if hasattr(loss, "targets"):  # DPN: the perfect code is each class's target
            u = u.abs() * loss.targets[target.argmax(1)] if u is perfect else u
        if isinstance(loss, L.DSHSDLoss):  # a classifier that reads the class codes
            loss.classifier.weight.data.copy_(L.hadamard(8)[:4].double())
        return float(loss(u, target, index).detach())

    assert value(perfect) < value(random) - 1e-3, name


@pytest.mark.parametrize("name", NEW_METHODS)
def test_build_loss_and_the_cli_accept_each_method(name, monkeypatch, tmp_path, capsys):
    from deephash_engine.cli import main
    from deephash_engine.deep import run
    from deephash_engine.deep.methods import METHODS, build_loss

    assert name in METHODS
    seen = {}

    def fake_train_run(cfg, out, resume=False, progress=True):
        seen["loss"] = build_loss(cfg.method, cfg.nbits, 50, 10, **cfg.loss_params)
        return {"map": {"all": 0.5}, "selected_epoch": 0, "train_seconds": 0.0}

    monkeypatch.setattr(run, "train_run", fake_train_run)
    rc = main(["train", "--method", name, "--dataset", "fashion-mnist-mini", "--bits", "12",
               "--epochs", "1", "--out", str(tmp_path / name), "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    assert seen["loss"].method == name and seen["loss"].nbits == 12
    with pytest.raises(ValueError, match="unknown \\['nope'\\]"):
        build_loss(name, 8, 50, 10, nope=1)


def test_dpn_variants_through_params_equal_the_registered_names():
    from deephash_engine.deep.methods import build_loss

    a = build_loss("dpn", 8, 20, 3, adaptive=True, balanced=True)
    b = build_loss("dpn-a", 8, 20, 3)
    assert a.adaptive and b.adaptive and a.bank is not None and torch.equal(a.targets, b.targets)
    # dpn-a draws balanced first targets (4 of 8 entries -1 in each), dpn independent ones
    assert b.balanced and all(int((r < 0).sum()) == 4 for r in b.targets)
    assert not build_loss("dpn", 8, 20, 3, adaptive=True).balanced
    unbalanced = build_loss("dpn-a", 8, 20, 3, balanced=False)
    assert not unbalanced.balanced
    assert torch.equal(unbalanced.targets, build_loss("dpn", 8, 20, 3, adaptive=True).targets)
    assert build_loss("dpn", 8, 20, 3, ternary=True).ternary and build_loss("dpn-t", 8, 20, 3).ternary


# -- a short training run each -------------------------------------------------------------------

def toy(n, seed):
    """Faint quadrants: learnable in a few steps, but not separated by an untrained network."""
    return quadrant_images(n, seed, contrast=30)


@pytest.fixture(scope="module")
def toy_data():
    from deephash_engine.deep.data import ArrayHashingDataset

    images, t = toy(96, 0)
    q_images, q_t = toy(32, 1)
    norm = dict(mean=(0.3,), std=(0.3,))
    return ArrayHashingDataset(images, t, **norm), ArrayHashingDataset(q_images, q_t, **norm)


@pytest.mark.parametrize("name", NEW_METHODS)
def test_short_training_beats_random_codes(name, toy_data):
    from deephash_engine.deep.evaluation import encode, pack_codes
    from deephash_engine.deep.methods import build_loss
    from deephash_engine.deep.models import build_model
    from deephash_engine.deep.trainer import Trainer, build_optimizer
    from deephash_engine.metrics import mean_average_precision

    train, query = toy_data
    torch.manual_seed(0)
    nbits = 16
    model = build_model("small_cnn", nbits, in_channels=1, image_size=8)
    loss = build_loss(name, nbits, len(train), 4)
    opt = build_optimizer(model, loss, "adam", 1e-2)

    def current_map():
        q, ql = encode(model, query, progress=False)
        d, dl = encode(model, train, progress=False)
        return mean_average_precision(q, d, ql, dl), ql, dl

    untrained, ql, dl = current_map()  # the faint quadrants keep an untrained network near 0.46
    Trainer(model, loss, train, opt, batch_size=32, seed=0, progress=False).fit(4)
    trained = current_map()[0]
    rng = np.random.default_rng(0)
    rq = pack_codes(rng.standard_normal((len(ql), nbits)))
    rd = pack_codes(rng.standard_normal((len(dl), nbits)))
    baseline = mean_average_precision(rq, rd, ql, dl)  # random codes: about 0.28
    assert trained > max(baseline, untrained) + 0.3, (name, trained, untrained, baseline)
