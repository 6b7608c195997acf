"""A collection whose encoder is a 'deephash train' run folder encodes uint8 images on the server,
exactly as the run's own model does in-process."""

from __future__ import annotations

import io
from dataclasses import asdict

import numpy as np
import pytest
from http_service import MAX_BATCH, b64

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
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][:2] == ["body", "file"]
    bad_filter = client.post("/collections/up/search/upload", files={"file": ("q.npy", npy(images[:1]))},
                             data={"k": "1", "filter": "{"})
    assert bad_filter.status_code == 422 and bad_filter.json()["detail"][0]["loc"] == ["body", "filter"]
    client.delete("/collections/up")


def _image_file(pixels, fmt, mode=None):
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels, mode).save(buffer, format=fmt)
    return buffer.getvalue()


def _decoded(content):
    """The pixels the server should see: JPEG is lossy, so the test decodes its own bytes."""
    from PIL import Image

    with Image.open(io.BytesIO(content)) as image:
        return np.asarray(image.convert("L"), np.uint8)


def test_adds_and_searches_by_uploaded_png_and_jpeg_images(client, server, rng):
    pytest.importorskip("PIL", reason="image uploads need Pillow")
    _write_run(server.data / "runs" / "pics")
    assert client.post("/collections", json={"name": "pics", "nbits": 16, "encoder": "runs/pics"}).status_code == 201
    images = rng.integers(0, 256, size=(5, 8, 8), dtype=np.uint8)
    colour = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    files = [_image_file(images[0], "PNG"), _image_file(images[1], "PNG"), _image_file(images[2], "JPEG"),
             _image_file(colour, "PNG"), _image_file(images[3], "PNG")]
    seen = np.stack([_decoded(f) for f in files])  # the colour image in luma, the JPEG as decoded
    assert (seen[[0, 1, 4]] == images[[0, 1, 3]]).all()  # PNG is lossless

    added = client.post("/collections/pics/items/upload",
                        files=[("file", (f"{i}.img", f)) for i, f in enumerate(files)],
                        data={"ids": "[10, 11, 12, 13, 14]", "payloads": '[{"n": 0}, {"n": 1}, null, {"n": 3}, {"n": 4}]'})
    assert added.status_code == 200, added.text
    assert added.json() == {"ids": [10, 11, 12, 13, 14]}
    by_json = client.post("/collections/pics/items", json={"inputs": seen.tolist()}).json()["ids"]
    for upload_id, json_id in zip([10, 11, 12, 13, 14], by_json):
        assert client.get(f"/collections/pics/items/{upload_id}").json()["code"] == \
            client.get(f"/collections/pics/items/{json_id}").json()["code"]
    assert client.get("/collections/pics/items/12").json()["payload"] is None
    assert client.get("/collections/pics/items/14").json()["payload"] == {"n": 4}

    # empty batches answer empty, as the JSON routes do
    buffer = io.BytesIO()
    np.save(buffer, images[:0])
    assert client.post("/collections/pics/items/upload", files={"file": ("x.npy", buffer.getvalue())}).json() == {"ids": []}
    assert client.post("/collections/pics/items", json={"inputs": []}).json() == {"ids": []}
    assert client.post("/collections/pics/search/upload", files={"file": ("x.npy", buffer.getvalue())},
                       data={"k": "1"}).json() == {"results": []}

    # a .npy upload adds too, with ids assigned
    buffer = io.BytesIO()
    np.save(buffer, images[4:])
    assert client.post("/collections/pics/items/upload", files={"file": ("x.npy", buffer.getvalue())}).json() == \
        {"ids": [max(by_json) + 1]}

    query = [("file", ("q0.png", files[0])), ("file", ("q1.jpg", files[2]))]
    uploaded = client.post("/collections/pics/search/upload", files=query,
                           data={"k": "4", "with_payload": "true", "filter": '{"n": {"gte": 0}}'})
    want = client.post("/collections/pics/search", json={"inputs": seen[[0, 2]].tolist(), "k": 4,
                                                         "with_payload": True, "filter": {"n": {"gte": 0}}})
    assert uploaded.status_code == 200 and uploaded.json() == want.json()
    assert uploaded.json()["results"][0]["ids"][0] == 10 and uploaded.json()["results"][0]["distances"][0] == 0
    client.delete("/collections/pics")


def test_upload_errors_name_the_field_and_change_nothing(client, server, rng):
    pytest.importorskip("PIL", reason="image uploads need Pillow")
    from PIL import Image

    _write_run(server.data / "runs" / "bad")
    assert client.post("/collections", json={"name": "badup", "nbits": 16, "encoder": "runs/bad"}).status_code == 201
    good = _image_file(rng.integers(0, 256, size=(8, 8), dtype=np.uint8), "PNG")
    big = _image_file(rng.integers(0, 256, size=(9, 8), dtype=np.uint8), "JPEG")
    deep = io.BytesIO()
    Image.fromarray(rng.integers(0, 2**16, size=(8, 8), dtype=np.uint16)).save(deep, format="PNG")  # 16-bit
    npy = io.BytesIO()
    np.save(npy, np.zeros((1, 8, 8), np.uint8))
    cases = [
        ({"file": [good, good[:40]]}, {}, ["body", "file", 1]),  # a PNG cut short
        ({"file": [b"\x89PNG\r\n\x1a\n" + b"\0" * 50]}, {}, ["body", "file", 0]),
        ({"file": [good, big]}, {}, ["body", "file", 1]),  # 8 wide, 9 high
        ({"file": [deep.getvalue()]}, {}, ["body", "file", 0]),
        ({"file": [b"GIF89a......"]}, {}, ["body", "file", 0]),
        ({"file": [npy.getvalue(), good]}, {}, ["body", "file", 1]),
        ({"file": [good]}, {"ids": "[1, 2]"}, ["body", "ids"]),
        ({"file": [good]}, {"ids": "[-1]"}, ["body", "ids", 0]),
        ({"file": [good]}, {"ids": "[1"}, ["body", "ids"]),
        ({"file": [good]}, {"ids": '["a"]'}, ["body", "ids", 0]),
        ({"file": [good]}, {"payloads": "[3]"}, ["body", "payloads", 0]),
        ({"file": [good]}, {"payloads": "[{}, {}]"}, ["body", "payloads"]),
    ]
    for files, data, loc in cases:
        response = client.post("/collections/badup/items/upload", data=data,
                               files=[("file", (f"{i}.bin", f)) for i, f in enumerate(files["file"])])
        assert response.status_code == 422, (loc, response.text)
        assert response.json()["detail"][0]["loc"][:len(loc)] == loc, response.text
    wrong_size = client.post("/collections/badup/search/upload", files={"file": ("big.jpg", big)}, data={"k": "1"})
    assert wrong_size.status_code == 422 and wrong_size.json()["detail"][0]["loc"] == ["body", "file", 0]
    assert "8x9" in wrong_size.text and "8x8" in wrong_size.text
    too_many = client.post("/collections/badup/items/upload", files=[("file", ("a.png", good))] * (MAX_BATCH + 1))
    assert too_many.status_code == 413 and too_many.json()["detail"][0]["loc"] == ["body", "file"]
    assert client.get("/collections/badup").json()["count"] == 0

    # a collection whose encoder takes feature vectors refuses images; one without an encoder refuses uploads
    from deephash_engine.hashing import LSH

    LSH(nbits=16, seed=0).fit(rng.normal(size=(20, 6)).astype(np.float32)).save(server.data / "runs" / "lsh.npz")
    client.post("/collections", json={"name": "vectors", "nbits": 16, "encoder": "runs/lsh.npz"})
    client.post("/collections", json={"name": "plain", "nbits": 16})
    for target in ("vectors", "plain"):
        response = client.post(f"/collections/{target}/items/upload", files={"file": ("a.png", good)})
        assert response.status_code == 422 and response.json()["detail"][0]["loc"][:2] == ["body", "file"], response.text
        client.delete(f"/collections/{target}")
    client.delete("/collections/badup")
