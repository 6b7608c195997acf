"""benchmarks/deep_step_time.py builds each loss as a training run does, including the ones that
read the training labels before their first step (ADSH, CNNH)."""

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def step_time():
    sys.path.insert(0, str(BENCH))  # the script imports bench_context from its folder
    try:
        spec = importlib.util.spec_from_file_location("deep_step_time_bench", BENCH / "deep_step_time.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(BENCH))


def test_every_kind_of_loss_times_a_step(step_time, tmp_path):
    out = tmp_path / "steps.json"
    methods = ["hashnet", "dpsh", "adsh", "dsh+bank"]
    assert step_time.main(["--methods", *methods, "--bits", "16", "--batch", "16", "--num-train", "256",
                           "--rounds", "1", "--steps", "1", "--warmup", "0", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    # the bank losses run at both fills, the others once
    assert [r["method"] for r in rows] == ["hashnet", "dpsh", "dpsh", "adsh", "dsh+bank", "dsh+bank"]
    assert all(r["step_cpu_s"] > 0 and r["steps"] == 1 for r in rows)
    adsh = next(r for r in rows if r["method"] == "adsh")
    assert adsh["bank"] is False and adsh["epoch_hook_s"] >= 0  # its V step runs at the epoch's end


def test_prepared_like_a_fresh_run(step_time):
    """ADSH without prepare() refuses to step; the benchmark's setup prepares it."""
    import argparse

    args = argparse.Namespace(seed=0, bits=16, num_train=128, classes=10, batch=16)
    setup = step_time.Setup("adsh", 1.0, args)
    assert bool(setup.loss.ready)
    setup.run(0, 1)
    assert len(setup.cpu) == 1


def test_float32_suffix_runs_the_float32_bank_path(step_time, monkeypatch):
    """``name@float32`` times the same loss with DEEPHASH_BANK_PRODUCTS=float32 while it runs (and
    only then): its bank never builds the AMX layouts; the plain name's does where AMX runs."""
    import argparse

    from deephash_engine import _core

    assert step_time.parse_method("dsh+bank@float32") == ("dsh", {"memory_bank": True},
                                                          {"DEEPHASH_BANK_PRODUCTS": "float32"})
    assert step_time.parse_method("dpsh") == ("dpsh", {}, {})
    monkeypatch.delenv("DEEPHASH_BANK_PRODUCTS", raising=False)
    args = argparse.Namespace(seed=0, bits=16, num_train=128, classes=10, batch=16)
    plain, forced = step_time.Setup("dpsh", 1.0, args), step_time.Setup("dpsh@float32", 1.0, args)
    forced.run(0, 1)
    plain.run(0, 1)
    assert forced.loss.bank._packed is None
    assert (plain.loss.bank._packed is not None) == _core.bank_products_available()
    assert "DEEPHASH_BANK_PRODUCTS" not in os.environ
