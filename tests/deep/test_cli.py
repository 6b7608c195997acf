"""`deephash train` and `deephash encode` end to end on the small Fashion-MNIST protocol."""

import json
from pathlib import Path

import numpy as np
import pytest

from deephash_engine.cli import main
from deephash_engine.datasets import fashion_mnist_dir
from deephash_engine.deep.run import RunConfig

needs_fmnist = pytest.mark.skipif(
    fashion_mnist_dir() is None, reason="needs Fashion-MNIST (apt-get install dataset-fashion-mnist)"
)


def test_config_rejects_unknown_keys_and_bad_bits():
    with pytest.raises(ValueError, match="unknown \\['epoch'\\]"):
        RunConfig.from_dict({"epoch": 3})
    with pytest.raises(ValueError, match="nbits: expected an int in \\[1, 1048576\\], got 0"):
        RunConfig.from_dict({"bits": 0})
    assert RunConfig.from_dict({"bits": 12}).nbits == 12


def test_cli_reports_bad_arguments_without_a_traceback(tmp_path, capsys):
    rc = main(["train", "--method", "nope", "--dataset", "fashion-mnist-mini", "--out", str(tmp_path / "r")])
    assert rc == 2
    assert "method: expected one of" in capsys.readouterr().err


@needs_fmnist
def test_train_then_encode(tmp_path, capsys):
    import deephash_engine

    cfg = tmp_path / "c.yaml"
    cfg.write_text("method: dpsh\nbits: 32\nepochs: 3\nlr: 0.001\nregularizers: {bit_balance: 0.01}\n")
    out = tmp_path / "run"
    rc = main(["train", "--config", str(cfg), "--method", "csq", "--dataset", "fashion-mnist-mini",
               "--bits", "16", "--epochs", "1", "--threads", "1", "--device", "cpu",
               "--param", "lambda_q=0.001", "--out", str(out), "--no-progress"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "csq 16 bits on fashion-mnist-mini: mAP@all" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] == "csq" and summary["nbits"] == 16  # the command line wins
    assert summary["counts"] == {"train": 2000, "val": 500, "query": 500, "database": 5000}
    assert summary["map"]["all"] > 0.5
    for name in ("config.yaml", "split.npz", "split.json", "codes.npz", "model.pt", "report.json",
                 "database.index", "checkpoints/last.pt", "checkpoints/best.pt"):
        assert (out / name).is_file(), name
    report = json.loads((out / "report.json").read_text())
    assert report["map"] == pytest.approx(summary["map"]["all"])
    codes = np.load(out / "codes.npz")
    assert codes["database_codes"].shape == (5000, 2) and codes["database_codes"].dtype == np.uint8
    index = deephash_engine.load_index(out / "database.index")
    assert index.ntotal == 5000 and index.nbits == 16
    assert np.array_equal(index.reconstruct(17), codes["database_codes"][17])

    # encode: the run's own query images give back the run's query codes
    from deephash_engine.datasets import load_fashion_mnist_pool

    pool = load_fashion_mnist_pool()
    images = pool.images[codes["query_index"][:40]]
    np.save(tmp_path / "imgs.npy", images)
    rc = main(["encode", "--run", str(out), "--input", str(tmp_path / "imgs.npy"),
               "--output", str(tmp_path / "codes.npy"), "--no-progress"])
    assert rc == 0
    assert np.array_equal(np.load(tmp_path / "codes.npy"), codes["query_codes"][:40])

    # resume: asking for one more epoch continues from the last checkpoint
    rc = main(["train", "--config", str(cfg), "--method", "csq", "--dataset", "fashion-mnist-mini",
               "--bits", "16", "--epochs", "2", "--threads", "1", "--device", "cpu",
               "--param", "lambda_q=0.001", "--out", str(out), "--no-progress", "--resume"])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert [h["epoch"] for h in summary["history"]] == [1, 2]


@needs_fmnist
def test_train_takes_a_code_length_that_is_not_a_multiple_of_8(tmp_path, capsys):
    import deephash_engine

    out = tmp_path / "run12"
    rc = main(["train", "--method", "dpsh", "--dataset", "fashion-mnist-mini", "--bits", "12", "--epochs", "1",
               "--threads", "1", "--device", "cpu", "--out", str(out), "--no-progress"])
    assert rc == 0
    assert "dpsh 12 bits on fashion-mnist-mini: mAP@all" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["nbits"] == 12 and summary["map"]["all"] > 0.2
    codes = np.load(out / "codes.npz")
    for name in ("database_codes", "query_codes"):
        assert codes[name].shape[1] == 2 and not (codes[name][:, 1] & 0xF0).any()  # padding bits 12..15 zero
    index = deephash_engine.load_index(out / "database.index")
    assert index.nbits == 12 and index.code_size == 2 and index.ntotal == 5000


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_every_shipped_config_is_a_valid_run_config(path):
    from deephash_engine.deep.methods import METHODS
    from deephash_engine.deep.run import load_config_file

    cfg = RunConfig.from_dict(load_config_file(path))
    assert cfg.method in METHODS


def test_train_help_lists_every_registered_name_including_a_new_loss(capsys, monkeypatch):
    from deephash_engine.deep.data import PROTOCOLS
    from deephash_engine.deep.losses import LOSSES, HashLoss
    from deephash_engine.deep.methods import METHODS, REGULARIZERS
    from deephash_engine.deep.models import MODELS

    class ZeroLoss(HashLoss):  # one class with a method name is all a new loss needs
        method = "zero-test-loss"

        def compute(self, u, target, index):
            return u.sum() * 0.0

    monkeypatch.setenv("COLUMNS", "10000")  # no wrapping (argparse may break names at hyphens)
    try:
        assert METHODS["zero-test-loss"] is ZeroLoss
        with pytest.raises(SystemExit):
            main(["train", "--help"])
        text = capsys.readouterr().out
    finally:
        del LOSSES["zero-test-loss"]
    for name in [*METHODS, "zero-test-loss", *PROTOCOLS, *MODELS, *REGULARIZERS]:
        assert name in text, name
