"""The shared contract of every hasher: shapes, packing, seeds, persistence and bad input."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from deephash_engine import MAX_NBITS
from deephash_engine.hashing import (
    AGH,
    DGH,
    ITQ,
    LSH,
    PCAH,
    SGH,
    SH,
    Hasher,
    HasherFileError,
    HasherFormatError,
    NotFittedError,
    SpH,
    load_hasher,
)


def test_encode_shape_dtype_and_packing_contract(method_name, small_hasher, blobs):
    X, _ = blobs
    hasher = small_hasher(method_name).fit(X)
    codes = hasher.encode(X[:50])
    assert codes.dtype == np.uint8 and codes.shape == (50, hasher.nbits // 8)
    assert codes.flags["C_CONTIGUOUS"]
    projections = hasher.project(X[:50])
    assert projections.shape == (50, hasher.nbits)
    # bit j is bit j % 8 of byte j // 8, LSB first, and a projection >= 0 gives 1.
    expected = np.zeros_like(codes)
    for j in range(hasher.nbits):
        expected[:, j // 8] |= ((projections[:, j] >= 0).astype(np.uint8) << (j % 8))
    np.testing.assert_array_equal(codes, expected)


def test_codes_are_not_constant(method_name, small_hasher, blobs, unpack):
    X, _ = blobs
    bits = unpack(small_hasher(method_name).fit(X).encode(X))
    # Every bit takes both values on clustered data; a constant bit carries no information.
    assert np.all(bits.min(axis=0) == 0) and np.all(bits.max(axis=0) == 1)


def test_same_seed_same_codes(method_name, small_hasher, blobs):
    X, _ = blobs
    first = small_hasher(method_name, seed=3).fit(X).encode(X)
    second = small_hasher(method_name, seed=3).fit(X).encode(X)
    np.testing.assert_array_equal(first, second)


def test_other_seed_other_codes(random_method_name, small_hasher, blobs):
    X, _ = blobs
    first = small_hasher(random_method_name, seed=0).fit(X).encode(X)
    second = small_hasher(random_method_name, seed=1).fit(X).encode(X)
    assert not np.array_equal(first, second)


def test_save_load_round_trip(method_name, small_hasher, blobs, tmp_path):
    X, _ = blobs
    hasher = small_hasher(method_name).fit(X)
    path = tmp_path / "model.npz"
    hasher.save(path)
    again = type(hasher).load(path)
    assert type(again) is type(hasher)
    assert again.get_params() == hasher.get_params()
    np.testing.assert_array_equal(again.encode(X), hasher.encode(X))
    any_method = load_hasher(path)
    assert type(any_method) is type(hasher)
    np.testing.assert_array_equal(any_method.encode(X[:7]), hasher.encode(X[:7]))


def test_load_refuses_other_method(blobs, tmp_path):
    X, _ = blobs
    path = tmp_path / "lsh.npz"
    LSH(16).fit(X).save(path)
    with pytest.raises(HasherFileError, match="holds a LSH model, expected ITQ"):
        ITQ.load(path)


def test_load_refuses_foreign_and_damaged_files(blobs, tmp_path):
    X, _ = blobs
    text = tmp_path / "notes.npz"
    text.write_text("not an archive")
    with pytest.raises(HasherFileError, match="not a saved hasher"):
        Hasher.load(text)
    other = tmp_path / "other.npz"
    np.savez(other, weights=np.ones(3))
    with pytest.raises(HasherFileError, match="format tag"):
        ITQ.load(other)
    good = tmp_path / "itq.npz"
    ITQ(16).fit(X).save(good)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:300])
    with pytest.raises(HasherFileError):
        ITQ.load(truncated)
    with pytest.raises(FileNotFoundError):
        ITQ.load(tmp_path / "missing.npz")


def _rewrite(src, dst, **changes):
    with np.load(src) as archive:
        contents = {key: archive[key] for key in archive.files}
    contents.update(changes)
    with open(dst, "wb") as fh:
        np.savez(fh, **contents)


def test_load_refuses_newer_version_and_missing_arrays(blobs, tmp_path):
    X, _ = blobs
    good = tmp_path / "itq.npz"
    ITQ(16).fit(X).save(good)
    newer = tmp_path / "newer.npz"
    _rewrite(good, newer, format_version=np.array(99))
    with pytest.raises(HasherFileError, match="version 99"):
        ITQ.load(newer)
    with np.load(good) as archive:
        contents = {key: archive[key] for key in archive.files if key != "learned/rotation_"}
    broken = tmp_path / "broken.npz"
    with open(broken, "wb") as fh:
        np.savez(fh, **contents)
    with pytest.raises(HasherFileError, match="damaged ITQ"):
        ITQ.load(broken)
    unknown = tmp_path / "unknown.npz"
    _rewrite(good, unknown, method=np.array("KMH"))
    with pytest.raises(HasherFileError, match="unknown hashing method 'KMH'"):
        Hasher.load(unknown)


def test_saved_file_is_a_plain_versioned_archive(blobs, tmp_path):
    X, _ = blobs
    path = tmp_path / "sh.npz"
    SH(16).fit(X).save(path)
    assert zipfile.is_zipfile(path)
    with np.load(path, allow_pickle=False) as archive:
        assert str(archive["format"]) == "deephash_engine.hashing"
        assert int(archive["format_version"]) == 1
        assert str(archive["method"]) == "SH"
        assert json.loads(str(archive["params"])) == {"nbits": 16, "seed": 0}


@pytest.mark.parametrize("nbits", [0, -8, -1, MAX_NBITS + 1])
def test_nbits_must_be_positive_and_at_most_the_limit(nbits):
    for cls in (LSH, PCAH, ITQ, SH, SpH, AGH, DGH, SGH):
        with pytest.raises(ValueError, match=f"nbits: expected an int in \\[1, {MAX_NBITS}\\], got {nbits}"):
            cls(nbits)


def test_nbits_must_be_an_int():
    with pytest.raises(TypeError, match="nbits"):
        ITQ(16.0)


def test_encode_before_fit(method_name, small_hasher, blobs):
    X, _ = blobs
    hasher = small_hasher(method_name)
    with pytest.raises(NotFittedError, match="not fitted"):
        hasher.encode(X)
    with pytest.raises(RuntimeError):
        hasher.save("never-written.npz")
    assert issubclass(NotFittedError, RuntimeError)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input(method_name, small_hasher, blobs, bad):
    X, _ = blobs
    poisoned = X.copy()
    poisoned[5, 3] = bad
    hasher = small_hasher(method_name)
    with pytest.raises(ValueError, match="X: expected finite values, got .* at row 5, column 3"):
        hasher.fit(poisoned)
    hasher.fit(X)
    with pytest.raises(ValueError, match="X: expected finite values"):
        hasher.encode(poisoned)


def test_wrong_dimension_at_encode(method_name, small_hasher, blobs):
    X, _ = blobs
    hasher = small_hasher(method_name).fit(X)
    with pytest.raises(ValueError, match="X: expected 24 features \\(as in fit\\), got 23"):
        hasher.encode(X[:, :23])


def test_wrong_rank_and_dtype(blobs):
    X, _ = blobs
    hasher = ITQ(16)
    with pytest.raises(ValueError, match="X: expected a 2-D array .* got shape \\(24,\\)"):
        hasher.fit(X[0])
    with pytest.raises(TypeError, match="X: expected a real numeric array, got dtype <U"):
        hasher.fit(np.full((30, 4), "a"))


def test_integer_pixels_are_accepted_like_floats(blobs):
    X, _ = blobs
    pixels = np.clip(X * 10 + 128, 0, 255).astype(np.uint8)
    as_int = ITQ(16).fit(pixels).encode(pixels)
    as_float = ITQ(16).fit(pixels.astype(np.float64)).encode(pixels.astype(np.float64))
    np.testing.assert_array_equal(as_int, as_float)


def test_too_few_samples(blobs):
    X, _ = blobs
    with pytest.raises(ValueError, match="X: PCAH with nbits=16 needs at least 17 samples, got 10"):
        PCAH(16).fit(X[:10])
    with pytest.raises(ValueError, match="X: AGH with nbits=16 needs at least 300 samples, got 200"):
        AGH(16).fit(X[:200])
    with pytest.raises(ValueError, match="needs at least 300 samples"):
        DGH(16).fit(X[:200])
    with pytest.raises(ValueError, match="needs at least 5 samples"):
        SpH(8).fit(X[:3])


def test_too_many_bits_for_the_data(blobs):
    X, _ = blobs
    with pytest.raises(ValueError, match="nbits"):
        ITQ(32).fit(X)  # 24 features give at most 24 principal directions
    with pytest.raises(ValueError, match="nbits: 1-layer AGH uses 64 eigenvectors, which needs n_anchors > 64"):
        AGH(64, n_anchors=50)
    with pytest.raises(ValueError, match="nbits: DGH needs n_anchors > nbits=64"):
        DGH(64, n_anchors=50)


def test_parameter_checks():
    with pytest.raises(ValueError, match="layers: expected 1 or 2, got 3"):
        AGH(16, layers=3)
    with pytest.raises(ValueError, match="n_neighbors: expected at most n_anchors=10, got 11"):
        AGH(8, n_anchors=10, n_neighbors=11)
    with pytest.raises(ValueError, match="init: expected one of"):
        DGH(16, init="random")
    with pytest.raises(ValueError, match="sigma: expected a finite number > 0, got -1.0"):
        AGH(16, sigma=-1.0)
    with pytest.raises(ValueError, match="seed: expected an int >= 0"):
        LSH(16, seed=-1)
    with pytest.raises(ValueError, match="n_iter: expected an int >= 0, got -5"):
        ITQ(16, n_iter=-5)


def test_failed_refit_leaves_the_fitted_hasher_unchanged(blobs):
    X, _ = blobs
    agh = AGH(16, n_anchors=40).fit(X)
    codes = agh.encode(X)
    anchors = agh.anchors_
    # Three distinct points: k-means yields duplicate anchors and too few usable eigenvectors, so
    # the refit fails inside the spectral step, after new anchors were computed.
    degenerate = np.repeat(X[:3], 50, axis=0)
    with pytest.raises(ValueError, match="usable eigenvectors"):
        agh.fit(degenerate)
    assert agh.anchors_ is anchors
    np.testing.assert_array_equal(agh.encode(X), codes)
    fresh = AGH(16, n_anchors=40)
    with pytest.raises(ValueError):
        fresh.fit(degenerate)
    assert not fresh.is_fitted and not hasattr(fresh, "anchors_")


def _params_say(path, dst, **changes):
    """Rewrite a saved hasher with some stored parameters changed (the arrays stay as fitted)."""
    with np.load(path) as archive:
        params = json.loads(str(archive["params"]))
    params.update(changes)
    _rewrite(path, dst, params=np.array(json.dumps(params, sort_keys=True)))


def test_load_refuses_arrays_that_do_not_fit_the_stored_nbits(method_name, small_hasher, blobs, tmp_path):
    X, _ = blobs
    hasher = small_hasher(method_name).fit(X)  # 16-bit arrays
    good = tmp_path / "good.npz"
    hasher.save(good)
    lying = tmp_path / "lying.npz"
    _params_say(good, lying, nbits=24)  # the parameters now say 24 bits
    with pytest.raises(ValueError, match=r"learned/\w+_: expected shape .*nbits=24") as caught:
        Hasher.load(lying)
    assert isinstance(caught.value, HasherFormatError) and isinstance(caught.value, HasherFileError)


def test_load_refuses_a_learned_array_of_another_dtype_or_width(method_name, small_hasher, blobs, tmp_path):
    X, _ = blobs
    hasher = small_hasher(method_name).fit(X)
    good = tmp_path / "good.npz"
    hasher.save(good)
    first = type(hasher)._learned[0]
    value = np.asarray(getattr(hasher, first))
    as_float32 = tmp_path / "float32.npz"
    _rewrite(good, as_float32, **{"learned/" + first: value.astype(np.float32)})
    with pytest.raises(HasherFormatError, match=f"learned/{first}: expected dtype float64, got float32"):
        Hasher.load(as_float32)
    wider = tmp_path / "features.npz"
    _rewrite(good, wider, n_features_in=np.array(X.shape[1] + 1))
    with pytest.raises(HasherFormatError, match=f"n_features_in={X.shape[1] + 1}"):
        Hasher.load(wider)


def test_load_refuses_values_encode_cannot_use(blobs, tmp_path):
    X, _ = blobs
    path = tmp_path / "sh.npz"
    sh = SH(16).fit(X)
    sh.save(path)
    modes = sh.modes_.copy()
    modes[0, 0] = 99  # a principal direction the file does not hold
    _rewrite(path, tmp_path / "modes.npz", **{"learned/modes_": modes})
    with pytest.raises(HasherFormatError, match="learned/modes_"):
        Hasher.load(tmp_path / "modes.npz")
    agh = tmp_path / "agh.npz"
    AGH(16, n_anchors=40).fit(X).save(agh)
    _rewrite(agh, tmp_path / "sigma.npz", **{"learned/sigma_": np.array(0.0)})
    with pytest.raises(HasherFormatError, match="learned/sigma_: expected > 0"):
        Hasher.load(tmp_path / "sigma.npz")
    _rewrite(agh, tmp_path / "nan.npz", **{"learned/anchors_": np.full((40, X.shape[1]), np.nan)})
    with pytest.raises(HasherFormatError, match="learned/anchors_: expected finite"):
        Hasher.load(tmp_path / "nan.npz")


def test_a_registered_hasher_must_state_its_learned_layout():
    with pytest.raises(TypeError, match="must define _learned_layout"):

        class Unchecked(Hasher):  # noqa: F841 - defining it is the test
            method = "unchecked-test"
            _learned = ("weights_",)
