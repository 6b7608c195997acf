"""Datasets yield (input, target, index); protocols have exact counts, are seeded and saved."""

import gzip
import pickle
import struct

import numpy as np
import pytest
import torch

from deephash_engine.datasets import fashion_mnist_dir, load_cifar10_pool, load_mnist_pool, read_image_list
from deephash_engine.deep.data import (
    PROTOCOLS,
    ArrayHashingDataset,
    Split,
    get_protocol,
    load_protocol,
    make_loader,
    stratified_pick,
)

needs_fmnist = pytest.mark.skipif(
    fashion_mnist_dir() is None, reason="needs Fashion-MNIST (apt-get install dataset-fashion-mnist)"
)


def _labels(n_per_class, classes=10, seed=0):
    y = np.repeat(np.arange(classes), n_per_class)
    return np.random.default_rng(seed).permutation(y)


def _one_hot(y, c=10):
    t = np.zeros((len(y), c), dtype=np.float32)
    t[np.arange(len(y)), y] = 1
    return t


@pytest.mark.parametrize("name", ["cifar10", "cifar10-1", "cifar10-2"])
def test_cifar_protocols_have_exact_disjoint_counts(name):
    targets = _one_hot(_labels(6000))
    part = np.r_[np.zeros(50000, int), np.ones(10000, int)]
    protocol = get_protocol(name)
    split = protocol.split(targets, part, seed=3)
    assert split.counts() == protocol.counts
    q, tr, va, db = (set(split.query), set(split.train), set(split.val), set(split.database))
    assert not q & tr and not q & va and not tr & va and not q & db
    labels = targets.argmax(1)
    if name != "cifar10-2":
        assert np.bincount(labels[split.query], minlength=10).tolist() == [100] * 10
        assert np.bincount(labels[split.val], minlength=10).tolist() == [50] * 10
    if name == "cifar10":
        assert tr <= db and va <= db  # the 59k database holds the training images
    if name == "cifar10-1":
        assert not tr & db and not va & db
    if name == "cifar10-2":
        assert split.topk == 1000 and set(split.query) == set(range(50000, 60000))
    again = protocol.split(targets, part, seed=3)
    other = protocol.split(targets, part, seed=4)
    assert all(np.array_equal(getattr(split, p), getattr(again, p)) for p in ("train", "val", "query"))
    assert not np.array_equal(split.val, other.val)


def test_protocol_refuses_a_pool_of_the_wrong_size():
    targets = _one_hot(_labels(5000))
    part = np.r_[np.zeros(40000, int), np.ones(10000, int)]
    with pytest.raises(ValueError, match="expected 49000 train samples, got 39000"):
        get_protocol("cifar10-2").split(targets, part, seed=0)


def test_nus_wide_first_open_quota_rule_and_split_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    n = 20000
    targets = (rng.random((n, 21)) < 0.12).astype(np.float32)
    targets[np.arange(n), rng.integers(0, 21, n)] = 1  # every image has a label
    split = get_protocol("nus-wide-21").split(targets, np.zeros(n, int), seed=1)
    c = split.counts()
    assert (c["query"], c["train"], c["val"], c["database"]) == (2100, 9450, 1050, n - 2100)
    path = split.save(tmp_path / "split.npz")
    back = Split.load(path, pool_size=n)
    assert back.protocol == "nus-wide-21" and back.topk == 5000 and back.seed == 1
    for p in ("train", "val", "query", "database"):
        assert np.array_equal(getattr(back, p), getattr(split, p))
    assert (tmp_path / "split.json").is_file()
    with pytest.raises(ValueError, match="pool of 20000"):
        Split.load(path, pool_size=n + 1)


def test_stratified_pick_reports_short_classes():
    targets = _one_hot(np.r_[np.zeros(5, int), np.ones(2, int)], 2)
    with pytest.raises(ValueError, match="class 1, only 2 available"):
        stratified_pick(targets, np.arange(7), 3, np.random.default_rng(0))


def test_every_protocol_has_a_topk_and_known_source():
    for p in PROTOCOLS.values():
        assert p.source in {"fashion-mnist", "mnist", "cifar10", "image-list"}
        assert set(p.counts) == {"train", "val", "query", "database"}


def test_array_dataset_yields_input_target_index_and_batches():
    images = np.arange(6 * 4 * 4, dtype=np.uint8).reshape(6, 4, 4)
    ds = ArrayHashingDataset(images, _one_hot(np.arange(6) % 3, 3), mean=(0.0,), std=(1.0,))
    x, t, i = ds[4]
    assert x.shape == (1, 4, 4) and int(i) == 4 and t.tolist() == [0, 1, 0]
    assert torch.allclose(x[0], torch.from_numpy(images[4]).float() / 255)
    seen = []
    for xb, tb, ib in make_loader(ds, batch_size=4, shuffle=True, seed=1):
        assert xb.shape[0] == tb.shape[0] == ib.shape[0]
        seen += ib.tolist()
    assert sorted(seen) == list(range(6))
    order = [ib.tolist() for _, _, ib in make_loader(ds, 4, True, seed=1)]
    assert order == [ib.tolist() for _, _, ib in make_loader(ds, 4, True, seed=1)]
    with pytest.raises(TypeError, match="uint8"):
        ArrayHashingDataset(images.astype(np.float32), _one_hot(np.arange(6) % 3, 3), (0.0,), (1.0,))


def _write_idx(path, arr):
    code = {np.uint8: 0x08}[arr.dtype.type]
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + arr.tobytes())


def test_mnist_idx_folder(tmp_path):
    rng = np.random.default_rng(0)
    for stem, n in (("train", 30), ("t10k", 10)):
        _write_idx(tmp_path / f"{stem}-images-idx3-ubyte.gz", rng.integers(0, 255, (n, 28, 28), dtype=np.uint8))
        _write_idx(tmp_path / f"{stem}-labels-idx1-ubyte.gz", (np.arange(n) % 10).astype(np.uint8))
    pool = load_mnist_pool(tmp_path)
    assert pool.images.shape == (40, 28, 28) and pool.official_train.sum() == 30
    assert pool.targets[33].argmax() == 3
    with pytest.raises(FileNotFoundError, match="train-images"):
        load_mnist_pool(tmp_path / "nowhere")


def test_cifar10_pickle_folder(tmp_path):
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 255, (4, 3072), dtype=np.uint8)
        with open(tmp_path / name, "wb") as fh:
            pickle.dump({b"data": data, b"labels": [1, 2, 3, 4]}, fh)
        if name == "data_batch_1":
            first = data[0]
    pool = load_cifar10_pool(tmp_path)
    assert pool.images.shape == (24, 32, 32, 3) and pool.official_train.sum() == 20
    # channel-planar rows become HWC images: red plane first
    assert np.array_equal(pool.images[0, :, :, 0].ravel(), first[:1024])
    assert pool.targets[:4].argmax(1).tolist() == [1, 2, 3, 4]


def test_image_list_parsing_and_errors(tmp_path):
    f = tmp_path / "train.txt"
    f.write_text("a/1.jpg 0 1 0\nb/2.jpg 1 1 0\n\n")
    il = read_image_list(f)
    assert il.paths == ["a/1.jpg", "b/2.jpg"] and il.root == tmp_path
    assert il.targets.tolist() == [[0, 1, 0], [1, 1, 0]]
    f.write_text("a/1.jpg 0 1 0\nb/2.jpg 1 1\n")
    with pytest.raises(ValueError, match=":2: expected 3 labels, got 2"):
        read_image_list(f)


def test_image_list_protocol_end_to_end(tmp_path):
    pytest.importorskip("PIL")
    from PIL import Image

    rng = np.random.default_rng(0)
    (tmp_path / "img").mkdir()
    lines = {"train": [], "test": [], "database": []}
    for k, (part, n) in enumerate([("train", 10000), ("test", 5000), ("database", 6)]):
        for i in range(n if part == "database" else 0):
            Image.fromarray(rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)).save(tmp_path / f"img/{i}.png")
            lines[part].append(f"img/{i}.png " + " ".join("1" if c == i % 3 else "0" for c in range(3)))
        if part != "database":  # label-only entries are enough to draw the split
            lines[part] = [f"img/x{i}.png " + " ".join("1" if c == i % 3 else "0" for c in range(3)) for i in range(n)]
    for part, rows in lines.items():
        (tmp_path / f"{part}.txt").write_text("\n".join(rows) + "\n")
    lists = {p: tmp_path / f"{p}.txt" for p in lines}
    data = load_protocol("coco", seed=0, lists=lists, split_path=tmp_path / "run" / "split.npz")
    assert data.split.counts() == {"train": 9500, "val": 500, "query": 5000, "database": 6}
    x, t, i = data.database[2]
    assert x.shape == (3, 224, 224) and t.tolist() == [0, 0, 1] and int(i) == 2
    again = load_protocol("coco", seed=99, lists=lists, split_path=tmp_path / "run" / "split.npz")
    assert np.array_equal(again.split.val, data.split.val)  # the saved split wins over the seed


@needs_fmnist
def test_fashion_mnist_protocol_counts(tmp_path):
    data = load_protocol("fashion-mnist", seed=0, split_path=tmp_path / "split.npz")
    assert data.split.counts() == {"train": 59000, "val": 1000, "query": 1000, "database": 60000}
    assert data.num_classes == 10 and data.in_channels == 1 and data.image_size == 28
    assert set(data.split.query) <= set(range(60000, 70000))
    assert not set(data.split.val) & set(data.split.train)
    x, t, i = data.query[0]
    assert x.shape == (1, 28, 28) and float(t.sum()) == 1.0 and int(i) == 0
