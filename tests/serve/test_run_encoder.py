"""A collection whose encoder is a 'deephash train' run folder encodes uint8 images on the server,
exactly as the run's own model does in-process."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest
from http_service import b64

torch = pytest.importorskip("torch", reason="run-folder encoders need PyTorch")

from deephash_engine.datasets import NORMALIZATION  # noqa: E402
from deephash_engine.deep.checkpoints import CHECKPOINT_VERSION, save_checkpoint  # noqa: E402
from deephash_engine.deep.data import ArrayHashingDataset  # noqa: E402
from deephash_engine.deep.evaluation import encode  # noqa: E402
from deephash_engine.deep.models import build_model  # noqa: E402
from deephash_engine.deep.run import RunConfig, load_trained_model  # noqa: E402


def _write_run(folder, nbits=16):
    torch.manual_seed(0)
    model = build_model("small_cnn", nbits, in_channels=1, image_size=8)
    folder.mkdir(parents=True)
    save_checkpoint({
        "version": CHECKPOINT_VERSION, "config": asdict(RunConfig(nbits=nbits, model="small_cnn")), "epoch": 1,
        "model": model.state_dict(),
        "data": {"in_channels": 1, "image_size": 8, "source": "fashion-mnist", "num_classes": 4},
        "codes": {"query": np.zeros((1, nbits // 8), np.uint8)},
    }, folder / "model.pt")


def test_images_are_encoded_by_the_run(client, server, rng):
    _write_run(server.data / "runs" / "tiny")
    images = rng.integers(0, 256, size=(12, 8, 8), dtype=np.uint8)
    model, _ = load_trained_model(server.data / "runs" / "tiny")
    dataset = ArrayHashingDataset(images, np.zeros((12, 1), np.float32), *NORMALIZATION["fashion-mnist"])
    want, _ = encode(model, dataset, 256, "cpu", progress=False)

    assert client.post("/collections", json={"name": "img", "nbits": 16, "encoder": "runs/tiny"}).status_code == 201
    assert client.post("/collections/img/items", json={"inputs": images[:10].tolist()}).json()["ids"] == list(range(10))
    assert [client.get(f"/collections/img/items/{i}").json()["code"] for i in range(10)] == b64(want[:10])
    by_image = client.post("/collections/img/search", json={"inputs": images[10:].tolist(), "k": 3}).json()
    by_code = client.post("/collections/img/search", json={"codes": b64(want[10:]), "k": 3}).json()
    assert by_image == by_code
    for bad in (rng.integers(0, 256, size=(1, 9, 8)).tolist(), [[[300] * 8] * 8], [["x"]]):
        response = client.post("/collections/img/items", json={"inputs": bad})
        assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "inputs"]
    wrong_bits = client.post("/collections", json={"name": "img2", "nbits": 32, "encoder": "runs/tiny"})
    assert wrong_bits.status_code == 422 and "16-bit" in wrong_bits.text
    assert client.get("/collections/img").json()["count"] == 10
    client.delete("/collections/img")


def test_search_by_upload_of_a_npy_file(client, server, rng):
    import io

    _write_run(server.data / "runs" / "up")
    assert client.post("/collections", json={"name": "up", "nbits": 16, "encoder": "runs/up"}).status_code == 201
    images = rng.integers(0, 256, size=(6, 8, 8), dtype=np.uint8)
    client.post("/collections/up/items", json={"inputs": images.tolist(), "payloads": [{"n": i} for i in range(6)]})

    def npy(array):
        buffer = io.BytesIO()
        np.save(buffer, array)
        return buffer.getvalue()

    uploaded = client.post("/collections/up/search/upload", files={"file": ("q.npy", npy(images[:2]))},
                           data={"k": "3", "with_payload": "true", "filter": '{"n": {"lt": 4}}'})
    by_json = client.post("/collections/up/search", json={"inputs": images[:2].tolist(), "k": 3,
                                                         "with_payload": True, "filter": {"n": {"lt": 4}}})
    assert uploaded.status_code == 200 and uploaded.json() == by_json.json()
    assert uploaded.json()["results"][0]["ids"][0] == 0

    header = npy(np.zeros((10**6, 8, 8), np.uint8))[:128]  # a header claiming 64 MB, no data
    pickled = io.BytesIO()
    np.save(pickled, np.array([1, "a"], dtype=object), allow_pickle=True)
    for content in (b"not a npy file", header, b"\x93NUMPY", pickled.getvalue()):
        bad = client.post("/collections/up/search/upload", files={"file": ("q.npy", content)}, data={"k": "1"})
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "file"]
    bad_filter = client.post("/collections/up/search/upload", files={"file": ("q.npy", npy(images[:1]))},
                             data={"k": "1", "filter": "{"})
    assert bad_filter.status_code == 422 and bad_filter.json()["detail"][0]["loc"] == ["body", "filter"]
    client.delete("/collections/up")
