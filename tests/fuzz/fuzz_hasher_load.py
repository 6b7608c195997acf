"""Fuzz ``Hasher.load``: the input is either a file as it is (first byte even) or, first byte odd,
the recipe of a hasher archive built here: a method, constructor parameters near their defaults,
and learned arrays whose dtypes and shapes are mostly the ones the parameters call for, with
values from the input. Whatever loads encodes a few rows. Documented errors: OSError (with
HasherFileError) and ValueError (with HasherFormatError)."""

from __future__ import annotations

import inspect
import io
import json

import numpy as np

import atheris

import _harness

with atheris.instrument_imports(include=["deephash_engine"]):
    from deephash_engine.hashing import Hasher, registered_methods

PATH = _harness.scratch_path("input.npz")
ALLOWED = (OSError, ValueError)
DTYPES = (np.float64, np.float64, np.float64, np.float32, np.int64, np.bool_, np.uint8)


def _value(fdp, default):
    """A parameter value: mostly the default, else a small value of some JSON type."""
    kind = fdp.ConsumeIntInRange(0, 9)
    if kind < 5:
        return default
    if kind == 5:
        return fdp.ConsumeIntInRange(-2, 64)
    if kind == 6:
        return fdp.ConsumeFloat()
    if kind == 7:
        return fdp.ConsumeBool()
    if kind == 8:
        return fdp.ConsumeUnicodeNoSurrogates(8)
    return None


def _array(fdp, dtype, shape):
    count = int(np.prod(shape)) if all(0 <= s <= 64 for s in shape) else 0
    if count != int(np.prod(shape)):
        return np.zeros((0,), dtype)
    raw = fdp.ConsumeBytes(count * np.dtype(dtype).itemsize)
    raw = raw + bytes(count * np.dtype(dtype).itemsize - len(raw))
    values = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
    if values.dtype.kind == "f" and fdp.ConsumeBool():
        values = np.nan_to_num(values, nan=0.5, posinf=1.0, neginf=-1.0).clip(-1e3, 1e3)
    return values


def _shape(fdp, wanted, sizes):
    shape = []
    for dim in wanted:
        size = sizes.setdefault(dim, fdp.ConsumeIntInRange(1, 40)) if isinstance(dim, str) else dim
        if fdp.ConsumeIntInRange(0, 15) == 0:
            size = fdp.ConsumeIntInRange(0, 40)
        shape.append(size)
    if fdp.ConsumeIntInRange(0, 31) == 0:
        shape.append(fdp.ConsumeIntInRange(0, 3))
    return tuple(shape)


def built_archive(fdp) -> bytes:
    methods = registered_methods()
    names = sorted(methods)
    cls = methods[names[fdp.ConsumeIntInRange(0, len(names) - 1)]]
    signature = inspect.signature(cls.__init__)
    params = {}
    for name, p in signature.parameters.items():
        if name == "self":
            continue
        default = fdp.ConsumeIntInRange(1, 32) if name == "nbits" else p.default
        if name == "device":
            default = "cpu"
        if name == "n_anchors" and fdp.ConsumeBool():
            default = fdp.ConsumeIntInRange(2, 40)
        if default is inspect.Parameter.empty or fdp.ConsumeIntInRange(0, 19) == 0:
            continue  # a missing parameter
        params[name] = _value(fdp, default)
    d = fdp.ConsumeIntInRange(1, 12)
    payload = {
        "format": np.array("deephash_engine.hashing" if fdp.ConsumeIntInRange(0, 31) else "other"),
        "format_version": np.array(1 if fdp.ConsumeIntInRange(0, 31) else fdp.ConsumeIntInRange(-1, 3)),
        "method": np.array(cls.method),
        "params": np.array(json.dumps(params)),
        "n_features_in": np.array(d if fdp.ConsumeIntInRange(0, 15) else fdp.ConsumeIntInRange(-2, 20)),
    }
    try:
        model = cls(**params)
        model.n_features_in_ = d
        layout = model._learned_layout()
    except Exception:  # noqa: BLE001 - parameters the constructor refuses: arrays at random
        layout = {name: ("float64", ("a", "b")) for name in cls._learned}
    sizes: dict = {}
    for name in cls._learned:
        if fdp.ConsumeIntInRange(0, 31) == 0:
            continue  # a missing array
        dtype, wanted = layout[name]
        if fdp.ConsumeIntInRange(0, 15) == 0:
            dtype = DTYPES[fdp.ConsumeIntInRange(0, len(DTYPES) - 1)]
        payload["learned/" + name] = _array(fdp, dtype, _shape(fdp, wanted, sizes))
    buffer = io.BytesIO()
    np.savez(buffer, **payload)
    return buffer.getvalue()


def check(data: bytes) -> None:
    if data[:1] and data[0] % 2:
        data = built_archive(atheris.FuzzedDataProvider(data[1:]))
    _harness.write(PATH, data)
    try:
        hasher = Hasher.load(PATH)
    except ALLOWED:
        return
    rows = np.random.default_rng(0).normal(size=(3, hasher.n_features_in_))
    try:
        codes = hasher.encode(rows)
    except ValueError as exc:  # finite parameters can still overflow to inf - inf = NaN
        if "NaN" not in str(exc):
            raise
        return
    assert codes.shape == (3, (hasher.nbits + 7) // 8), (codes.shape, hasher.nbits)


if __name__ == "__main__":
    _harness.main(check)
