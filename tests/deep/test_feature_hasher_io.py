"""FeatureHasher.save / load: a loaded hasher encodes the codes the saved one encoded, with the
same parameters and history; files that are not saved FeatureHashers, or are damaged, are refused
with FeatureHasherFileError naming what is wrong; nothing is pickled."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from deephash_engine.deep.label_free import FeatureHasher, FeatureHasherFileError
from deephash_engine.hashing import ITQ


@pytest.fixture(scope="module")
def X():
    return np.random.default_rng(3).normal(size=(200, 12)).astype(np.float32)


@pytest.fixture(scope="module")
def fitted(X):
    return FeatureHasher("greedyhash-unsup", 20, hidden=6, epochs=2, batch_size=16, seed=4).fit(X)


@pytest.mark.parametrize("method, nbits, hidden", [("bihalf", 12, 0), ("greedyhash-unsup", 20, 6), ("bihalf", 64, 5)])
def test_a_loaded_hasher_encodes_the_same_codes(tmp_path, X, method, nbits, hidden):
    hasher = FeatureHasher(method, nbits, hidden=hidden, epochs=2, batch_size=16,
                           loss_params={"gamma": 4} if method == "bihalf" else {}).fit(X)
    path = tmp_path / "hasher.npz"
    hasher.save(path)
    loaded = FeatureHasher.load(path)
    assert loaded.get_params() == hasher.get_params()
    assert loaded.n_features_in_ == 12 and loaded.history_ == hasher.history_
    np.testing.assert_array_equal(loaded.project(X), hasher.project(X))
    np.testing.assert_array_equal(loaded.encode(X), hasher.encode(X))
    assert loaded.encode(X).shape == (200, (nbits + 7) // 8)


def test_saving_replaces_a_file_and_an_unfitted_hasher_is_refused(tmp_path, fitted, X):
    path = tmp_path / "h.npz"
    path.write_bytes(b"old contents")
    fitted.save(path)
    np.testing.assert_array_equal(FeatureHasher.load(path).encode(X), fitted.encode(X))
    with pytest.raises(RuntimeError, match="not fitted"):
        FeatureHasher("bihalf", 8).save(tmp_path / "never.npz")
    assert not (tmp_path / "never.npz").exists()


def _archive(path) -> dict:
    with np.load(path, allow_pickle=False) as a:
        return {k: a[k] for k in a.files}


def _rewrite(path, contents: dict) -> None:
    buf = io.BytesIO()
    np.savez(buf, **contents)
    path.write_bytes(buf.getvalue())


def test_files_that_are_not_feature_hashers_are_refused(tmp_path, X):
    text = tmp_path / "text.npz"
    text.write_text("not an archive")
    with pytest.raises(FeatureHasherFileError, match="expected an .npz archive"):
        FeatureHasher.load(text)
    itq = tmp_path / "itq.npz"
    ITQ(8).fit(X).save(itq)
    with pytest.raises(FeatureHasherFileError, match="expected format tag 'deephash_engine.feature_hasher'"):
        FeatureHasher.load(itq)
    with pytest.raises(FileNotFoundError):
        FeatureHasher.load(tmp_path / "missing.npz")


@pytest.mark.parametrize("change, message", [
    (lambda c: c.update(format_version=np.array(2, np.int64)), "format version"),
    (lambda c: c.update(format_version=np.array("1")), "format version"),
    (lambda c: c.update(params=np.array("[1, 2]")), "params: expected a JSON object"),
    (lambda c: c.update(params=np.array('{"method": "dpsh", "nbits": 8}')), "label-free method"),
    (lambda c: c.update(params=np.array('{"method": "bihalf", "nbits": 0}')), "nbits"),
    (lambda c: c.update(n_features_in=np.array(0, np.int64)), "n_features_in"),
    (lambda c: c.update(n_features_in=np.array(13, np.int64)), "expected float32"),
    (lambda c: c.pop("history"), "history"),
    (lambda c: c.pop(next(k for k in list(c) if k.startswith("state/"))), "weights: expected"),
    (lambda c: c.update({next(k for k in c if k.startswith("state/")): np.zeros((1, 1), np.float32)}), "expected float32"),
    (lambda c: c.update({next(k for k in c if k.startswith("state/")):
                         c[next(k for k in c if k.startswith("state/"))].astype(np.float64)}), "expected float32"),
    (lambda c: c.update({next(k for k in c if k.startswith("state/")):
                         np.full_like(c[next(k for k in c if k.startswith("state/"))], np.nan)}), "finite"),
])
def test_damaged_files_are_refused_naming_the_field(tmp_path, fitted, change, message):
    path = tmp_path / "h.npz"
    fitted.save(path)
    contents = _archive(path)
    change(contents)
    _rewrite(path, contents)
    with pytest.raises(FeatureHasherFileError, match=message):
        FeatureHasher.load(path)


def test_nothing_is_pickled(tmp_path, fitted):
    path = tmp_path / "h.npz"
    fitted.save(path)
    with zipfile.ZipFile(path) as z:
        for name in z.namelist():
            header = z.read(name)[:128]
            assert b"'descr': '|O'" not in header and b"'descr': '<O'" not in header, name
    assert _archive(path)["format"] == "deephash_engine.feature_hasher"


def test_corrupted_bytes_raise_only_the_documented_error(tmp_path, fitted, X):
    path = tmp_path / "h.npz"
    fitted.save(path)
    good = path.read_bytes()
    rng = np.random.default_rng(11)
    loaded = 0
    for trial in range(150):
        data = bytearray(good)
        if trial % 3 == 0:
            data = data[: int(rng.integers(0, len(data)))]  # truncated
        else:
            for at in rng.integers(0, len(data), size=int(rng.integers(1, 6))):
                data[at] ^= int(rng.integers(1, 256))
        path.write_bytes(bytes(data))
        try:
            hasher = FeatureHasher.load(path)
        except FeatureHasherFileError:
            continue
        assert hasher.encode(X).shape == (200, 3)  # a flip in unused bytes: still a whole hasher
        loaded += 1
    assert loaded < 150
