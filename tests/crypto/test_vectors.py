"""EncryptedVector arithmetic, numpy interplay, key/type checks, and matvec."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from homolr.crypto import (
    DEFAULT_FRAC_BITS,
    EncryptedVector,
    decode_signed_ints,
    encrypt_packed,
    matvec,
)
from homolr.errors import InvalidCiphertextError, KeyMismatchError
from tests.crypto._hyp import CRYPTO
from tests.crypto.conftest import KeyPair

reals = st.floats(min_value=-1000, max_value=1000, allow_nan=False, allow_infinity=False)
small_ints = st.integers(min_value=-(10**6), max_value=10**6)
ULP = 2.0**-DEFAULT_FRAC_BITS


def vector(draw_values: list[float]) -> np.ndarray:
    return np.array(draw_values, dtype=np.float64)


def quantised(x: np.ndarray, frac: int = DEFAULT_FRAC_BITS) -> np.ndarray:
    return np.rint(np.ldexp(x, frac)) / 2.0**frac


# ---------------------------------------------------------------------------- round trips
@CRYPTO
@given(st.lists(reals, min_size=0, max_size=8))
def test_encrypt_decrypt_round_trip(keypair: KeyPair, values: list[float]) -> None:
    pk, sk = keypair
    x = vector(values)
    ev = EncryptedVector.encrypt(pk, x)
    assert len(ev) == len(values) and ev.frac_bits == DEFAULT_FRAC_BITS
    np.testing.assert_array_equal(sk.decrypt_vector(ev), quantised(x))


@CRYPTO
@given(st.data())
def test_add_sub_neg_identities(keypair: KeyPair, data: st.DataObject) -> None:
    pk, sk = keypair
    size = data.draw(st.integers(1, 6))
    a = vector(data.draw(st.lists(reals, min_size=size, max_size=size)))
    b = vector(data.draw(st.lists(reals, min_size=size, max_size=size)))
    qa, qb = quantised(a), quantised(b)
    ea, eb = EncryptedVector.encrypt(pk, a), EncryptedVector.encrypt(pk, b)
    np.testing.assert_allclose(sk.decrypt_vector(ea + eb), qa + qb, atol=1e-9)
    np.testing.assert_allclose(sk.decrypt_vector(ea - eb), qa - qb, atol=1e-9)
    np.testing.assert_allclose(sk.decrypt_vector(-ea), -qa, atol=0)
    np.testing.assert_allclose(sk.decrypt_vector(ea + b), qa + qb, atol=1e-9)
    np.testing.assert_allclose(sk.decrypt_vector(b + ea), qa + qb, atol=1e-9)
    np.testing.assert_allclose(sk.decrypt_vector(ea - b), qa - qb, atol=1e-9)
    np.testing.assert_allclose(sk.decrypt_vector(b - ea), qb - qa, atol=1e-9)
    np.testing.assert_allclose(sk.decrypt_vector(ea + 2.5), qa + 2.5, atol=1e-9)


@CRYPTO
@given(st.data())
def test_mul_identities_and_scales(keypair: KeyPair, data: st.DataObject) -> None:
    pk, sk = keypair
    size = data.draw(st.integers(1, 6))
    a = vector(data.draw(st.lists(reals, min_size=size, max_size=size)))
    k = data.draw(reals)
    ks = np.array(data.draw(st.lists(small_ints, min_size=size, max_size=size)), dtype=np.int64)
    ea = EncryptedVector.encrypt(pk, a)
    qa, qk = quantised(a), quantised(np.array([k]))[0]

    scaled = ea * k
    assert scaled.frac_bits == 2 * DEFAULT_FRAC_BITS
    np.testing.assert_allclose(sk.decrypt_vector(scaled), qa * qk, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(sk.decrypt_vector(k * ea), qa * qk, rtol=1e-12, atol=1e-12)

    by_ints = ea * ks  # integer multipliers are exact at scale 0
    assert by_ints.frac_bits == DEFAULT_FRAC_BITS
    np.testing.assert_array_equal(sk.decrypt_vector(by_ints), qa * ks)
    np.testing.assert_array_equal(sk.decrypt_vector(ks * ea), qa * ks)
    assert (ea * -3).frac_bits == DEFAULT_FRAC_BITS
    np.testing.assert_array_equal(sk.decrypt_vector(ea * -3), qa * -3)

    explicit = ea.mul(np.full(size, 0.5), frac_bits=1)
    assert explicit.frac_bits == DEFAULT_FRAC_BITS + 1
    np.testing.assert_array_equal(sk.decrypt_vector(explicit), qa * 0.5)
    ints_scaled = ea.mul(2)  # explicit form: integers are encoded at the default scale too
    assert ints_scaled.frac_bits == 2 * DEFAULT_FRAC_BITS
    np.testing.assert_array_equal(sk.decrypt_vector(ints_scaled), qa * 2)


def test_multiplying_by_zero_gives_an_encryption_of_zero(keypair: KeyPair) -> None:
    pk, sk = keypair
    ev = EncryptedVector.encrypt(pk, [1.0, -2.0])
    assert sk.decrypt_vector(ev * 0).tolist() == [0.0, 0.0]
    assert sk.decrypt_vector((ev * 0).rerandomize()).tolist() == [0.0, 0.0]


def test_scales_are_aligned_when_adding(keypair: KeyPair) -> None:
    pk, sk = keypair
    low = EncryptedVector.encrypt(pk, [1.5, -0.25], frac_bits=4)
    high = EncryptedVector.encrypt(pk, [0.125, 3.0], frac_bits=20)
    for total in (low + high, high + low):
        assert total.frac_bits == 20
        assert sk.decrypt_vector(total).tolist() == [1.625, 2.75]
    with pytest.raises(ValueError, match="lower the scale"):
        high.rescaled(4)
    assert high.rescaled(20) is high


def test_numpy_operands_on_the_left_defer_to_the_vector(keypair: KeyPair) -> None:
    pk, sk = keypair
    ev = EncryptedVector.encrypt(pk, [1.0, 2.0])
    plain = np.array([10.0, 20.0])
    for result, expected in (
        (plain + ev, [11.0, 22.0]),
        (plain - ev, [9.0, 18.0]),
        (np.array([2, 3]) * ev, [2.0, 6.0]),
        (np.float64(2.0) * ev, [2.0, 4.0]),
    ):
        assert isinstance(result, EncryptedVector)
        assert sk.decrypt_vector(result).tolist() == expected


def test_mixing_keys_raises_key_mismatch(keypair: KeyPair, other_keypair: KeyPair) -> None:
    pk, sk = keypair
    other_pk, _ = other_keypair
    a = EncryptedVector.encrypt(pk, [1.0])
    b = EncryptedVector.encrypt(other_pk, [1.0])
    with pytest.raises(KeyMismatchError, match="different public keys"):
        a + b
    with pytest.raises(ValueError):  # KeyMismatchError is a ValueError
        a - b
    with pytest.raises(KeyMismatchError):
        sk.decrypt_vector(b)


def test_wrong_types_raise_type_error(keypair: KeyPair) -> None:
    pk, sk = keypair
    ev = EncryptedVector.encrypt(pk, [1.0, 2.0])
    for bad in ("text", object(), None, {1: 2}):
        with pytest.raises(TypeError):
            ev + bad  # type: ignore[operator]
        with pytest.raises(TypeError):
            ev * bad  # type: ignore[operator]
        with pytest.raises(TypeError):
            ev - bad  # type: ignore[operator]
    with pytest.raises(TypeError, match="two ciphertexts"):
        ev * ev
    with pytest.raises(TypeError):
        ev + encrypt_packed(pk, [1.0, 2.0])  # type: ignore[operator]
    with pytest.raises(TypeError):
        ev.mul(ev, frac_bits=0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        EncryptedVector.encrypt("key", [1.0])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        EncryptedVector(pk.n, [], 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        sk.decrypt_vector([1, 2])  # type: ignore[arg-type]


def test_length_and_shape_mismatches_raise_value_error(keypair: KeyPair) -> None:
    pk, _ = keypair
    ev = EncryptedVector.encrypt(pk, [1.0, 2.0])
    with pytest.raises(ValueError, match="length mismatch"):
        ev + EncryptedVector.encrypt(pk, [1.0])
    with pytest.raises(ValueError, match="length mismatch"):
        ev + np.ones(3)
    with pytest.raises(ValueError, match="length mismatch"):
        ev * np.ones(3)
    with pytest.raises(ValueError, match="1-D"):
        ev + np.ones((2, 1))
    with pytest.raises(ValueError, match="frac_bits"):
        EncryptedVector(pk, ev.ciphertexts, -1)


def test_indexing_keeps_key_and_scale(keypair: KeyPair) -> None:
    pk, sk = keypair
    ev = EncryptedVector.encrypt(pk, [1.0, 2.0, 3.0], frac_bits=8)
    assert sk.decrypt_vector(ev[1]).tolist() == [2.0]
    assert sk.decrypt_vector(ev[-1]).tolist() == [3.0]
    assert sk.decrypt_vector(ev[np.int64(0)]).tolist() == [1.0]
    part = ev[::2]
    assert part.frac_bits == 8 and sk.decrypt_vector(part).tolist() == [1.0, 3.0]
    with pytest.raises(IndexError):
        ev[3]
    with pytest.raises(TypeError):
        ev["0"]  # type: ignore[index]
    assert "len=3" in repr(ev)


def test_rerandomize_changes_ciphertexts_not_values(keypair: KeyPair) -> None:
    pk, sk = keypair
    ev = EncryptedVector.encrypt(pk, [4.0, -4.0])
    fresh = ev.rerandomize()
    assert all(a != b for a, b in zip(ev.ciphertexts, fresh.ciphertexts, strict=True))
    assert sk.decrypt_vector(fresh).tolist() == [4.0, -4.0]


def test_bytes_round_trip_and_validation(keypair: KeyPair) -> None:
    pk, sk = keypair
    ev = EncryptedVector.encrypt(pk, [0.5, -7.0])
    again = EncryptedVector.from_bytes(pk, ev.to_bytes(), ev.frac_bits)
    assert again.ciphertexts == ev.ciphertexts
    assert sk.decrypt_vector(again).tolist() == [0.5, -7.0]
    with pytest.raises(InvalidCiphertextError, match="index 0"):
        EncryptedVector.from_bytes(pk, bytes(pk.ciphertext_bytes), 0)
    with pytest.raises(InvalidCiphertextError):
        EncryptedVector(pk, [pk.nsquare], 0)


# ---------------------------------------------------------------------------- matvec
@CRYPTO
@given(st.data())
def test_matvec_matches_numpy(keypair: KeyPair, data: st.DataObject) -> None:
    pk, sk = keypair
    rows, cols = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 7))
    matrix = data.draw(hnp.arrays(np.float64, (rows, cols), elements=st.floats(-4, 4)))
    x = vector(data.draw(st.lists(reals, min_size=cols, max_size=cols)))
    result = matvec(matrix, EncryptedVector.encrypt(pk, x))
    assert len(result) == rows and result.frac_bits == 2 * DEFAULT_FRAC_BITS
    expected = quantised(matrix) @ quantised(x)
    np.testing.assert_allclose(sk.decrypt_vector(result), expected, rtol=1e-12, atol=1e-9)


@CRYPTO
@given(st.data())
def test_integer_matvec_is_exact(keypair: KeyPair, data: st.DataObject) -> None:
    pk, sk = keypair
    rows, cols = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 5))
    matrix = data.draw(hnp.arrays(np.int64, (rows, cols), elements=st.integers(-(2**40), 2**40)))
    x = data.draw(st.lists(st.integers(-(2**30), 2**30), min_size=cols, max_size=cols))
    result = matvec(matrix, EncryptedVector.encrypt(pk, np.array(x, dtype=np.int64), 0))
    assert result.frac_bits == 0
    decoded = decode_signed_ints(sk.raw_decrypt_many(result.ciphertexts), pk.n)  # exact
    expected = [sum(int(m) * v for m, v in zip(row, x, strict=True)) for row in matrix.tolist()]
    assert decoded == expected


def test_matvec_edge_matrices(keypair: KeyPair) -> None:
    pk, sk = keypair
    ev = EncryptedVector.encrypt(pk, [1.0, -2.0, 3.0])
    zero = matvec(np.zeros((2, 3)), ev)
    assert sk.decrypt_vector(zero).tolist() == [0.0, 0.0]
    identity = matvec(np.eye(3), ev)
    assert sk.decrypt_vector(identity).tolist() == [1.0, -2.0, 3.0]
    mixed = matvec(np.array([[0.0, 0.0, 0.0], [-1.0, 0.0, 0.0], [0.5, 0.5, 0.5]]), ev)
    assert sk.decrypt_vector(mixed).tolist() == [0.0, -1.0, 1.0]
    assert len(matvec(np.zeros((0, 3)), ev)) == 0


def test_matvec_checks_shapes_and_types(keypair: KeyPair) -> None:
    pk, _ = keypair
    ev = EncryptedVector.encrypt(pk, [1.0, 2.0])
    with pytest.raises(ValueError, match="2 values"):
        matvec(np.ones((2, 3)), ev)
    with pytest.raises(ValueError, match="2-D"):
        matvec(np.ones(2), ev)
    with pytest.raises(TypeError):
        matvec(np.ones((2, 2)), [1, 2])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="numeric"):
        matvec(np.array([["a", "b"]]), ev)
    with pytest.raises(ValueError, match="non-finite"):
        matvec(np.array([[np.nan, 1.0]]), ev)


def test_matvec_31x31_at_2048_bits(keypair_2048: KeyPair) -> None:
    pk, sk = keypair_2048
    rng = np.random.default_rng(7)
    matrix = rng.uniform(-2, 2, (31, 31))
    w = rng.uniform(-3, 3, 31)
    b = rng.uniform(-1, 1, 31)
    result = matvec(matrix, EncryptedVector.encrypt(pk, w)) + b  # one training update
    assert result.frac_bits == 2 * DEFAULT_FRAC_BITS
    expected = quantised(matrix) @ quantised(w) + quantised(b, 2 * DEFAULT_FRAC_BITS)
    np.testing.assert_allclose(sk.decrypt_vector(result), expected, rtol=1e-12, atol=1e-9)
