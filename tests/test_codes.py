"""pack_bits / unpack_bits: the bit-order contract, dtypes and errors."""

import numpy as np
import pytest

import deephash_engine as de


def test_bit_order_is_lsb_first_and_zero_is_one():
    x = np.array([[0.5, -1, 0.0, -0.0, 3, -2, -0.1, 7, -1, -1, -1, -1, -1, -1, -1, 1]], dtype=np.float32)
    codes = de.pack_bits(x)
    assert codes.dtype == np.uint8 and codes.shape == (1, 2)
    assert codes[0, 0] == 0b10011101
    assert codes[0, 1] == 0b10000000


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int8, np.int16, np.int32, np.int64])
def test_matches_numpy_for_every_real_dtype(dtype, rng):
    x = (rng.standard_normal((37, 64)) * 10).astype(dtype)
    expected = np.packbits(x >= 0, axis=1, bitorder="little")
    np.testing.assert_array_equal(de.pack_bits(x), expected)


def test_bool_is_its_own_bit(rng):
    b = rng.random((5, 24)) < 0.5
    np.testing.assert_array_equal(de.pack_bits(b), np.packbits(b, axis=1, bitorder="little"))


def test_non_contiguous_input_and_1d(rng):
    x = rng.standard_normal((64, 10))
    np.testing.assert_array_equal(de.pack_bits(x.T), np.packbits(x.T >= 0, axis=1, bitorder="little"))
    assert de.pack_bits(x[:, 0][:8]).shape == (1, 1)


@pytest.mark.parametrize("nbits", [8, 16, 24, 72, 1024])
def test_unpack_inverts_pack(nbits, rng):
    bits = rng.integers(0, 2, (9, nbits)).astype(np.uint8)
    codes = de.pack_bits(bits.astype(bool))
    np.testing.assert_array_equal(de.unpack_bits(codes), bits)
    np.testing.assert_array_equal(de.unpack_bits(codes, nbits - 3), bits[:, : nbits - 3])


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="bits: the number of columns \\(nbits\\) must be a positive number of bits, got 0"):
        de.pack_bits(np.zeros((2, 0)))
    with pytest.raises(TypeError, match="uint8"):
        de.pack_bits(np.zeros((2, 8), dtype=np.uint8))
    with pytest.raises(ValueError, match="NaN"):
        de.pack_bits(np.array([[0, 0, 0, np.nan, 0, 0, 0, 0]]))
    with pytest.raises(TypeError, match="float64"):
        de.unpack_bits(np.zeros((2, 1)))
    with pytest.raises(ValueError, match="nbits"):
        de.unpack_bits(np.zeros((2, 1), dtype=np.uint8), 9)
