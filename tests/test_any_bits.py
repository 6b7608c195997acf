"""Code lengths that are not a multiple of 8: codes of ceil(nbits / 8) bytes whose padding bits
(nbits .. 8 * code_size - 1, the high bits of the last byte) are zero, distances unchanged, and
codes, queries or stored codes with a padding bit set refused. Every answer is checked against
the NumPy oracle computed on the unpacked bits."""

from __future__ import annotations

import numpy as np
import pytest
from dhi_file import IndexFile
from oracles import oracle_knn, oracle_range

import deephash_engine as de

WIDTHS = [1, 7, 12, 13, 63, 100, 1000]


def random_bits(rng, n, nbits, kind="uniform"):
    """(n, nbits) 0/1 bits: uniform, or a few distinct rows (ties everywhere)."""
    if kind == "uniform":
        return rng.integers(0, 2, (n, nbits), dtype=np.uint8)
    base = rng.integers(0, 2, (5, nbits), dtype=np.uint8)
    return base[rng.integers(0, 5, n)]


def pack(bits):
    """Packed by NumPy (not the engine): bit j in bit j % 8 of byte j // 8, padding bits zero."""
    return np.packbits(bits, axis=1, bitorder="little")


def bit_distances(qbits, cbits):
    return (qbits[:, None, :] != cbits[None, :, :]).sum(axis=2)


def padding_bit(nbits):
    """A padding bit of an nbits code (None when there is none)."""
    return None if nbits % 8 == 0 else 8 * ((nbits + 7) // 8) - 1


def with_padding_bit(codes, row, nbits):
    bad = codes.copy()
    bad[row, -1] |= np.uint8(1 << (padding_bit(nbits) % 8))
    return bad


def make_index(kind, nbits, m=None):
    return de.FlatIndex(nbits) if kind == "flat" else de.MIHIndex(nbits, m)


def mih_ms(nbits):
    """Automatic m, the fewest tables (substrings of up to 32 bits), and a few more."""
    least = (nbits + 31) // 32
    return [None, *sorted({least, min(nbits, max(least, 3))})]


@pytest.mark.parametrize("nbits", WIDTHS)
def test_pack_unpack_round_trip(nbits):
    rng = np.random.default_rng(nbits)
    bits = random_bits(rng, 40, nbits)
    codes = de.pack_bits(bits.astype(bool))
    assert codes.shape == (40, (nbits + 7) // 8) and de.FlatIndex(nbits).code_size == codes.shape[1]
    np.testing.assert_array_equal(codes, pack(bits))  # padding bits zero
    np.testing.assert_array_equal(de.unpack_bits(codes, nbits), bits)
    signs = np.where(bits == 1, 0.5, -2.0)
    np.testing.assert_array_equal(de.pack_bits(signs), codes)


@pytest.mark.parametrize("kind", ["flat", "mih"])
@pytest.mark.parametrize("nbits", WIDTHS)
@pytest.mark.parametrize("data", ["uniform", "ties"])
def test_search_equals_the_oracle_on_unpacked_bits(kind, nbits, data):
    rng = np.random.default_rng(1000 * nbits + len(data))
    n = 300 if nbits < 1000 else 120
    cbits, qbits = random_bits(rng, n, nbits, data), random_bits(rng, 7, nbits, data)
    codes, queries = pack(cbits), pack(qbits)
    # the oracle on packed bytes is the oracle on bits only because the padding bits are zero
    dist = bit_distances(qbits, cbits)
    ids = rng.permutation(10 * n)[:n].astype(np.int64)
    for m in mih_ms(nbits) if kind == "mih" else [0]:
        index = make_index(kind, nbits, m)
        index.add_with_ids(codes, ids)
        for k in (1, 10, n + 3):
            D, I = index.search(queries, k)
            oD, oI = oracle_knn(queries, codes, ids, k)
            np.testing.assert_array_equal(D, oD)
            np.testing.assert_array_equal(I, oI)
            assert D[:, 0].tolist() == dist.min(axis=1).tolist()
        for radius in sorted({0, 1, nbits // 2, nbits, nbits + 5}):
            lims, D, I = index.range_search(queries, radius)
            oL, oD, oI = oracle_range(queries, codes, ids, radius)
            np.testing.assert_array_equal(lims, oL)
            np.testing.assert_array_equal(D, oD)
            np.testing.assert_array_equal(I, oI)
            assert lims[-1] == int((dist <= radius).sum())
        allowed = ids[::3]
        keep = np.isin(ids, allowed)
        for allow in (allowed, de.IdSelector(allowed)):
            D, I = index.search(queries, 5, allow=allow)
            oD, oI = oracle_knn(queries, codes[keep], ids[keep], 5)
            np.testing.assert_array_equal(D, oD)
            np.testing.assert_array_equal(I, oI)
            got = index.range_search(queries, nbits // 2, allow=allow)
            for x, y in zip(got, oracle_range(queries, codes[keep], ids[keep], nbits // 2)):
                np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("kind", ["flat", "mih"])
@pytest.mark.parametrize("nbits", WIDTHS)
@pytest.mark.parametrize("mmap", [False, True])
def test_save_load_round_trip(tmp_path, kind, nbits, mmap):
    rng = np.random.default_rng(nbits)
    codes, queries = pack(random_bits(rng, 200, nbits)), pack(random_bits(rng, 5, nbits))
    index = make_index(kind, nbits)
    index.add(codes)
    index.save(tmp_path / "i.dhi")
    loaded = de.load_index(tmp_path / "i.dhi", mmap=mmap)
    assert type(loaded) is type(index) and (loaded.nbits, loaded.ntotal) == (nbits, 200)
    for got, want in zip(loaded.search(queries, 12), index.search(queries, 12)):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(loaded.range_search(queries, nbits // 3), index.range_search(queries, nbits // 3)):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(loaded.reconstruct_batch(np.arange(200)), codes)


@pytest.mark.parametrize("kind", ["flat", "mih"])
@pytest.mark.parametrize("nbits", [n for n in WIDTHS if n % 8])
def test_a_set_padding_bit_is_refused_and_changes_nothing(kind, nbits):
    rng = np.random.default_rng(nbits)
    codes = pack(random_bits(rng, 50, nbits))
    index = make_index(kind, nbits)
    index.add(codes)
    before = index.search(codes[:4], 7)
    bad = with_padding_bit(codes[:5], 3, nbits)
    bit = padding_bit(nbits)
    message = f"row 3 sets padding bit {bit} \\(a {nbits}-bit code in {(nbits + 7) // 8} bytes"
    with pytest.raises(ValueError, match=f"codes: {message}"):
        index.add(bad)
    with pytest.raises(ValueError, match=f"codes: {message}"):
        index.add_with_ids(bad, np.arange(1000, 1005))
    with pytest.raises(ValueError, match=f"queries: {message}"):
        index.search(bad, 3)
    with pytest.raises(ValueError, match=f"queries: {message}"):
        index.range_search(bad, 2)
    with pytest.raises(ValueError, match=f"queries: {message}"):
        index.search(bad, 3, allow=[1, 2])
    assert index.ntotal == 50 and index.next_id == 50
    for got, want in zip(index.search(codes[:4], 7), before):
        np.testing.assert_array_equal(got, want)
    # every padding bit set at once is named
    allset = codes[:1].copy()
    allset[0, -1] |= np.uint8((0xFF << (nbits % 8)) & 0xFF)
    names = ", ".join(str(8 * (allset.shape[1] - 1) + b) for b in range(nbits % 8, 8))
    with pytest.raises(ValueError, match=f"row 0 sets padding bits? {names} "):
        index.search(allset, 1)


@pytest.mark.parametrize("kind", ["flat", "mih"])
@pytest.mark.parametrize("nbits", [12, 100])
def test_a_file_with_a_set_padding_bit_is_refused(tmp_path, kind, nbits):
    rng = np.random.default_rng(nbits)
    index = make_index(kind, nbits)
    index.add(pack(random_bits(rng, 30, nbits)))
    index.save(tmp_path / "good.dhi")
    f = IndexFile.parse((tmp_path / "good.dhi").read_bytes())
    cs = (nbits + 7) // 8
    payload = bytearray(f.payload)
    payload[17 * cs + cs - 1] |= 1 << (padding_bit(nbits) % 8)
    f.payload = bytes(payload)
    (tmp_path / "bad.dhi").write_bytes(f.to_bytes())
    for mmap in (False, True):
        with pytest.raises(de.IndexFileError, match=f"bad.dhi.*stored code row 17 sets padding bit {padding_bit(nbits)}"):
            de.load_index(tmp_path / "bad.dhi", mmap=mmap)


def test_multiples_of_8_have_no_padding_to_check():
    index = de.FlatIndex(16)
    index.add(np.full((2, 2), 0xFF, np.uint8))  # every bit is a code bit
    assert index.search(np.full((1, 2), 0xFF, np.uint8), 1)[0].tolist() == [[0]]


def test_faiss_compat_still_refuses_what_faiss_refuses():
    from deephash_engine import faiss_compat as faiss

    with pytest.raises(RuntimeError, match="d must be a positive multiple of 8, got 12"):
        faiss.IndexBinaryFlat(12)
    assert de.FlatIndex(12).nbits == 12  # while the engine takes it


def test_metrics_at_12_bits_equal_the_numpy_oracle():
    from deephash_engine import metrics
    from deephash_engine.metrics import reference

    rng = np.random.default_rng(12)
    qbits, dbits = random_bits(rng, 20, 12, "ties"), random_bits(rng, 150, 12, "ties")
    ql, dl = rng.integers(0, 4, 20), rng.integers(0, 4, 150)
    q_pm, db_pm = np.where(qbits == 1, 1.0, -1.0), np.where(dbits == 1, 1.0, -1.0)
    q, db = pack(qbits), pack(dbits)
    for i in range(3):  # the oracle's distances are those of the bits
        np.testing.assert_array_equal(reference.hamming_distances(q[i], db), bit_distances(qbits[i:i + 1], dbits)[0])
    for ties in ("index", "expected"):
        want = reference.mean_average_precision(q, db, ql, dl, ties=ties)
        assert metrics.mean_average_precision(q_pm, db_pm, ql, dl, ties=ties) == pytest.approx(want, abs=1e-12)
        assert metrics.mean_average_precision(q, db, ql, dl, ties=ties) == pytest.approx(want, abs=1e-12)
        assert metrics.mean_average_precision(q_pm, db, ql, dl, ties=ties) == pytest.approx(want, abs=1e-12)
    radius = metrics.hamming_radius_metrics(q_pm, db_pm, ql, dl)
    assert radius.radii.tolist() == list(range(13))  # 0..nbits for +-1 codes of 12 bits
    precision, recall, _ = reference.radius_metrics(q, db, ql, dl)
    np.testing.assert_allclose(radius.precision, precision[:13], atol=1e-12)
    np.testing.assert_allclose(radius.recall, recall[:13], atol=1e-12)
    with pytest.raises(ValueError, match="width of db_codes \\(12 bits\\), got 13 bits"):
        metrics.mean_average_precision(np.ones((2, 13)), db_pm, ql[:2], dl)


@pytest.mark.parametrize("method", ["LSH", "ITQ"])
def test_unsupervised_hashers_fit_12_bits(tmp_path, method):
    from deephash_engine import hashing

    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 20))
    hasher = getattr(hashing, method)(12, seed=0).fit(X)
    codes = hasher.encode(X)
    assert codes.shape == (300, 2) and hasher.nbits == 12
    np.testing.assert_array_equal(codes, pack((hasher.project(X) >= 0).astype(np.uint8)))
    assert not (codes[:, -1] & 0xF0).any()
    index = de.FlatIndex(12)
    index.add(codes)  # the padding bits are zero, so the index takes them
    hasher.save(tmp_path / "h.npz")
    np.testing.assert_array_equal(hashing.load_hasher(tmp_path / "h.npz").encode(X), codes)


@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("nbits", [1, 13])
@pytest.mark.parametrize("method", ["LSH", "PCAH", "ITQ", "SH", "SpH", "AGH", "DGH", "SGH"])
def test_every_hasher_fits_any_code_length(method, nbits):
    from deephash_engine import hashing

    if method == "SGH":
        pytest.importorskip("torch")
    X = np.random.default_rng(5).normal(size=(400, 16))
    params = {"n_iter": 20, "num_threads": 1} if method == "SGH" else {}  # a few steps: the shapes are the point
    codes = getattr(hashing, method)(nbits, seed=0, **params).fit_encode(X)
    assert codes.shape == (400, (nbits + 7) // 8)
    assert not (codes[:, -1] & ((0xFF << (nbits % 8)) & 0xFF)).any()
