"""Trainer: seeded, resumable identically, validation-only model selection, a real smoke run."""

import numpy as np
import pytest
import torch

from deephash_engine.datasets import fashion_mnist_dir
from deephash_engine.deep.data import load_protocol
from deephash_engine.deep.evaluation import encode, pack_codes
from deephash_engine.metrics import mean_average_precision
from deephash_engine.deep.methods import build_loss
from deephash_engine.deep.models import build_model
from deephash_engine.deep.trainer import Trainer, build_optimizer, build_scheduler
from toy_images import quadrant_dataset


def _toy(n=96, seed=0):
    return quadrant_dataset(n, seed, flip=True)


def _trainer(method, tmp, seed=0, **kw):
    torch.manual_seed(seed)
    data = _toy()
    model = build_model("small_cnn", 16, in_channels=1, image_size=8)
    loss = build_loss(method, 16, len(data), 4)
    opt = build_optimizer(model, loss, "adam", 1e-2)
    sched = build_scheduler(opt, "cosine", epochs=4)
    return Trainer(model, loss, data, opt, sched, val_query=_toy(16, 1), val_database=data,
                   batch_size=32, seed=seed, checkpoint_dir=tmp, progress=False, **kw)


def _state(trainer):
    return {**{f"m.{k}": v for k, v in trainer.model.state_dict().items()},
            **{f"l.{k}": v for k, v in trainer.loss.state_dict().items()}}


@pytest.mark.parametrize("method", ["dsdh", "hashnet", "greedyhash", "dqn", "dtq"])
def test_resume_continues_identically(tmp_path, method):
    full = _trainer(method, tmp_path / "full")
    full.fit(4)
    part = _trainer(method, tmp_path / "part")
    part.fit(2)
    resumed = _trainer(method, tmp_path / "other", seed=123)  # fresh weights, other seed
    resumed.resume(tmp_path / "part" / "last.pt")
    assert resumed.epoch == 2 and resumed.seed == 0
    resumed.fit(4)
    a, b = _state(full), _state(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert [h["train_loss"] for h in full.history] == [h["train_loss"] for h in resumed.history]


def test_best_checkpoint_follows_validation_only(tmp_path):
    tr = _trainer("csq", tmp_path)
    tr.fit(3)
    vals = [h["val_map"] for h in tr.history]
    assert tr.best["val_map"] == max(vals) and tr.best["epoch"] == vals.index(max(vals)) + 1
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    assert best["epoch"] == tr.best["epoch"] and best["config"] == {}
    assert (tmp_path / "last.pt").is_file()


def test_pack_codes_follows_the_engine_contract():
    x = np.array([[0.0, -1.0, 2.0, -0.5, 1.0, 1.0, -3.0, 0.1, -1.0, 0, 0, 0, 0, 0, 0, 0]])
    codes = pack_codes(x)
    assert codes.dtype == np.uint8 and codes.shape == (1, 2)
    assert codes.tolist() == [[0b10110101, 0b11111110]]
    assert pack_codes(x[:, :12]).tolist() == [[0b10110101, 0b00001110]]  # 12 bits: padding bits 0
    with pytest.raises(ValueError, match="nbits >= 1"):
        pack_codes(np.zeros((1, 0)))


def test_reference_map_on_a_hand_case():
    # one query, database ranked by distance 0, 1, 1, 2 (ties by index): relevant at ranks 1 and 3
    q = np.array([[0b0000]], dtype=np.uint8)
    db = np.array([[0b0000], [0b0001], [0b0010], [0b0011]], dtype=np.uint8)
    ql = np.array([[1.0, 0.0]])
    dl = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    assert mean_average_precision(q, db, ql, dl) == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert mean_average_precision(q, db, ql, dl, topk=2) == pytest.approx(1.0)


@pytest.mark.skipif(fashion_mnist_dir() is None, reason="needs Fashion-MNIST (apt-get install dataset-fashion-mnist)")
def test_smoke_training_on_fashion_mnist_raises_map(tmp_path):
    torch.manual_seed(0)
    data = load_protocol("fashion-mnist-mini", seed=0)
    model = build_model("small_cnn", 32, data.in_channels, data.image_size)
    loss = build_loss("greedyhash", 32, len(data.train), data.num_classes)
    opt = build_optimizer(model, loss, "adam", 1e-3)
    q, ql = encode(model, data.query)
    d, dl = encode(model, data.database)
    before = mean_average_precision(q, d, ql, dl)
    Trainer(model, loss, data.train, opt, batch_size=128, seed=0, progress=False).fit(2)
    q, ql = encode(model, data.query)
    d, dl = encode(model, data.database)
    after = mean_average_precision(q, d, ql, dl)
    assert before < 0.4 and after > before + 0.3, (before, after)
