"""fashion-mnist-mosaic: seeded 2 x 2 mosaics, labels = the classes shown, query and database
built from disjoint source images, assembled lazily, and learnable by a multi-label loss."""

import numpy as np
import pytest
import torch
import yaml

from deephash_engine.cli import main
from deephash_engine.datasets import LabelledArrays, MosaicPool, build_mosaic_pool, fashion_mnist_dir, one_hot
from deephash_engine.datasets.mosaic import DATABASE_PART, QUERY_PART, draw_slot_classes
from deephash_engine.deep.data import MosaicHashingDataset, get_protocol, load_protocol
from deephash_engine.deep.evaluation import encode
from deephash_engine.deep.methods import build_loss
from deephash_engine.deep.models import build_model
from deephash_engine.deep.trainer import Trainer, build_optimizer
from deephash_engine.metrics import mean_average_precision

needs_fmnist = pytest.mark.skipif(
    fashion_mnist_dir() is None, reason="needs Fashion-MNIST (apt-get install dataset-fashion-mnist)"
)


def _pool(train_per_class=30, test_per_class=12, classes=10, side=4, seed=0):
    """A small single-label pool: random 4x4 images, train part first, test part after."""
    rng = np.random.default_rng(seed)
    y = np.r_[np.repeat(np.arange(classes), train_per_class), np.repeat(np.arange(classes), test_per_class)]
    images = rng.integers(0, 256, (y.shape[0], side, side), dtype=np.uint8)
    official = np.arange(y.shape[0]) < classes * train_per_class
    return LabelledArrays(images, one_hot(y, classes), official)


def test_same_seed_same_arrays_other_seed_differs():
    pool = _pool()
    a = build_mosaic_pool(pool, 5, database=300, query=40)
    b = build_mosaic_pool(pool, 5, database=300, query=40)
    for name in ("tiles", "targets", "part"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert np.array_equal(a.mosaics(), b.mosaics())
    c = build_mosaic_pool(pool, 6, database=300, query=40)
    assert not np.array_equal(a.tiles, c.tiles) and not np.array_equal(a.targets, c.targets)


def test_labels_are_the_set_of_classes_of_the_four_tiles():
    pool = _pool()
    mosaics = build_mosaic_pool(pool, 1, database=300, query=40)
    source_labels = pool.targets.argmax(1)
    for tiles, target in zip(mosaics.tiles, mosaics.targets):
        expected = np.zeros(10, np.float32)
        for row in tiles:
            expected[source_labels[row]] = 1.0
        assert np.array_equal(target, expected)
    assert mosaics.targets.dtype == np.float32
    assert set(mosaics.targets.sum(1).astype(int)) == {1, 2, 3, 4}


def test_class_count_distribution_and_uniform_classes():
    slots = draw_slot_classes(40_000, 10, np.random.default_rng(0), (0.4, 0.3, 0.2, 0.1))
    k = np.array([len(set(row)) for row in slots[:8000]])
    assert np.allclose(np.bincount(k, minlength=5)[1:] / k.size, [0.4, 0.3, 0.2, 0.1], atol=0.02)
    assert np.allclose(np.bincount(slots.ravel(), minlength=10) / slots.size, 0.1, atol=0.005)
    # the slot order is shuffled: a class shown once is as often in each of the four slots
    lone = np.array([np.sum(row == row[j]) == 1 for row in slots[:8000] for j in range(4)]).reshape(-1, 4)
    assert np.allclose(lone.mean(0), lone.mean(), atol=0.02)
    with pytest.raises(ValueError, match="class_count_probs: expected 4 probabilities summing to 1"):
        draw_slot_classes(5, 10, np.random.default_rng(0), (0.5, 0.5, 0.5, 0.0))
    with pytest.raises(ValueError, match="num_classes: expected >= 4"):
        draw_slot_classes(5, 3, np.random.default_rng(0))


def test_query_and_database_share_no_source_image_and_candidates_are_used_evenly():
    pool = _pool()
    mosaics = build_mosaic_pool(pool, 2, database=300, query=40)
    query_tiles = mosaics.tiles[mosaics.part == QUERY_PART]
    database_tiles = mosaics.tiles[mosaics.part == DATABASE_PART]
    assert query_tiles.shape == (40, 4) and database_tiles.shape == (300, 4)
    assert pool.official_train[database_tiles].all() and not pool.official_train[query_tiles].any()
    assert not set(query_tiles.ravel()) & set(database_tiles.ravel())
    # round robin: within a class, no image is used twice before every image is used once
    labels = pool.targets.argmax(1)
    uses = np.bincount(database_tiles.ravel(), minlength=len(pool))
    for c in range(10):
        rows = np.flatnonzero(pool.official_train & (labels == c))
        assert uses[rows].max() - uses[rows].min() <= 1
    assert all(len(set(row)) == 4 for row in mosaics.tiles)  # four different images per mosaic


def test_a_mosaic_is_the_2x2_tiling_of_its_source_images():
    pool = _pool()
    mosaics = build_mosaic_pool(pool, 3, database=50, query=10)
    images = mosaics.mosaics()
    assert isinstance(mosaics, MosaicPool)
    assert images.shape == (60, 8, 8) and images.dtype == np.uint8 and mosaics.image_size == 8
    for image, (tl, tr, bl, br) in zip(images, mosaics.tiles):
        expected = np.block([[pool.images[tl], pool.images[tr]], [pool.images[bl], pool.images[br]]])
        assert np.array_equal(image, expected)
    rows = np.array([7, 2, 55])
    dataset = MosaicHashingDataset(mosaics, rows, mean=(0.25,), std=(0.5,))
    x, target, index = dataset.__getitems__([2, 0])
    assert x.shape == (2, 1, 8, 8) and index.tolist() == [2, 0]
    expected = (images[rows[[2, 0]]].astype(np.float32) / 255.0 - 0.25) / 0.5
    assert np.allclose(x[:, 0].numpy(), expected, atol=1e-6)
    assert np.array_equal(target.numpy(), mosaics.targets[rows[[2, 0]]])
    part = dataset.subset([1])
    assert len(part) == 1 and np.array_equal(part[0][0].numpy(), dataset[1][0].numpy())


def test_a_multi_label_source_is_refused():
    pool = _pool()
    pool.targets[3, (pool.targets[3].argmax() + 1) % 10] = 1.0
    with pytest.raises(ValueError, match="expected one label per source image, got 2 in row 3"):
        build_mosaic_pool(pool, 0, database=10, query=5)


@needs_fmnist
def test_protocol_counts_split_reuse_and_disjoint_sources(tmp_path):
    data = load_protocol("fashion-mnist-mosaic", seed=4, split_path=tmp_path / "split.npz")
    assert data.split.counts() == get_protocol("fashion-mnist-mosaic").counts
    assert data.split.counts() == {"query": 1000, "train": 4500, "val": 500, "database": 20000}
    assert (data.image_size, data.in_channels, data.num_classes) == (56, 1, 10)
    database = set(data.split.database)
    assert not set(data.split.query) & database
    assert set(data.split.train) <= database and set(data.split.val) <= database
    assert not set(data.split.train) & set(data.split.val)
    assert not set(data.query.tiles.ravel()) & set(data.database.tiles.ravel())
    x, t, _ = data.train.__getitems__([0, 1])
    assert x.shape == (2, 1, 56, 56) and t.shape == (2, 10)
    # a second load with another seed but the same split file rebuilds the same mosaics
    again = load_protocol("fashion-mnist-mosaic", seed=9, split_path=tmp_path / "split.npz")
    assert again.split.seed == 4 and np.array_equal(again.database.tiles, data.database.tiles)
    other = load_protocol("fashion-mnist-mosaic", seed=9)
    assert not np.array_equal(other.database.tiles, data.database.tiles)


@needs_fmnist
def test_short_csq_run_beats_random_codes_under_share_one_label_relevance():
    data = load_protocol("fashion-mnist-mosaic", seed=0)
    train = data.train.subset(np.arange(768))
    query, database = data.query.subset(np.arange(200)), data.database.subset(np.arange(2000))
    torch.manual_seed(0)
    model = build_model("small_cnn", 32, data.in_channels, data.image_size)
    loss = build_loss("csq", 32, len(train), data.num_classes)
    opt = build_optimizer(model, loss, "adam", 1e-3)
    Trainer(model, loss, train, opt, batch_size=64, seed=0, progress=False).fit(2)
    q, ql = encode(model, query)
    d, dl = encode(model, database)
    assert ql.ndim == 2 and set(np.unique(ql.sum(1))) == {1, 2, 3, 4}  # multi-hot targets
    trained = mean_average_precision(q, d, ql, dl)
    rng = np.random.default_rng(0)
    random_codes = mean_average_precision(rng.integers(0, 256, q.shape, dtype=np.uint8),
                                          rng.integers(0, 256, d.shape, dtype=np.uint8), ql, dl)
    assert 0.2 < random_codes < 0.5 and trained > random_codes + 0.25, (random_codes, trained)


def test_cli_takes_the_protocol_by_name(tmp_path):
    out = tmp_path / "run"
    rc = main(["train", "--method", "nope", "--protocol", "fashion-mnist-mosaic", "--out", str(out)])
    assert rc == 2  # the unknown method (or absent data) stops it after the config is written
    assert yaml.safe_load((out / "config.yaml").read_text())["dataset"] == "fashion-mnist-mosaic"
