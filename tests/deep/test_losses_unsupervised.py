"""The label-free losses (BiHalf, unsupervised GreedyHash) and their training on frozen features:
values from explicit loops on tiny inputs, the bi-half split, the gradients, labels never used,
and short runs that must beat random codes."""

import math

import numpy as np
import pytest
import torch

from deephash_engine.datasets import fashion_mnist_dir
from deephash_engine.deep import losses as L
from deephash_engine.deep.data import ArrayHashingDataset, make_loader
from deephash_engine.deep.label_free import FeatureDataset, FeatureHasher, FeatureTargets, prepare_label_free
from deephash_engine.deep.losses.functional import cosine_preserving_mse
from deephash_engine.deep.methods import build_loss
from deephash_engine.deep.models import build_model
from deephash_engine.deep.trainer import Trainer, build_optimizer
from deephash_engine.hashing import LSH
from deephash_engine.metrics import mean_average_precision
from toy_images import quadrant_images

U = [  # 5 samples, 3 bits
    [0.5, -1.2, 0.3],
    [-0.7, 0.4, 1.1],
    [0.8, -0.9, 0.1],
    [-0.3, 0.6, -1.4],
    [0.2, 0.05, 0.7],
]
X = [  # their frozen features, 4-d
    [1.0, 0.0, 2.0, 0.5],
    [0.0, 1.0, 1.0, 0.0],
    [2.0, 0.5, 0.0, 1.0],
    [0.3, 0.3, 0.3, 0.3],
    [1.0, -1.0, 0.5, 2.0],
]
# The bi-half split by hand: per bit, the two largest of the first four samples get +1 (an even
# batch of 4), and the two largest of all five (an odd batch: floor(5/2) = 2 of them).
B4 = [[1, -1, 1], [-1, 1, 1], [1, -1, -1], [-1, 1, -1]]
B5 = [[1, -1, -1], [-1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]]


def t(rows, n=None):
    return torch.tensor(rows[:n], dtype=torch.float64)


def cos(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def ref_mse(codes, feats, pairs):
    return sum((cos(codes[i], codes[j]) - cos(feats[i], feats[j])) ** 2 for i, j in pairs) / len(pairs)


def halves(n):
    return [(i, i + n // 2) for i in range(n // 2)]


def every_pair(n):
    return [(i, j) for i in range(n) for j in range(i + 1, n)]


def close(value, expected):
    assert float(value.detach()) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_bihalf_split_by_hand_even_and_odd_batches():
    assert L.bihalf_split(t(U, 4)).tolist() == B4
    assert L.bihalf_split(t(U)).tolist() == B5
    # ties go by batch order: the earlier of equal outputs ranks higher
    tied = torch.tensor([[0.0], [1.0], [0.0], [0.0]])
    assert L.bihalf_split(tied).flatten().tolist() == [1.0, 1.0, -1.0, -1.0]


@pytest.mark.parametrize("n", [2, 3, 4, 7, 10, 33])
def test_bihalf_split_gives_exactly_half_plus_one_per_bit(n):
    gen = torch.Generator().manual_seed(n)
    u = torch.randn(n, 9, generator=gen)
    u[:, 0] = 0.25  # a bit where every output ties
    b = L.bihalf_split(u)
    assert set(b.unique().tolist()) <= {-1.0, 1.0}
    assert (b == 1).sum(0).tolist() == [n // 2] * 9  # odd n: the median sample gets -1
    # every +1 output is at least every -1 output of its bit
    for k in range(9):
        assert u[b[:, k] == 1, k].min() >= u[b[:, k] == -1, k].max()


@pytest.mark.parametrize("pairs,n", [("halves", 4), ("halves", 5), ("all", 4), ("all", 5)])
def test_bihalf_value_by_hand(pairs, n):
    loss = L.BiHalfLoss(3, pairs=pairs)
    codes = B4 if n == 4 else B5
    chosen = halves(n) if pairs == "halves" else every_pair(n)
    close(loss(t(U, n), t(X, n)), ref_mse(codes, X, chosen))
    if pairs == "halves" and n == 5:
        assert chosen == [(0, 2), (1, 3)]  # the odd sample 4 is in no pair


@pytest.mark.parametrize("pairs", ["halves", "all"])
def test_greedyhash_unsup_value_by_hand(pairs):
    alpha = 0.3
    loss = L.GreedyHashUnsupervisedLoss(3, alpha=alpha, pairs=pairs)
    codes = [[1.0 if v >= 0 else -1.0 for v in row] for row in U]
    penalty = sum(abs(abs(v) - 1) ** 3 for row in U for v in row) / 15
    chosen = halves(5) if pairs == "halves" else every_pair(5)
    close(loss(t(U), t(X)), ref_mse(codes, X, chosen) + alpha * penalty)


def test_a_code_that_follows_the_features_scores_lower_than_a_random_one():
    gen = torch.Generator().manual_seed(0)
    # features that are balanced +-1 codes themselves: a code equal to them scores exactly 0
    feats = torch.stack([torch.randperm(64, generator=gen) < 32 for _ in range(32)], 1).double() * 2 - 1
    matching = feats * (1.0 + torch.rand(64, 32, generator=gen, dtype=torch.float64))
    scrambled = torch.randn(64, 32, generator=gen, dtype=torch.float64)
    for loss in (L.BiHalfLoss(32, pairs="all"), L.GreedyHashUnsupervisedLoss(32, alpha=0.0, pairs="all")):
        assert float(loss(matching, feats)) < 1e-12
        assert float(loss(scrambled, feats)) > 0.01


def test_bihalf_gradient_is_the_papers_formula():
    gamma = 6.0
    u = t(U).requires_grad_(True)
    x = t(X)
    L.BiHalfLoss(3, gamma=gamma, pairs="all")(u, x).backward()
    b = torch.tensor(B5, dtype=torch.float64, requires_grad=True)
    cosine_preserving_mse(b, x, "all").backward()  # g: the gradient that reaches the codes
    expected = b.grad + gamma * (t(U) - b.detach()) / 15
    assert torch.allclose(u.grad, expected, rtol=1e-12, atol=1e-15)
    assert not torch.allclose(b.grad, expected)  # the gamma term is not negligible here


def test_greedyhash_unsup_gradient_passes_straight_through_the_sign():
    alpha = 0.1
    u = t(U).requires_grad_(True)
    x = t(X)
    L.GreedyHashUnsupervisedLoss(3, alpha=alpha)(u, x).backward()
    b = torch.sign(t(U)).requires_grad_(True)
    cosine_preserving_mse(b, x, "halves").backward()
    v = t(U).requires_grad_(True)
    (alpha * (v.abs() - 1).abs().pow(3).mean()).backward()
    assert torch.allclose(u.grad, b.grad + v.grad, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("pairs", ["halves", "all"])
def test_gradcheck_of_the_smooth_parts(pairs):
    # the code steps are piecewise constant; the similarity term is smooth in the codes
    x = t(X)
    b = t(U).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda c: cosine_preserving_mse(c, x, pairs), (b,), eps=1e-6, atol=1e-6)
    assert torch.autograd.gradcheck(lambda v: (v.abs() - 1).abs().pow(3).mean(), (b,), eps=1e-6, atol=1e-6)


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="pairs: expected one of"):
        L.BiHalfLoss(3, pairs="some")
    with pytest.raises(ValueError, match="gamma: expected >= 0, got -1"):
        L.BiHalfLoss(3, gamma=-1)
    with pytest.raises(ValueError, match="u: expected a batch of at least 2 samples"):
        L.GreedyHashUnsupervisedLoss(3)(t(U, 1), t(X, 1))
    with pytest.raises(ValueError, match="method: expected a label-free method"):
        FeatureHasher("dpsh", 8)
    assert L.BiHalfLoss.label_free and L.GreedyHashUnsupervisedLoss.label_free
    assert not L.DPSHLoss.label_free


def test_feature_hasher_is_seeded_and_checks_its_input():
    X = np.random.default_rng(0).normal(size=(40, 5))
    hasher = FeatureHasher("greedyhash-unsup", 12, hidden=8, epochs=2, batch_size=8)
    with pytest.raises(RuntimeError, match="not fitted"):
        hasher.encode(X)
    codes = hasher.fit(X).encode(X)
    assert codes.shape == (40, 2) and codes.dtype == np.uint8 and not (codes[:, 1] >> 4).any()
    again = FeatureHasher("greedyhash-unsup", 12, hidden=8, epochs=2, batch_size=8).fit(X).encode(X)
    assert np.array_equal(again, codes)
    with pytest.raises(ValueError, match="X: expected 5 features \\(as in fit\\), got 6"):
        hasher.encode(np.zeros((2, 6)))


def _train_on_images(images, targets, method):
    torch.manual_seed(0)
    data = ArrayHashingDataset(images, targets, mean=(0.3,), std=(0.3,), flip=True)
    model = build_model("pca", 16, in_channels=1, image_size=8)
    loss = build_loss(method, 16, len(data), 4)
    train = prepare_label_free(model, data)
    Trainer(model, loss, train, build_optimizer(model, loss, "adam", 1e-2), batch_size=16,
            seed=0, progress=False).fit(2)
    return model, train


@pytest.mark.parametrize("method", ["bihalf", "greedyhash-unsup"])
def test_labels_never_reach_training(method):
    images, targets = quadrant_images(64)
    model, train = _train_on_images(images, targets, method)
    shuffled = targets[np.random.default_rng(1).permutation(len(targets))]
    other, _ = _train_on_images(images, shuffled, method)
    state, other_state = model.state_dict(), other.state_dict()
    assert state.keys() == other_state.keys()
    for name in state:
        assert torch.equal(state[name], other_state[name]), name
    # the training set yields the frozen pca features where labels would be
    assert isinstance(train, FeatureTargets)
    _, feats, index = train.__getitems__([3, 5])
    unflipped = train.base.inputs[index]  # the features are those of the images as evaluated
    assert feats.shape == (2, 64) and torch.allclose(feats, model.backbone(unflipped), atol=1e-5)
    assert not any(p.requires_grad for p in model.backbone.parameters())


@pytest.mark.parametrize("method", ["bihalf", "greedyhash-unsup"])
def test_without_augmentation_training_reads_the_cached_features(method):
    images, targets = quadrant_images(64)

    def trainer(cached):
        torch.manual_seed(0)
        data = ArrayHashingDataset(images, targets, mean=(0.3,), std=(0.3,))  # no flip
        model = build_model("pca", 16, in_channels=1, image_size=8)
        loss = build_loss(method, 16, len(data), 4)
        train = prepare_label_free(model, data)
        if not cached:  # the same features, the backbone run on the images at every step
            train = FeatureTargets(data, train.targets)
            model.read_features_in_training(False)
        calls = []
        model.backbone.register_forward_hook(lambda *_: calls.append(1))
        Trainer(model, loss, train, build_optimizer(model, loss, "adam", 1e-2), batch_size=16,
                seed=0, progress=False, eval_every=0).fit(2)
        return model, train, data, len(calls)

    model, train, data, calls = trainer(cached=True)
    assert isinstance(train, FeatureDataset) and model.features_in_training
    assert calls == 0  # training ran the hash head only
    x, feats, index = train.__getitems__([3, 5])
    assert torch.equal(x, feats) and feats.shape == (2, 64)
    reference, _, _, ref_calls = trainer(cached=False)
    assert ref_calls == 8  # 64 items in batches of 16, 2 epochs
    for (name, a), b in zip(model.state_dict().items(), reference.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-5), name
    model.eval()  # eval mode reads images, as encoding and validation do
    images_in = data.__getitems__(list(range(4)))[0]
    assert torch.allclose(model(images_in), reference.eval()(images_in), atol=1e-5)


def test_features_as_training_input_need_a_frozen_backbone():
    model = build_model("pca", 8, in_channels=1, image_size=8)
    with pytest.raises(ValueError, match="expected a frozen backbone"):
        model.read_features_in_training(True)
    model.freeze_backbone().read_features_in_training(True).train()
    assert model(torch.zeros(3, model.hash_layer.in_features)).shape == (3, 8)
    assert model.read_features_in_training(False).eval()(torch.zeros(3, 1, 8, 8)).shape == (3, 8)


def test_feature_targets_on_a_dataset_read_item_by_item():
    class Items(torch.utils.data.Dataset):  # like the image-list datasets: no batched reads
        batched = False

        def __len__(self):
            return 6

        def __getitem__(self, i):
            return torch.full((3,), float(i)), torch.tensor([7.0]), torch.tensor(i)

    feats = torch.arange(12.0).view(6, 2)
    x, target, index = next(iter(make_loader(FeatureTargets(Items(), feats), 4, shuffle=False)))
    assert x[:, 0].tolist() == [0.0, 1.0, 2.0, 3.0] and index.tolist() == [0, 1, 2, 3]
    assert torch.equal(target, feats[:4])


def _clusters(n, seed):
    """Four clusters in 24-d whose centres differ in a few directions, under wide noise."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(0, 1.5, (4, 24))
    y = np.arange(n) % 4
    return centres[y] + rng.normal(0, 1.0, (n, 24)), np.eye(4)[y]


@pytest.mark.parametrize("method", ["bihalf", "greedyhash-unsup"])
def test_short_run_beats_random_codes(method):
    train, _ = _clusters(512, 0)
    query, ql = _clusters(80, 1)
    base, bl = _clusters(400, 2)
    hasher = FeatureHasher(method, 16, epochs=8, seed=0).fit(train)
    learned = mean_average_precision(hasher.encode(query), hasher.encode(base), ql, bl)
    rng = np.random.default_rng(3)
    random_q = rng.integers(0, 256, (80, 2), dtype=np.uint8)
    random_d = rng.integers(0, 256, (400, 2), dtype=np.uint8)
    chance = mean_average_precision(random_q, random_d, ql, bl)
    lsh = LSH(16, seed=0).fit(train)
    lsh_map = mean_average_precision(lsh.encode(query), lsh.encode(base), ql, bl)
    print(f"{method}: mAP {learned:.3f}, LSH on the same features {lsh_map:.3f}, random codes {chance:.3f}")
    assert learned > chance + 0.25, (learned, chance, lsh_map)
    assert len(hasher.history_) == 8 and hasher.encode(query).shape == (80, 2)


@pytest.mark.skipif(fashion_mnist_dir() is None, reason="needs Fashion-MNIST (apt-get install dataset-fashion-mnist)")
def test_cli_trains_bihalf_on_frozen_pca_features(tmp_path, capsys):
    import json

    from deephash_engine.cli import main

    out = tmp_path / "run"
    rc = main(["train", "--method", "bihalf", "--dataset", "fashion-mnist-mini", "--bits", "12",
               "--epochs", "2", "--batch-size", "64", "--threads", "1", "--device", "cpu",
               "--out", str(out), "--no-progress"])
    assert rc == 0
    assert "bihalf 12 bits on fashion-mnist-mini: mAP@all" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert "model: pca" in (out / "config.yaml").read_text()
    assert summary["map"]["all"] > 0.3  # random 12-bit codes score about 0.1 here
