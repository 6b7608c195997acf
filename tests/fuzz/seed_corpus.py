"""Seed corpora for the Python loader fuzz harnesses, from files the package itself writes.

    python tests/fuzz/seed_corpus.py OUT_DIR

writes OUT_DIR/index/ (saved FlatIndex and MIHIndex files and the committed format fixtures),
OUT_DIR/hasher/ (a saved hasher of every method, plus built-mode recipes) and OUT_DIR/model/
(a run folder's model.pt in the current and the version 1 format, plus built-mode recipes).
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def index_seeds(out: Path) -> None:
    import deephash_engine as de

    rng = np.random.default_rng(0)
    flat = de.FlatIndex(16)
    flat.add(rng.integers(0, 256, (20, 2), dtype=np.uint8))
    flat.remove_ids([3])
    flat.save(out / "flat16.dhi")
    de.FlatIndex(8).save(out / "empty8.dhi")
    mih = de.MIHIndex(32, 2)
    mih.add_with_ids(rng.integers(0, 256, (30, 4), dtype=np.uint8), np.arange(30) * 7)
    mih.save(out / "mih32.dhi")
    for fixture in sorted(FIXTURES.glob("*.dhi")):
        shutil.copy(fixture, out / fixture.name)
    recipes(out, "built", first=lambda i: 1)


def hasher_seeds(out: Path) -> None:
    from deephash_engine.hashing import AGH, DGH, ITQ, LSH, PCAH, SGH, SH, SpH

    X = np.random.default_rng(1).normal(size=(80, 10))
    for name, hasher in {
        "lsh": LSH(8), "pcah": PCAH(8), "itq": ITQ(8, n_iter=3), "sh": SH(16), "sph": SpH(8, max_iter=3),
        "agh1": AGH(8, n_anchors=12), "agh2": AGH(16, n_anchors=12, layers=2),
        "dgh": DGH(8, n_anchors=12, outer_iter=2), "sgh": SGH(8, n_iter=3, batch_size=20, device="cpu"),
    }.items():
        hasher.fit(X).save(out / f"{name}.npz")
    recipes(out, "built")


def model_seeds(out: Path) -> None:
    import torch

    from deephash_engine.deep.checkpoints import save_checkpoint
    from deephash_engine.deep.models import build_model
    from deephash_engine.deep.run import RunConfig

    torch.manual_seed(0)
    model = build_model("small_cnn", 8, 1, 4)
    state = {"version": 2, "config": asdict(RunConfig(nbits=8)), "epoch": 1, "model": model.state_dict(),
             "data": {"in_channels": 1, "image_size": 4, "source": "fashion-mnist", "num_classes": 10}}
    save_checkpoint(state, out / "model_v2.pt")
    old = dict(state, version=1, codes={"query": np.zeros((2, 1), np.uint8)})
    old["config"] = {("bits" if k == "nbits" else k): v for k, v in state["config"].items()}
    torch.save(old, out / "model_v1.pt")
    recipes(out, "built")


def recipes(out: Path, stem: str, count: int = 8, first=lambda i: 2 * i + 1) -> None:
    """Inputs whose first byte asks the harness to build a file from the rest (an odd byte for
    the hasher and model harnesses, 0x01 for the index harness)."""
    rng = np.random.default_rng(2)
    for i in range(count):
        body = rng.integers(0, 256, 64 * (i + 1), dtype=np.uint8).tobytes()
        (out / f"{stem}{i}").write_bytes(bytes([first(i)]) + body)


def main(root: Path) -> None:
    for name, make in (("index", index_seeds), ("hasher", hasher_seeds), ("model", model_seeds)):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        make(folder)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
