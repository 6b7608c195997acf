"""Checkpoints and run folders load with weights_only=True: a pickled object is refused before it
can run, version 1 run folders (NumPy arrays inside) still load, NaN outputs never become codes."""

from dataclasses import asdict

import numpy as np
import pytest
import torch

from deephash_engine.deep.checkpoints import (
    CHECKPOINT_VERSION,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
    upgrade_checkpoint,
)
from deephash_engine.deep.data import ArrayHashingDataset
from deephash_engine.deep.evaluation import encode, pack_codes
from deephash_engine.deep.models import build_model
from deephash_engine.deep.run import RunConfig, load_trained_model


class WritesMarker:
    """Unpickling this calls open(marker, "w"): the marker file appears iff the loader ran code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _run_state(nbits=16, config=None):
    torch.manual_seed(0)
    model = build_model("small_cnn", nbits, in_channels=1, image_size=8)
    cfg = config if config is not None else asdict(RunConfig(nbits=nbits, model="small_cnn"))
    return model, {
        "version": CHECKPOINT_VERSION, "config": cfg, "epoch": 1, "model": model.state_dict(),
        "data": {"in_channels": 1, "image_size": 8, "source": "fashion-mnist", "num_classes": 4},
        "codes": {"query": np.zeros((3, nbits // 8), np.uint8)},
    }


def test_a_saved_checkpoint_loads_with_torch_weights_only(tmp_path):
    _, state = _run_state()
    save_checkpoint(state, tmp_path / "c.pt")
    raw = torch.load(tmp_path / "c.pt", weights_only=True)  # raises if anything needs unpickling
    assert raw["version"] == CHECKPOINT_VERSION
    assert isinstance(raw["codes"]["query"], torch.Tensor)  # NumPy arrays are stored as tensors


@pytest.mark.parametrize("where", ["top", "config", "model"])
def test_a_pickled_object_is_refused_and_never_runs(tmp_path, where):
    marker = tmp_path / "marker"
    model, state = _run_state()
    if where == "top":
        state["payload"] = WritesMarker(marker)
    elif where == "config":
        state["config"]["weights"] = WritesMarker(marker)
    else:
        state["model"]["hash_layer.bias"] = WritesMarker(marker)
    (tmp_path / "run").mkdir()
    for path in (tmp_path / "run" / "model.pt", tmp_path / "last.pt"):
        torch.save(state, path)  # what an attacker would write
    with pytest.raises(CheckpointError, match="refused.*upgrade_checkpoint"):
        load_trained_model(tmp_path / "run")
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(tmp_path / "last.pt")
    assert not marker.exists()


def test_run_folder_round_trip_and_a_version_1_folder(tmp_path):
    model, state = _run_state()
    run = tmp_path / "run"
    run.mkdir()
    save_checkpoint(state, run / "model.pt")
    loaded, ckpt = load_trained_model(run)
    x = torch.randn(5, 1, 8, 8)
    model.eval()
    assert torch.equal(loaded(x), model(x))
    # version 1: NumPy arrays in the file, and the config key "bits" (now nbits)
    old = dict(state, version=1, codes={"query": np.ones((3, 2), np.uint8)},
               labels={"query": np.eye(3, dtype=np.float32)})
    old["config"] = {("bits" if k == "nbits" else k): v for k, v in state["config"].items()}
    torch.save(old, run / "model.pt")
    loaded, ckpt = load_trained_model(run)
    assert torch.equal(loaded(x), model(x))
    assert np.array_equal(ckpt["codes"]["query"], np.ones((3, 2), np.uint8))


def test_an_object_array_in_a_version_1_file_is_refused(tmp_path):
    _, state = _run_state()
    state["version"] = 1
    state["codes"] = {"query": np.array([{"a": 1}, None], dtype=object)}
    torch.save(state, tmp_path / "c.pt")
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "c.pt")


def test_a_checkpoint_that_does_not_fit_its_model_is_refused(tmp_path):
    _, state = _run_state()
    state["model"]["hash_layer.weight"] = torch.zeros(8, 512)  # config says 16 bits
    (tmp_path / "run").mkdir()
    save_checkpoint(state, tmp_path / "run" / "model.pt")
    with pytest.raises(CheckpointError, match="hash_layer.weight: expected \\(16, 512\\)"):
        load_trained_model(tmp_path / "run")


def test_upgrade_converts_a_trusted_file_and_demands_trust(tmp_path):
    _, state = _run_state()
    state["extra"] = np.float64(0.5)  # a NumPy scalar: not in the safe set of version 2
    state["when"] = __import__("datetime").date(2026, 1, 2)  # a pickled object
    torch.save(state, tmp_path / "c.pt")
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "c.pt")
    with pytest.raises(ValueError, match="trusted"):
        upgrade_checkpoint(tmp_path / "c.pt")
    state.pop("when")
    torch.save(state, tmp_path / "c.pt")
    upgrade_checkpoint(tmp_path / "c.pt", tmp_path / "d.pt", trusted=True)
    assert load_checkpoint(tmp_path / "d.pt")["extra"] == 0.5


def test_nan_outputs_raise_instead_of_becoming_zero_bits():
    outputs = np.ones((3, 16), np.float32)
    outputs[1, 5] = np.nan
    with pytest.raises(ValueError, match="NaN.*diverged"):
        pack_codes(outputs)

    class Diverged(torch.nn.Module):  # a model whose outputs went NaN for one sample
        def forward(self, x):
            out = torch.ones(x.shape[0], 16)
            out[-1, 3] = float("nan")
            return out

    data = ArrayHashingDataset(np.zeros((5, 8, 8), np.uint8), np.eye(5, dtype=np.float32), (0.5,), (0.5,))
    with pytest.raises(ValueError, match="NaN.*diverged"):
        encode(Diverged(), data, batch_size=2)


def _with_pickle(src, dst, payload: bytes):
    """Copy a torch checkpoint, replacing its pickle (data.pkl) by ``payload``."""
    import zipfile

    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for item in zin.infolist():
            data = payload if item.filename.endswith("/data.pkl") else zin.read(item.filename)
            zout.writestr(item, data)


@pytest.mark.parametrize("where", ["version", "config"])
def test_nesting_deeper_than_the_recursion_limit_is_refused_cleanly(tmp_path, where):
    depth = 50_000  # the unpickler builds it without recursion; a recursive walk would fail
    nested = b"]" * depth + b"a" * (depth - 1)  # EMPTY_LIST x depth, then APPEND each into the last
    head = b"\x80\x02}q\x00("  # PROTO 2, EMPTY_DICT, MARK
    items = {
        "version": b"X\x07\x00\x00\x00version" + nested,
        "config": b"X\x07\x00\x00\x00versionK\x02X\x06\x00\x00\x00config}X\x06\x00\x00\x00select"
                  + nested + b"sX\x04\x00\x00\x00data}X\x05\x00\x00\x00model}",
    }[where]
    payload = head + items + b"u."  # SETITEMS, STOP
    torch.save({"x": 1}, tmp_path / "template.pt")
    (tmp_path / "run").mkdir()
    _with_pickle(tmp_path / "template.pt", tmp_path / "run" / "model.pt", payload)
    expected = {"version": "version in \\(1, 2\\), got list", "config": "select: expected .*, got a list"}
    with pytest.raises(CheckpointError, match=expected[where]):
        load_trained_model(tmp_path / "run")


def test_deephash_encode_refuses_a_crafted_run_folder(tmp_path, capsys):
    from deephash_engine.cli import main

    marker = tmp_path / "marker"
    _, state = _run_state()
    state["config"]["model"] = WritesMarker(marker)
    (tmp_path / "run").mkdir()
    torch.save(state, tmp_path / "run" / "model.pt")
    np.save(tmp_path / "imgs.npy", np.zeros((2, 8, 8), np.uint8))
    rc = main(["encode", "--run", str(tmp_path / "run"), "--input", str(tmp_path / "imgs.npy"),
               "--output", str(tmp_path / "codes.npy"), "--no-progress"])
    assert rc == 2 and "refused" in capsys.readouterr().err
    assert not marker.exists() and not (tmp_path / "codes.npy").exists()


def test_quantization_runs_load_with_their_embedding_width(tmp_path):
    # DVSQ's network is 300 wide whatever the code length; a run records it as loss_params
    # embed_dim, and a run saved before that existed (no embed_dim) was as wide as its code.
    from deephash_engine.deep.run import head_width

    assert head_width(RunConfig(method="dvsq", nbits=16)) == 300
    assert head_width(RunConfig(method="dvsq", nbits=16), saved=True) == 16
    assert head_width(RunConfig(method="dvsq", nbits=16, loss_params={"embed_dim": 32}), saved=True) == 32
    assert head_width(RunConfig(method="dqn", nbits=16)) == 16
    assert head_width(RunConfig(method="dpsh", nbits=16, loss_params={"embed_dim": 300})) == 16  # binary codes
    for width, params in ((300, {"embed_dim": 300}), (16, {})):
        model, state = _run_state(width, asdict(RunConfig(method="dvsq", nbits=16, model="small_cnn",
                                                            loss_params=params)))
        run = tmp_path / f"run{width}"
        run.mkdir()
        save_checkpoint(state, run / "model.pt")
        loaded, _ = load_trained_model(run)
        x = torch.randn(2, 1, 8, 8)
        model.eval()
        assert loaded(x).shape == (2, width) and torch.equal(loaded(x), model(x))


def test_a_quantization_run_records_its_width_and_an_older_one_resumes_at_its_own(tmp_path):
    # A DVSQ run trained before runs recorded embed_dim was as wide as its code: resuming it must
    # keep that width (the new default, 300, would not fit its checkpoint).
    from deephash_engine.deep.run import train_run

    vectors = tmp_path / "labels.npy"
    np.save(vectors, np.eye(10, 16, dtype=np.float32) + 0.05)
    base = {"method": "dvsq", "dataset": "fashion-mnist-mini", "nbits": 16, "threads": 1, "device": "cpu",
            "loss_params": {"label_embeddings": str(vectors)}}
    fresh = tmp_path / "fresh"
    train_run({**base, "epochs": 1}, fresh, progress=False)
    assert "embed_dim: 300" in (fresh / "config.yaml").read_text()  # recorded, not left to the default

    old = tmp_path / "old"
    train_run({**base, "epochs": 1, "loss_params": {**base["loss_params"], "embed_dim": 16}}, old, progress=False)
    last = old / "checkpoints" / "last.pt"
    state = load_checkpoint(last)
    del state["config"]["loss_params"]["embed_dim"]  # as a checkpoint written before embed_dim
    save_checkpoint(state, last)
    summary = train_run({**base, "epochs": 2}, old, resume=True, progress=False)
    assert [h["epoch"] for h in summary["history"]] == [1, 2]
    model, _ = load_trained_model(old)
    assert model(torch.zeros(1, 1, 28, 28)).shape == (1, 16)
