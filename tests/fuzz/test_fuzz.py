"""The Python loader fuzz harnesses: each runs a fixed, seeded number of inputs from a corpus of
files the package writes and must finish without a crash; every input a harness once crashed on
is kept under tests/fixtures/fuzz/ and must now be refused with a documented error."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import deephash_engine as de

HERE = Path(__file__).resolve().parent
FOUND = sorted((HERE.parent / "fixtures" / "fuzz").glob("*"))
#: harness -> (corpus folder, inputs to run). Kept small: the test proves each harness runs and
#: has not regressed; `make fuzz-python` runs them for minutes.
HARNESSES = {
    "fuzz_load_index": ("index", 3000),
    "fuzz_hasher_load": ("hasher", 3000),
    "fuzz_trained_model": ("model", 400),
}


def _load(kind: str, path: Path, tmp_path: Path):
    if kind == "index":
        return de.load_index(path)
    if kind == "hasher":
        from deephash_engine.hashing import Hasher

        return Hasher.load(path)
    from deephash_engine.deep.run import load_trained_model

    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(path, run / "model.pt")
    return load_trained_model(run)


@pytest.mark.parametrize("path", FOUND, ids=lambda p: p.name)
def test_inputs_that_once_crashed_a_loader_are_refused(path, tmp_path):
    kind = path.name.split("-")[0]
    with pytest.raises((OSError, ValueError, de.DeepHashError)):
        _load(kind, path, tmp_path)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    pytest.importorskip("atheris", reason="the fuzz harnesses need atheris (requirements/dev.txt)")
    pytest.importorskip("torch", reason="the model harness and its seeds need PyTorch")
    root = tmp_path_factory.mktemp("corpus")
    subprocess.run([sys.executable, str(HERE / "seed_corpus.py"), str(root)], check=True)
    return root


@pytest.mark.parametrize("harness", sorted(HARNESSES))
def test_harness_runs_its_inputs_without_a_crash(harness, corpus, tmp_path):
    folder, runs = HARNESSES[harness]
    work = tmp_path / "corpus"
    shutil.copytree(corpus / folder, work)
    seeds = len(list(work.iterdir()))
    assert seeds >= 4
    result = subprocess.run(
        [sys.executable, str(HERE / f"{harness}.py"), f"-runs={runs}", "-seed=1",
         f"-artifact_prefix={tmp_path}/", "-rss_limit_mb=4096", str(work)],
        capture_output=True, text=True, timeout=900,
    )
    tail = (result.stdout + result.stderr)[-4000:]
    assert result.returncode == 0, tail
    assert f"Done {runs} runs" in tail or "DONE" in tail, tail
    assert not list(tmp_path.glob("crash-*")), tail
