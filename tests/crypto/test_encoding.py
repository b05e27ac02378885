"""Fixed-point encoding: round trips, wrap-around, guard band, scale arithmetic."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from homolr.crypto.encoding import (
    DEFAULT_FRAC_BITS,
    decode,
    decode_signed_ints,
    encode,
    encode_scalar,
    fixed_point_int64,
    fixed_to_float,
    max_int,
    to_fixed_point,
)
from homolr.errors import EncodingOverflowError
from tests.crypto._hyp import CRYPTO

# Pure encoding needs no Paillier modulus: any large odd n will do.
N = (1 << 127) - 1
BOUND = max_int(N)

finite = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False)


def test_default_frac_bits_is_at_least_the_20_the_reference_needs() -> None:
    assert DEFAULT_FRAC_BITS >= 20


def test_max_int_is_a_third_of_n() -> None:
    assert max_int(N) == N // 3 - 1


@CRYPTO
@given(st.lists(finite, min_size=1, max_size=20), st.integers(min_value=0, max_value=40))
def test_round_trip_within_half_a_unit_in_the_last_place(values: list[float], frac: int) -> None:
    x = np.array(values)
    decoded = decode(encode(values, frac, N), frac, N)
    # half a unit at scale frac, plus the float64 rounding of the decoded quotient
    assert np.all(np.abs(decoded - x) <= 2.0 ** -(frac + 1) + np.abs(x) * 2.0**-52)


@CRYPTO
@given(st.lists(st.integers(min_value=-(1 << 100), max_value=1 << 100), max_size=10))
def test_python_ints_are_exact_at_scale_zero(values: list[int]) -> None:
    encoded = encode(np.array(values, dtype=object), 0, N) if values else []
    assert decode_signed_ints(encoded, N) == values


def test_numpy_integer_dtypes_are_exact() -> None:
    values = np.array([-(2**62), -1, 0, 7, 2**62], dtype=np.int64)
    assert decode_signed_ints(encode(values, 0, N), N) == values.tolist()
    assert to_fixed_point(np.array([3], dtype=np.uint8), 4) == [48]


def test_integers_are_scaled_exactly_at_positive_frac_bits() -> None:
    assert to_fixed_point([3, -2], 10) == [3 << 10, -(2 << 10)]


def test_negative_values_wrap_mod_n() -> None:
    assert encode(-1.0, 0, N) == [N - 1]
    assert encode_scalar(-0.5, 1, N) == N - 1
    assert decode([N - 4], 2, N).tolist() == [-1.0]


def test_rounding_is_half_to_even() -> None:
    assert to_fixed_point([0.5, 1.5, 2.5, -0.5], 0) == [0, 2, 2, 0]


def test_large_floats_are_encoded_exactly() -> None:
    x = 2.0**80 + 2.0**28  # exactly representable, beyond int64 after scaling
    assert to_fixed_point([x], 8) == [(2**80 + 2**28) << 8]
    huge = 1.5 * 2.0**1023  # x * 2**24 overflows float64 but not a 2048-bit plaintext
    assert to_fixed_point([huge, 1.0], 24) == [3 << (1022 + 24), 1 << 24]
    assert to_fixed_point(huge, 24) == [3 << (1022 + 24)]
    assert to_fixed_point(np.array([huge], dtype=object), 1) == [3 << 1023]
    assert to_fixed_point([2.5, -2.5, 2.0**-30], 0) == [2, -2, 0]


def test_int64_fast_path_matches_the_exact_encoding_and_declines_what_does_not_fit() -> None:
    matrix = np.array([[0.5, -1.25, 3.0], [-(2.0**-30), 2.0**36, -7.75]])
    fast = fixed_point_int64(matrix, 24)
    assert fast is not None
    assert fast.dtype == np.int64
    assert fast.shape == (2, 3)
    assert fast.reshape(-1).tolist() == to_fixed_point(matrix.reshape(-1), 24)
    assert fixed_point_int64(np.array([2.0**38]), 24) is None  # 2**62: needs Python ints
    assert fixed_point_int64(np.array([-(2**40), 5]), 22) is None  # -2**62 after scaling
    ints = fixed_point_int64(np.array([-(2**40), 5], dtype=np.int64), 20)
    assert ints is not None
    assert ints.tolist() == [-(2**60), 5 << 20]
    assert fixed_point_int64(np.array([2**63], dtype=np.uint64), 0) is None
    assert fixed_point_int64(np.array([1], dtype=object), 0) is None
    with pytest.raises(ValueError, match="non-finite value nan at index 4"):
        fixed_point_int64(np.array([[1.0, 2.0], [3.0, 4.0], [math.nan, 0.0]]), 8)


@CRYPTO
@given(finite, finite, st.integers(0, 30), st.integers(0, 30))
def test_product_scale_is_the_sum_of_scales(x: float, y: float, a: int, b: int) -> None:
    # Paillier multiplies a plaintext by a signed integer exponent; emulate it mod n.
    ex = encode_scalar(x, a, N)
    ky = to_fixed_point([y], b)[0]
    product = decode([ex * ky % N], a + b, N)[0]
    qx = round(x * 2**a) / 2**a
    qy = round(y * 2**b) / 2**b
    assert product == pytest.approx(qx * qy, rel=1e-12, abs=1e-300)


def test_decoding_the_guard_band_raises_naming_the_bound() -> None:
    with pytest.raises(EncodingOverflowError, match=r"max_int = n // 3 - 1"):
        decode([BOUND + 1], 0, N)
    with pytest.raises(EncodingOverflowError, match="index 1"):
        decode([0, N - BOUND - 1], 0, N)


def test_edges_of_the_guard_band_decode() -> None:
    assert decode_signed_ints([BOUND, N - BOUND], N) == [BOUND, -BOUND]


def test_encoding_beyond_max_int_raises() -> None:
    with pytest.raises(EncodingOverflowError, match="max_int"):
        encode([BOUND + 1], 0, N)
    with pytest.raises(OverflowError):  # EncodingOverflowError is an OverflowError
        encode([-(2.0**126)], 0, N)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_values_are_rejected(bad: float) -> None:
    with pytest.raises(ValueError, match="non-finite"):
        encode([1.0, bad], 8, N)
    with pytest.raises(ValueError, match="non-finite"):
        encode(np.array([1, bad], dtype=object), 8, N)


def test_non_numbers_are_rejected() -> None:
    with pytest.raises(TypeError, match="index 0"):
        encode(["abc"], 0, N)
    with pytest.raises(TypeError):
        encode([1 + 2j], 0, N)


def test_shape_and_frac_bits_are_checked() -> None:
    with pytest.raises(ValueError, match="1-D"):
        encode(np.zeros((2, 2)), 0, N)
    with pytest.raises(ValueError, match="frac_bits"):
        encode([1.0], -1, N)
    with pytest.raises(TypeError, match="frac_bits"):
        encode([1.0], 2.5, N)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="scalar"):
        encode_scalar(np.array([1.0, 2.0]), 0, N)  # type: ignore[arg-type]


def test_decode_rejects_values_outside_the_plaintext_space() -> None:
    with pytest.raises(ValueError, match=r"outside \[0, n\)"):
        decode([N], 0, N)
    with pytest.raises(ValueError, match=r"outside \[0, n\)"):
        decode([-1], 0, N)


def test_float_conversion_is_correctly_rounded_and_range_checked() -> None:
    v = (1 << 60) + 1  # not representable: must round to nearest, not truncate
    assert fixed_to_float([v], 0)[0] == float(v)
    assert fixed_to_float([-3], 1)[0] == -1.5
    with pytest.raises(EncodingOverflowError, match="float64"):
        fixed_to_float([1 << 1100], 0)


def test_scalar_input_gives_one_value() -> None:
    assert encode(2.0, 3, N) == [16]
    assert encode(np.float32(0.25), 2, N) == [1]
    assert encode(True, 0, N) == [1]
