"""Fuzz ``deephash_engine.deep.run.load_trained_model``: the input is a run folder's ``model.pt``
as it is (first byte even) or, first byte odd, the recipe of a checkpoint built here: a small
model's state and config with fields dropped, retyped or reshaped from the input. Whatever
loads encodes a zero image. Documented errors: ValueError (with CheckpointError), OSError,
ImportError (a torchvision backbone without torchvision)."""

from __future__ import annotations

import io
from dataclasses import asdict

import atheris
import torch

import _harness

with atheris.instrument_imports(include=["deephash_engine"]):
    from deephash_engine.deep.models import build_model
    from deephash_engine.deep.run import RunConfig, load_trained_model

RUN = _harness.scratch_path("run")
ALLOWED = (ValueError, OSError, ImportError)
ODD_VALUES = (None, True, -1, 0, 2 ** 40, 1.5, "x", [1], {"a": 1}, torch.zeros(2))
DTYPES = (torch.float32, torch.float64, torch.float16, torch.int64, torch.uint8, torch.bool)
_MODELS: dict = {}


def _model_state(nbits: int, channels: int, size: int) -> dict:
    key = (nbits, channels, size)
    if key not in _MODELS:
        torch.manual_seed(0)
        _MODELS[key] = build_model("small_cnn", nbits, channels, size).state_dict()
    return dict(_MODELS[key])


def _mutate(fdp, mapping: dict) -> None:
    """Drop, retype or add a few entries of a dict, in place."""
    for _ in range(fdp.ConsumeIntInRange(0, 3)):
        keys = sorted(mapping, key=str)
        action = fdp.ConsumeIntInRange(0, 2)
        if action == 0 and keys:
            mapping.pop(keys[fdp.ConsumeIntInRange(0, len(keys) - 1)])
        elif action == 1 and keys:
            mapping[keys[fdp.ConsumeIntInRange(0, len(keys) - 1)]] = ODD_VALUES[
                fdp.ConsumeIntInRange(0, len(ODD_VALUES) - 1)]
        else:
            mapping[fdp.ConsumeUnicodeNoSurrogates(6)] = ODD_VALUES[fdp.ConsumeIntInRange(0, len(ODD_VALUES) - 1)]


def _mutate_tensors(fdp, state: dict) -> None:
    for _ in range(fdp.ConsumeIntInRange(0, 2)):
        keys = sorted(state)
        if not keys:
            return
        name = keys[fdp.ConsumeIntInRange(0, len(keys) - 1)]
        tensor = state[name]
        if not isinstance(tensor, torch.Tensor):
            continue
        if fdp.ConsumeBool():
            state[name] = tensor.to(DTYPES[fdp.ConsumeIntInRange(0, len(DTYPES) - 1)])
        else:
            shape = [max(0, s + fdp.ConsumeIntInRange(-1, 1)) for s in tensor.shape]
            state[name] = torch.zeros(shape, dtype=tensor.dtype)


def built_checkpoint(fdp) -> bytes:
    nbits = fdp.ConsumeIntInRange(1, 24)
    channels, size = fdp.ConsumeIntInRange(1, 3), 4 * fdp.ConsumeIntInRange(1, 2)
    config = asdict(RunConfig(nbits=nbits))
    data = {"in_channels": channels, "image_size": size, "source": "fashion-mnist", "num_classes": 10}
    state = _model_state(nbits, channels, size)
    ckpt = {"version": 2, "config": config, "data": data, "model": state, "epoch": 1}
    if fdp.ConsumeBool():
        config["nbits"] = fdp.ConsumeIntInRange(-1, 32)
    if fdp.ConsumeBool():
        data["image_size"] = fdp.ConsumeIntInRange(-1, 9)
        data["in_channels"] = fdp.ConsumeIntInRange(-1, 4)
    for part in (ckpt, config, data):
        if fdp.ConsumeIntInRange(0, 3) == 0:
            _mutate(fdp, part)
    if fdp.ConsumeBool():
        _mutate_tensors(fdp, state)
    buffer = io.BytesIO()
    torch.save(ckpt, buffer)
    return buffer.getvalue()


def check(data: bytes) -> None:
    if data[:1] and data[0] % 2:
        data = built_checkpoint(atheris.FuzzedDataProvider(data[1:]))
    _harness.write(RUN + "/model.pt", data)
    try:
        model, ckpt = load_trained_model(RUN)
    except ALLOWED:
        return
    info = ckpt["data"]
    if info["image_size"] * info["image_size"] * info["in_channels"] <= 4096:
        with torch.no_grad():
            out = model(torch.zeros(2, info["in_channels"], info["image_size"], info["image_size"]))
        assert out.shape == (2, model.nbits), out.shape


if __name__ == "__main__":
    import os

    os.makedirs(RUN, exist_ok=True)
    torch.set_num_threads(1)
    _harness.main(check)
