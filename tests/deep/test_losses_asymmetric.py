"""CNNH, ADSH, DAPH and PCDH: the losses that need more than one batch (target codes learned
from every label, discrete database codes, per-sample codes of two streams), and the hooks that
serve them (``HashLoss.prepare``, ``HashLoss.database_codes``)."""

import itertools
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from deephash_engine import pack_bits
from deephash_engine.datasets import fashion_mnist_dir
from deephash_engine.deep import losses as L
from deephash_engine.deep.checkpoints import load_checkpoint
from deephash_engine.deep.data.datasets import dataset_targets
from deephash_engine.deep.evaluation import encode, with_loss_codes
from deephash_engine.deep.losses.daph import asymmetric_likelihood
from deephash_engine.deep.methods import build_loss
from deephash_engine.deep.models import build_model
from deephash_engine.deep.run import train_run, training_positions
from deephash_engine.deep.trainer import Trainer, build_optimizer, train_step
from deephash_engine.metrics import mean_average_precision

sys.path.insert(0, str(Path(__file__).parent))
from test_trainer import _toy, test_resume_continues_identically as resume_check  # noqa: E402

NB, NC = 4, 3


def labels(n, multi_hot=False, seed=0):
    rng = np.random.default_rng(seed)
    y = np.eye(NC)[rng.integers(0, NC, n)]
    if multi_hot:
        y = np.maximum(y, np.eye(NC)[rng.integers(0, NC, n)])
    return y


def signed_s(ya, yb, dissimilar=1.0):
    return np.where(ya @ yb.T > 0, 1.0, -dissimilar)


def close(got, want, tol=1e-9):
    got = got.detach() if isinstance(got, torch.Tensor) else got
    assert float(got) == pytest.approx(float(want), rel=tol, abs=tol)


# -- hooks ----------------------------------------------------------------------------------

def test_default_hooks_do_nothing_and_database_rows_come_from_the_loss():
    plain = L.DHNLoss(NB)
    plain.prepare(torch.eye(NC))  # a no-op
    assert plain.database_codes(torch.arange(2)) is None
    out = np.arange(12, dtype=np.float32).reshape(3, 4) - 5
    assert with_loss_codes(out, plain, [0, 1, 2]) is out

    adsh = L.ADSHLoss(NB, num_train=4, num_classes=NC)
    adsh.V.copy_(torch.tensor([[1, 1, 1, 1], [-1, -1, -1, -1], [1, -1, 1, -1], [-1, 1, -1, 1.0]]))
    assert adsh.database_codes(torch.arange(2)) is None  # no V step yet: V holds no codes
    adsh.steps.fill_(1)
    got = with_loss_codes(out, adsh, [-1, 2, 0])
    assert np.array_equal(got[0], out[0])
    assert got[1].tolist() == [1, -1, 1, -1] and got[2].tolist() == [1, 1, 1, 1]
    adsh.eval_codes = "network"
    assert with_loss_codes(out, adsh, [-1, 2, 0]) is out
    with pytest.raises(ValueError, match="train_index: expected shape"):
        with_loss_codes(out, adsh, [0, 1])


def test_dataset_targets_reads_the_labels_with_or_without_a_targets_tensor():
    data = _toy(10)
    assert torch.equal(dataset_targets(data), data.targets)

    class Plain(torch.utils.data.Dataset):  # no ``targets`` attribute: read through a loader
        def __len__(self):
            return 10

        def __getitem__(self, i):
            return data.inputs[i], data.targets[i], i

    assert torch.equal(dataset_targets(Plain()), data.targets)


def test_training_positions():
    got = training_positions(np.array([5, 2, 9]), np.array([9, 1, 5, 2, 10]))
    assert got.tolist() == [2, -1, 0, 1, -1]
    assert training_positions(np.array([], dtype=np.int64), np.array([3])).tolist() == [-1]


# -- CNNH -----------------------------------------------------------------------------------

def plain_stage_one(Y, q, sweeps, seed):
    """The same coordinate descent (same visiting order) with R = H H^T - q S formed in full."""
    rng = np.random.default_rng(seed)
    n = Y.shape[0]
    H = rng.uniform(-1.0, 1.0, (n, q))
    S = signed_s(Y, Y)
    for _ in range(sweeps):
        for i in rng.permutation(n):
            for j in rng.permutation(q):
                R = H @ H.T - q * S
                h, g = H[i, j], R[i] @ H[:, j]
                a = H[:, j] @ H[:, j] + h * h + R[i, i]
                d = -g / a if a > 0 else (-1.0 - h if g > 0 else 1.0 - h)
                trial = H.copy()
                trial[i, j] = h + min(max(d, -1.0 - h), 1.0 - h)
                if ((trial @ trial.T - q * S) ** 2).sum() < (R ** 2).sum():
                    H = trial
    return H


@pytest.mark.parametrize("multi_hot", [False, True])
def test_cnnh_stage_one_equals_plain_coordinate_descent_and_never_increases(multi_hot):
    Y = labels(7, multi_hot, seed=1)
    got = L.cnnh_stage_one(Y, 3, sweeps=2, seed=4)
    np.testing.assert_allclose(got, plain_stage_one(Y, 3, 2, 4), atol=1e-9)
    assert np.abs(got).max() <= 1.0
    H, values = None, []
    for sweep in range(4):
        H = L.cnnh_stage_one(Y, 3, sweeps=1, seed=sweep, H=H)
        values.append(L.cnnh_objective(H, Y, 3))
    start = L.cnnh_objective(np.random.default_rng(0).uniform(-1, 1, (7, 3)), Y, 3)
    assert values[0] < start and all(b <= a for a, b in zip(values, values[1:]))


@pytest.mark.parametrize("multi_hot", [False, True])
def test_cnnh_objective_matches_numpy(multi_hot):
    Y = labels(9, multi_hot, seed=2)
    H = np.random.default_rng(3).uniform(-1, 1, (9, 5))
    close(L.cnnh_objective(H, Y, 5), ((H @ H.T - 5 * signed_s(Y, Y)) ** 2).sum())


def test_cnnh_value_gradient_and_prepare():
    loss = L.CNNHLoss(NB, num_train=5, sweeps=1, seed=0)
    u = torch.tensor([[0.3, -0.2, 1.5, 0.0], [-0.7, 0.1, 0.2, -2.0]], dtype=torch.float64)
    with pytest.raises(RuntimeError, match="prepare"):
        loss(u, torch.eye(NC, dtype=torch.float64)[:2], torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="train_targets: expected shape"):
        loss.prepare(torch.eye(NC))
    Y = torch.from_numpy(labels(5, seed=5)).float()
    loss.prepare(Y)
    np.testing.assert_allclose(loss.H.numpy(), L.cnnh_stage_one(Y, NB, 1, seed=0), atol=1e-6)
    loss.H.copy_(torch.tensor([[0.2, -0.1, 0.5, 0.9]] * 5))
    loss.H[3] = torch.tensor([-0.3, 0.0, -0.4, 0.6])
    index = torch.tensor([0, 3])
    targets = np.array([[1, -1, 1, 1], [-1, 1, -1, 1.0]])  # sign(0) = +1
    close(loss(u, Y[:2].double(), index), ((u.numpy() - targets) ** 2).mean())
    x = u.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: loss(v, Y[:2].double(), index), (x,))


# -- ADSH -----------------------------------------------------------------------------------

def adsh_loop(u, V, yb, Y, index, c, gamma, d):
    z, total = np.tanh(u), 0.0
    for i in range(len(z)):
        for j in range(len(V)):
            total += (z[i] @ V[j] - c * signed_s(yb[i:i + 1], Y[j:j + 1], d)[0, 0]) ** 2
        total += gamma * ((V[index[i]] - z[i]) ** 2).sum()
    return total / (len(z) * len(V))


def adsh_with_codes(n, multi_hot, gamma=3.0, seed=0, soft=False):
    Y = labels(n, multi_hot, seed)
    loss = L.ADSHLoss(NB, num_train=n, num_classes=NC, gamma=gamma, soft_similarity=soft).double()
    loss.prepare(torch.from_numpy(Y))
    loss.V.copy_(torch.from_numpy(np.random.default_rng(seed).choice([-1.0, 1.0], (n, NB))))
    return loss, Y


def pair_ratio(Y):
    similar = sum(1 for a in Y for b in Y if a @ b > 0)
    return similar / (len(Y) ** 2 - similar) if similar < len(Y) ** 2 else 1.0


@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("multi_hot", [False, True])
def test_adsh_value_matches_loops_and_gradcheck(multi_hot, soft):
    loss, Y = adsh_with_codes(6, multi_hot, seed=3, soft=soft)  # seed 3: dissimilar pairs exist
    d = pair_ratio(Y) if soft else 1.0
    assert not soft or d != 1.0
    close(loss.dissimilar, d)
    u = torch.from_numpy(np.random.default_rng(1).normal(size=(3, NB)))
    index = torch.tensor([4, 0, 2])
    target = torch.from_numpy(Y[[4, 0, 2]])
    close(loss(u, target, index), adsh_loop(u.numpy(), loss.V.numpy(), Y[[4, 0, 2]], Y, [4, 0, 2], NB, 3.0, d))
    loss.eval()  # keep U and the epoch's sample set as they are
    x = u.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: loss(v, target, index), (x,))


def adsh_objective_np(U, V, Yo, Y, omega, c, gamma, d=1.0):
    return ((U @ V.T - c * signed_s(Yo, Y, d)) ** 2).sum() + gamma * ((V[omega] - U) ** 2).sum()


@pytest.mark.parametrize("multi_hot, d", [(False, 1.0), (True, 1.0), (False, 0.3), (True, 0.6)])
@pytest.mark.parametrize("nbits", [1, 3])
def test_adsh_v_step_is_the_bitwise_brute_force_minimiser(multi_hot, nbits, d):
    rng = np.random.default_rng(nbits + 2 * multi_hot)
    n, omega, gamma = 5, np.array([0, 2, 3]), 2.0
    Y = labels(n, multi_hot, seed=7)
    U = np.tanh(rng.normal(size=(len(omega), nbits)))
    V = rng.choice([-1.0, 1.0], (n, nbits))
    got = L.adsh_v_step(torch.from_numpy(V), torch.from_numpy(U), torch.from_numpy(Y[omega]),
                        torch.from_numpy(Y), torch.from_numpy(omega), nbits, gamma, d).numpy()
    want = V.copy()
    for k in range(nbits):  # each bit in turn: the best of all 2^n columns, the others fixed
        best = None
        for column in itertools.product([-1.0, 1.0], repeat=n):
            trial = want.copy()
            trial[:, k] = column
            value = adsh_objective_np(U, trial, Y[omega], Y, omega, nbits, gamma, d)
            if best is None or value < best[0]:
                best = (value, trial)
        want = best[1]
    np.testing.assert_array_equal(got, want)
    assert adsh_objective_np(U, got, Y[omega], Y, omega, nbits, gamma, d) <= \
        adsh_objective_np(U, V, Y[omega], Y, omega, nbits, gamma, d)
    close(L.adsh_objective(torch.from_numpy(U), torch.from_numpy(got), torch.from_numpy(Y[omega]),
                           torch.from_numpy(Y), torch.from_numpy(omega), nbits, gamma, d),
          adsh_objective_np(U, got, Y[omega], Y, omega, nbits, gamma, d))


def test_adsh_epoch_end_steps_over_the_samples_seen_and_needs_labels():
    loss = L.ADSHLoss(NB, num_train=6, num_classes=NC, gamma=2.0).double()
    u = torch.from_numpy(np.random.default_rng(2).normal(size=(3, NB)))
    Y = labels(6, seed=3)
    d = pair_ratio(Y)
    with pytest.raises(RuntimeError, match="prepare"):
        loss(u, torch.from_numpy(Y[:3]), torch.tensor([0, 1, 2]))
    loss.prepare(torch.from_numpy(Y))
    index = np.array([5, 1, 3])
    loss(u, torch.from_numpy(Y[index]), torch.from_numpy(index))
    loss.on_epoch_end(0)
    want = L.adsh_v_step(torch.zeros(6, NB, dtype=torch.float64), torch.tanh(u), torch.from_numpy(Y[index]),
                         torch.from_numpy(Y), torch.from_numpy(index), NB, 2.0, d)
    assert torch.equal(loss.V, want) and int(loss.steps) == 1 and not bool(loss.fresh.any())
    assert set(loss.V.unique().tolist()) <= {-1.0, 1.0}
    assert torch.equal(loss.database_codes(torch.tensor([4, 1])), want[[4, 1]])


def fixed_toy(n, seed):
    """The toy set of test_trainer without its random flips (for evaluation)."""
    data = _toy(n, seed)
    return data.subset(np.arange(n))


def test_adsh_validation_uses_the_discrete_database_codes():
    torch.manual_seed(0)
    data, val = _toy(), fixed_toy(16, 1)
    pick = np.arange(0, len(data), 3)
    model = build_model("small_cnn", 16, in_channels=1, image_size=8)
    loss = build_loss("adsh", 16, len(data), 4)
    trainer = Trainer(model, loss, data, build_optimizer(model, loss, "adam", 1e-2), val_query=val,
                      val_database=data.subset(pick), val_database_index=pick, batch_size=32,
                      progress=False)
    trainer.fit(1)
    q, ql = encode(model, val)
    _, dl = encode(model, data.subset(pick))
    with_v = mean_average_precision(q, pack_bits(loss.V[pick].numpy()), ql, dl)
    network, _ = encode(model, data.subset(pick))
    assert trainer.history[-1]["val_map"] == with_v
    assert not np.array_equal(network, pack_bits(loss.V[pick].numpy()))


@pytest.mark.skipif(fashion_mnist_dir() is None, reason="needs Fashion-MNIST (apt-get install dataset-fashion-mnist)")
def test_adsh_run_database_codes_of_training_samples_are_v(tmp_path):
    summary = train_run({"method": "adsh", "dataset": "fashion-mnist-mini", "nbits": 16, "epochs": 1,
                         "threads": 1, "device": "cpu", "val_database_size": 500}, tmp_path, progress=False)
    codes = np.load(tmp_path / "codes.npz")
    V = load_checkpoint(tmp_path / "model.pt")["loss"]["V"].numpy()
    split = np.load(tmp_path / "split.npz")
    pos = training_positions(split["train"], codes["database_index"])
    assert (pos >= 0).sum() == 2000  # the mini protocol's training samples are in its database
    assert np.array_equal(codes["database_codes"][pos >= 0], pack_bits(V[pos[pos >= 0]]))
    assert json.loads((tmp_path / "summary.json").read_text())["map"]["all"] == summary["map"]["all"]


def sampled_adsh(tmp=None, seed=0, m=64, passes=3):
    """ADSH on the 96-sample toy set with the paper's schedule: Omega of m, ``passes`` passes."""
    torch.manual_seed(seed)
    data = _toy()
    model = build_model("small_cnn", 16, in_channels=1, image_size=8)
    loss = build_loss("adsh", 16, len(data), 4, sample_size=m, inner_epochs=passes)
    return Trainer(model, loss, data, build_optimizer(model, loss, "adam", 1e-2), val_query=fixed_toy(16, 1),
                   val_database=fixed_toy(len(data), 0), val_database_index=np.arange(len(data)),
                   batch_size=32, seed=seed, checkpoint_dir=tmp, progress=False)


def test_adsh_sampled_schedule_trains_passes_over_omega_then_steps_v_over_it():
    trainer = sampled_adsh()
    loss, seen = trainer.loss, []
    compute = loss.compute

    def spy(u, target, index):
        seen.append(index.clone())
        return compute(u, target, index)

    loss.compute = spy
    Y = loss.Y
    omegas = []
    for epoch in range(2):
        seen.clear()
        before = loss.V.clone()
        trainer.fit(epoch + 1)
        counts = torch.bincount(torch.cat(seen), minlength=96)
        omega = torch.nonzero(counts).squeeze(1)
        # m distinct samples, each visited once per pass (64 = 2 whole batches of 32: none dropped)
        assert omega.numel() == 64 and bool((counts[omega] == 3).all())
        assert int(loss.steps) == epoch + 1 and not bool(loss.fresh.any())
        want = L.adsh_v_step(before, loss.U[omega], Y[omega], Y, omega, 16, loss.gamma, float(loss.dissimilar))
        assert torch.equal(loss.V, want)  # the V step ran over Omega, with its last outputs
        omegas.append(set(omega.tolist()))
    assert omegas[0] != omegas[1]  # a new Omega each outer iteration


def test_adsh_sample_draw_follows_the_run_seed_and_is_checked():
    a, b, other = sampled_adsh(), sampled_adsh(), sampled_adsh(seed=1)
    draw = [a.epoch_data(e)[0].indices for e in range(3)]
    assert draw == [b.epoch_data(e)[0].indices for e in range(3)]
    assert draw != [other.epoch_data(e)[0].indices for e in range(3)]
    assert all(len(set(d)) == 64 for d in draw) and a.epoch_data(0)[1] == 3
    whole = sampled_adsh(m=500, passes=1)  # m >= n and one pass: the plain epoch
    assert whole.epoch_data(0) == (whole.train_set, 1)
    twice = sampled_adsh(m=500, passes=2)
    assert twice.epoch_data(0)[0].indices == list(range(96)) and twice.epoch_data(0)[1] == 2
    with pytest.raises(ValueError, match="sample_size"):
        build_loss("adsh", 16, 96, 4, sample_size=0)
    with pytest.raises(ValueError, match="inner_epochs"):
        build_loss("adsh", 16, 96, 4, inner_epochs=0)
    with pytest.raises(ValueError, match="num_train: expected the 96 rows"):
        a.loss.epoch_samples(0, 95, torch.Generator())
    a.loss.epoch_samples = lambda epoch, n, gen: (torch.tensor([0, 96]), 1)
    with pytest.raises(ValueError, match=r"epoch_samples: expected positions in \[0, 96\)"):
        a.epoch_data(0)
    a.loss.epoch_samples = lambda epoch, n, gen: (torch.tensor([], dtype=torch.int64), 1)
    with pytest.raises(ValueError, match="at least one position"):
        a.epoch_data(0)
    a.loss.epoch_samples = lambda epoch, n, gen: (torch.tensor([0, 1]), 0)
    with pytest.raises(ValueError, match="passes >= 1"):
        a.epoch_data(0)


def test_adsh_sampled_schedule_resumes_identically(tmp_path):
    full = sampled_adsh(tmp_path / "full")
    full.fit(4)
    part = sampled_adsh(tmp_path / "part")
    part.fit(2)
    resumed = sampled_adsh(tmp_path / "other", seed=5)
    resumed.resume(tmp_path / "part" / "last.pt")
    resumed.fit(4)
    for key, value in full.loss.state_dict().items():
        assert torch.equal(value, resumed.loss.state_dict()[key]), key
    for key, value in full.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    assert [h["train_loss"] for h in full.history] == [h["train_loss"] for h in resumed.history]


# -- DAPH -----------------------------------------------------------------------------------

def daph_loop(u, W, c, y, B, H, coded, alpha, lam, beta):
    a, z = np.tanh(u), np.tanh(u @ W.T + c)
    m, k = a.shape
    like = 0.0
    for i in range(m):
        for j in range(m):
            t = 0.5 * a[i] @ z[j]
            like += np.log1p(np.exp(t)) - (1.0 if y[i] @ y[j] > 0 else 0.0) * t
    quant = sum(coded[i] * (((a[i] - B[i]) ** 2).sum() + ((z[i] - H[i]) ** 2).sum()) for i in range(m))
    ind = sum((((x.T @ x) / m - np.eye(k)) ** 2).mean() for x in (a, z))
    bal = sum((x.mean(0) ** 2).mean() for x in (a, z))
    return like / m ** 2 + alpha * quant / (m * k) + lam * ind + beta * bal


def test_daph_value_codes_update_and_gradcheck():
    loss = L.DAPHLoss(NB, num_train=5, alpha=2.0, gamma=3.0, lambda_=0.5, beta=0.7).double()
    rng = np.random.default_rng(4)
    with torch.no_grad():
        loss.second_stream.weight.copy_(torch.from_numpy(np.eye(NB) + 0.3 * rng.normal(size=(NB, NB))))
        loss.second_stream.bias.copy_(torch.from_numpy(0.1 * rng.normal(size=NB)))
    W, c = loss.second_stream.weight.detach().numpy(), loss.second_stream.bias.detach().numpy()
    u = rng.normal(size=(3, NB))
    y = labels(3, seed=1)
    index = torch.tensor([4, 0, 2])
    args = (torch.from_numpy(u), torch.from_numpy(y), index)
    zeros = np.zeros((3, NB))
    close(loss(*args), daph_loop(u, W, c, y, zeros, zeros, [0, 0, 0], 2.0, 0.5, 0.7))
    loss.on_epoch_end(0)
    a, z = np.tanh(u), np.tanh(u @ W.T + c)
    B = np.where(2.0 * a + 3.0 * np.where(z >= 0, 1.0, -1.0) >= 0, 1.0, -1.0)
    H = np.where(2.0 * z + 3.0 * B >= 0, 1.0, -1.0)
    assert loss.B[[4, 0, 2]].numpy().tolist() == B.tolist() and loss.H[[4, 0, 2]].numpy().tolist() == H.tolist()
    assert loss.coded.tolist() == [True, False, True, False, True]
    args2 = (torch.from_numpy(u), torch.from_numpy(y), torch.tensor([4, 1, 2]))  # sample 1 has no codes
    close(loss(*args2), daph_loop(u, W, c, y, loss.B[[4, 1, 2]].numpy(), loss.H[[4, 1, 2]].numpy(),
                                  [1, 0, 1], 2.0, 0.5, 0.7))
    loss.eval()
    x = torch.from_numpy(u).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: loss(v, args2[1], args2[2]), (x,))


def test_daph_likelihood_prefers_agreeing_streams():
    y = torch.eye(2, dtype=torch.float64)[[0, 0, 1, 1]]
    good = torch.tensor([[1.0, 1, 1, 1], [1, 1, 1, 1], [-1, -1, -1, -1], [-1, -1, -1, -1]], dtype=torch.float64)
    bad = good[[0, 2, 1, 3]]
    assert asymmetric_likelihood(good, good, y) < asymmetric_likelihood(bad, bad, y)


# -- PCDH -----------------------------------------------------------------------------------

def contrastive_loop(x, y, m):
    total = 0.0
    for i in range(len(x)):
        for j in range(len(x)):
            d = ((x[i] - x[j]) ** 2).sum()
            s = 1.0 if y[i] @ y[j] > 0 else 0.0
            total += 0.5 * s * d + 0.5 * (1 - s) * max(m - d, 0.0) ** 2
    return total / len(x) ** 2


def test_pcdh_value_straight_through_and_gradcheck():
    loss = L.PCDHLoss(NB, NC, alpha=0.5, beta=2.0, margin=3.0).double()
    W = loss.classifier.weight.detach().numpy()
    u = np.array([[0.3, -0.2, 1.5, 0.0], [-0.7, 0.1, 0.2, -2.0], [0.5, 0.4, -0.1, 0.3]])
    y = np.eye(NC)[[0, 2, 0]]
    b = np.where(u >= 0, 1.0, -1.0)
    logits = b @ W.T
    ce = np.mean([np.log(np.exp(r).sum()) - r[k] for r, k in zip(logits, [0, 2, 0])])
    want = contrastive_loop(np.tanh(u), y, 3.0) + 0.5 * contrastive_loop(u, y, 3.0) + 2.0 * ce
    x = torch.from_numpy(u).requires_grad_(True)
    value = loss(x, torch.from_numpy(y))
    close(value, want)
    value.backward()
    # the classifier's gradient reaches u straight through the threshold (times tanh')
    smooth = L.PCDHLoss(NB, NC, alpha=0.5, beta=0.0, margin=3.0).double()
    x2 = torch.from_numpy(u).requires_grad_(True)
    smooth(x2, torch.from_numpy(y)).backward()
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    grad_b = 2.0 * (p - np.eye(NC)[[0, 2, 0]]) @ W / 3
    np.testing.assert_allclose(x.grad.numpy() - x2.grad.numpy(), grad_b * (1 - np.tanh(u) ** 2), atol=1e-12)
    x3 = torch.from_numpy(u).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: smooth(v, torch.from_numpy(y)), (x3,))


def test_pcdh_contrastive_prefers_separated_classes():
    y = torch.eye(2, dtype=torch.float64)[[0, 0, 1, 1]]
    good = 3.0 * torch.tensor([[1.0, 1, 1, 1], [1, 1, 1, 1], [-1, -1, -1, -1], [-1, -1, -1, -1]], dtype=torch.float64)
    loss = L.PCDHLoss(NB, 2).double()
    assert loss(good, y) < loss(good[[0, 2, 1, 3]], y)


def test_pcdh_feature_term_reads_the_features_the_trainer_passes():
    loss = L.PCDHLoss(NB, NC, alpha=0.5, beta=0.0, margin=3.0).double()
    assert loss.needs_features and L.PCDHLoss.head_hidden == 1024
    u = np.array([[0.3, -0.2, 1.5, 0.0], [-0.7, 0.1, 0.2, -2.0], [0.5, 0.4, -0.1, 0.3]])
    f = np.array([[1.0, 2.0, 0.0, 0.5, 1.0], [0.0, 0.5, 1.0, 1.0, 0.0], [1.5, 2.0, 0.5, 0.0, 1.0]])
    y = np.eye(NC)[[0, 2, 0]]
    want = contrastive_loop(np.tanh(u), y, 3.0) + 0.5 * contrastive_loop(f, y, 3.0)
    close(loss(torch.from_numpy(u), torch.from_numpy(y), features=torch.from_numpy(f)), want)
    with pytest.raises(ValueError, match="features: expected shape \\(3, d\\)"):
        loss(torch.from_numpy(u), torch.from_numpy(y), features=torch.zeros(2, 5, dtype=torch.float64))
    # the trainer's step hands the model's hidden-layer output over
    torch.manual_seed(0)
    model = build_model("small_cnn", NB, in_channels=1, image_size=8, hidden=6)
    seen = []
    loss32 = L.PCDHLoss(NB, NC)
    loss32.compute = lambda u, target, index, features=None: seen.append(features) or u.sum() * 0
    x = torch.randn(5, 1, 8, 8)
    train_step(model, loss32, build_optimizer(model, loss32, "adam", 1e-3), x, torch.eye(NC)[[0, 1, 2, 0, 1]],
               torch.arange(5))
    assert seen[0].shape == (5, 6) and seen[0].requires_grad  # the live features, not a copy


def test_hidden_head_layer_sits_between_backbone_and_hash_layer():
    torch.manual_seed(0)
    plain = build_model("small_cnn", 12, in_channels=1, image_size=8)
    wide = build_model("small_cnn", 12, in_channels=1, image_size=8, hidden=7)
    assert plain.hidden_layer is None and not any(k.startswith("hidden_layer") for k in plain.state_dict())
    assert wide.hidden_layer.in_features == wide.backbone.out_features and wide.hash_layer.in_features == 7
    x = torch.randn(4, 1, 8, 8)
    wide.eval()
    f, u = wide.forward_with_features(x)
    assert f.shape == (4, 7) and torch.equal(u, wide(x))
    assert torch.allclose(u, wide.hash_layer(wide.hidden_layer(wide.backbone(x))))
    head = {id(p) for g in wide.param_groups(1e-3, 10.0) if g["name"] == "head" for p in g["params"]}
    assert {id(p) for p in wide.hidden_layer.parameters()} <= head
    with pytest.raises(ValueError, match="hidden"):
        build_model("small_cnn", 12, in_channels=1, image_size=8, hidden=-1)


def test_run_config_resolves_the_methods_hidden_layer():
    from deephash_engine.deep.run import RunConfig, _run_checkpoint_fields

    assert RunConfig.from_dict({"method": "pcdh"}).head_hidden == 1024
    assert RunConfig(method="pcdh").head_hidden == 1024 and RunConfig().head_hidden == 0  # built directly
    assert RunConfig.from_dict({"method": "dpsh"}).head_hidden == 0
    assert RunConfig.from_dict({"method": "pcdh", "head_hidden": 0}).head_hidden == 0
    assert RunConfig.from_dict({"method": "dpsh", "head_hidden": 64}).head_hidden == 64
    for bad in (-1, 1.5, "8", 1 << 20):
        with pytest.raises(ValueError, match="head_hidden"):
            RunConfig.from_dict({"method": "pcdh", "head_hidden": bad})
    # a run saved before head_hidden existed had no hidden layer, even for pcdh
    ckpt = {"config": {"method": "pcdh", "nbits": 8}, "model": {},
            "data": {"in_channels": 1, "image_size": 28, "source": "fashion-mnist"}}
    assert _run_checkpoint_fields(ckpt, Path("old.pt"))[0].head_hidden == 0


# -- training: resume, and a short run that beats random codes --------------------------------

def toy_trainer(method, tmp, seed=0):
    torch.manual_seed(seed)
    data = _toy()
    model = build_model("small_cnn", 16, in_channels=1, image_size=8)
    loss = build_loss(method, 16, len(data), 4)
    return Trainer(model, loss, data, build_optimizer(model, loss, "adam", 1e-2), val_query=fixed_toy(16, 1),
                   val_database=fixed_toy(len(data), 0), val_database_index=np.arange(len(data)), batch_size=32,
                   seed=seed, checkpoint_dir=tmp, progress=False)


@pytest.mark.parametrize("method", ["cnnh", "adsh", "daph"])
def test_resume_continues_identically_with_the_per_sample_state(tmp_path, method):
    # H (CNNH), V, U and the epoch's sample set (ADSH), U, Z, B, H (DAPH) are buffers: the
    # trainer's resume check compares every one of them after 2 + 2 epochs against 4 at once
    resume_check(tmp_path, method)


@pytest.mark.parametrize("method", ["cnnh", "adsh", "adsh-sampled", "daph", "pcdh"])
def test_short_training_beats_random_codes(tmp_path, method):
    trainer = sampled_adsh() if method == "adsh-sampled" else toy_trainer(method, None)
    trainer.fit(3)
    q, ql = encode(trainer.model, trainer.val_query)
    d, dl = encode(trainer.model, trainer.val_database, loss=trainer.loss,
                   train_index=trainer.val_database_index)
    rng = np.random.default_rng(0)
    random = np.mean([mean_average_precision(pack_bits(rng.normal(size=(len(q), 16))),
                                             pack_bits(rng.normal(size=(len(d), 16))), ql, dl)
                      for _ in range(5)])
    trained = mean_average_precision(q, d, ql, dl)
    assert trained > random + 0.15, (trained, random)
