"""`make demo` step: serve the model trained by deep_demo.py over HTTP.

Starts `deephash serve` on a free loopback port with a scratch data folder, creates a collection
whose encoder is the trained run, adds Fashion-MNIST's 60,000 training images (uploaded as .npy
files with their labels as payloads, encoded by the server), searches with a few test images
uploaded as PNG files and prints the hits with their labels, then stops the server.

    python benchmarks/serve_demo.py [--run runs/demo] [--queries 5] [--k 5]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
           "Ankle boot")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(http, proc: subprocess.Popen) -> None:
    import httpx

    for _ in range(600):
        if proc.poll() is not None:
            raise SystemExit(f"serve_demo: the server exited with {proc.returncode}")
        try:
            if http.get("/health").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit("serve_demo: the server did not start in 60 s")


def npy(array) -> bytes:
    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def png(image) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", default="runs/demo", help="folder of a finished 'deephash train' run")
    p.add_argument("--queries", type=int, default=5)
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--batch", type=int, default=2000, help="images per add request")
    args = p.parse_args(argv)

    import httpx
    import numpy as np

    from deephash_engine.datasets import load_fashion_mnist
    from deephash_engine.deep.run import load_trained_model

    _, ckpt = load_trained_model(args.run)
    nbits = int(ckpt["config"]["nbits"])
    data = load_fashion_mnist()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "data"
        (folder / "encoders" / "demo").mkdir(parents=True)
        shutil.copy(Path(args.run) / "model.pt", folder / "encoders" / "demo" / "model.pt")
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "deephash_engine.cli", "serve", "--data", str(folder),
                                 "--port", str(port), "--max-batch", str(args.batch)])
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as http:
                wait_ready(http, proc)
                http.post("/collections", json={"name": "fashion", "nbits": nbits, "index": "mih",
                                                "encoder": "encoders/demo"}).raise_for_status()
                t0 = time.perf_counter()
                images, labels = data.train_images, data.train_labels
                for start in range(0, len(images), args.batch):
                    part = slice(start, start + args.batch)
                    payloads = json.dumps([{"label": int(y)} for y in labels[part]])
                    http.post("/collections/fashion/items/upload", files={"file": ("train.npy", npy(images[part]))},
                              data={"payloads": payloads}).raise_for_status()
                count = http.get("/collections/fashion").json()["count"]
                print(f"served: {count} training images added, encoded by the server with {args.run} "
                      f"({nbits} bits), {time.perf_counter() - t0:.1f} s")
                pick = np.random.default_rng(0).choice(len(data.test_images), args.queries, replace=False)
                files = [("file", (f"test-{q}.png", png(data.test_images[q]))) for q in pick]
                answer = http.post("/collections/fashion/search/upload", files=files,
                                   data={"k": str(args.k), "with_payload": "true"})
                answer.raise_for_status()
                answer = answer.json()
                for q, result in zip(pick, answer["results"]):
                    hits = ", ".join(f"{CLASSES[p['label']]} (d={d})"
                                     for p, d in zip(result["payloads"], result["distances"]))
                    print(f"  test image {q} ({CLASSES[int(data.test_labels[q])]}): {hits}")
        finally:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
