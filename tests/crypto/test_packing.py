"""Packing: slot layout, overflow detection, homomorphic pack, packed sums."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from homolr.crypto import (
    DEFAULT_FRAC_BITS,
    EncryptedVector,
    PackedVector,
    PackingSpec,
    PrivateKey,
    decode_signed_ints,
    encrypt_packed,
    matvec,
    pack,
    pack_ints,
    unpack_ints,
)
from homolr.errors import EncodingOverflowError, InvalidCiphertextError, KeyMismatchError
from tests.crypto._hyp import CRYPTO
from tests.crypto.conftest import KeyPair

SPEC = PackingSpec()
LO, HI = SPEC.value_min, SPEC.value_max
slot_values = st.integers(min_value=LO, max_value=HI)


# ---------------------------------------------------------------------------- spec
def test_default_spec_matches_the_issue() -> None:
    assert SPEC.slot_bits == 74
    assert SPEC.max_contributions == 1024
    assert SPEC.slots_per_ciphertext(2048) >= 27
    assert SPEC.slots_per_ciphertext(2048) == 27
    assert SPEC.slots_per_ciphertext(3072) == 41
    assert SPEC.ciphertext_count(31, 2048) == 2
    assert (LO, HI) == (-(2**63), 2**63 - 1)


def test_spec_validation() -> None:
    with pytest.raises(ValueError, match="value_bits"):
        PackingSpec(value_bits=1)
    with pytest.raises(ValueError, match="headroom_bits"):
        PackingSpec(headroom_bits=-1)
    with pytest.raises(TypeError):
        PackingSpec(value_bits=64.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="does not fit"):
        SPEC.slots_per_ciphertext(64)


# ---------------------------------------------------------------------------- pure helpers
@CRYPTO
@given(st.lists(slot_values, max_size=70), st.sampled_from([512, 2048]))
def test_pack_unpack_round_trip(values: list[int], n_bits: int) -> None:
    packed = pack_ints(values, SPEC, n_bits)
    assert len(packed) == SPEC.ciphertext_count(len(values), n_bits)
    assert all(0 <= p < 2 ** (n_bits - 1) for p in packed)
    assert unpack_ints(packed, len(values), SPEC, 1, n_bits) == values


@CRYPTO
@given(st.data())
def test_sums_of_packed_plaintexts_unpack_to_slot_sums(data: st.DataObject) -> None:
    contributions = data.draw(st.integers(1, 12))
    length = data.draw(st.integers(0, 30))
    rows = [
        data.draw(st.lists(slot_values, min_size=length, max_size=length))
        for _ in range(contributions)
    ]
    packed = [pack_ints(row, SPEC, 2048) for row in rows]
    summed = [sum(column) for column in zip(*packed, strict=True)] if length else []
    expected = [sum(column) for column in zip(*rows, strict=True)]
    assert unpack_ints(summed, length, SPEC, contributions, 2048) == expected


def test_the_full_headroom_is_usable() -> None:
    spec = PackingSpec(value_bits=8, headroom_bits=3)
    rows = [[spec.value_max, spec.value_min]] * spec.max_contributions
    summed = [sum(c) for c in zip(*[pack_ints(r, spec, 256) for r in rows], strict=True)]
    assert unpack_ints(summed, 2, spec, spec.max_contributions, 256) == [127 * 8, -128 * 8]


def test_out_of_range_values_are_refused_when_packing() -> None:
    with pytest.raises(EncodingOverflowError, match="index 2"):
        pack_ints([0, 1, HI + 1], SPEC, 2048)
    with pytest.raises(EncodingOverflowError, match="index 0"):
        pack_ints([LO - 1], SPEC, 2048)


def test_slot_overflow_is_detected_and_named() -> None:
    slot = SPEC.slot_bits
    # slot 1 holds 2**64: no single in-range value (offset applied) can produce it
    plaintext = (1 << 64) << slot
    with pytest.raises(EncodingOverflowError, match="slot 1 overflowed"):
        unpack_ints([plaintext], 3, SPEC, 1, 2048)
    # the same slot content is fine for 2 contributions
    assert unpack_ints([plaintext], 3, SPEC, 2, 2048)[1] == (1 << 64) - 2 * SPEC.offset
    # a carry out of the top used slot
    with pytest.raises(EncodingOverflowError, match="wider than its 3 slots"):
        unpack_ints([1 << (3 * slot)], 3, SPEC, 1, 2048)
    # slot index counts across plaintexts
    slots = SPEC.slots_per_ciphertext(512)
    with pytest.raises(EncodingOverflowError, match=f"slot {slots} overflowed"):
        unpack_ints([0, (1 << 74) - 1], slots + 1, SPEC, 1, 512)


def test_unpack_argument_checks() -> None:
    with pytest.raises(ValueError, match="need 2 packed plaintexts"):
        unpack_ints([0], 28, SPEC, 1, 2048)
    with pytest.raises(ValueError, match="contributions"):
        unpack_ints([0], 1, SPEC, 0, 2048)
    with pytest.raises(ValueError, match="contributions"):
        unpack_ints([0], 1, SPEC, 1025, 2048)


# ---------------------------------------------------------------------------- encrypted
@CRYPTO
@given(st.lists(st.floats(-1e4, 1e4), min_size=1, max_size=14))
def test_homomorphic_pack_decrypts_like_the_vector(keypair: KeyPair, values: list[float]) -> None:
    pk, sk = keypair
    ev = EncryptedVector.encrypt(pk, values)
    pv = pack(ev)
    assert len(pv) == len(values)
    assert len(pv.ciphertexts) == SPEC.ciphertext_count(len(values), pk.n_bits)
    np.testing.assert_array_equal(sk.decrypt_packed(pv), sk.decrypt_vector(ev))


def test_pack_after_matvec_at_product_scale(keypair: KeyPair) -> None:
    pk, sk = keypair
    rng = np.random.default_rng(3)
    matrix, w = rng.uniform(-2, 2, (9, 4)), rng.uniform(-5, 5, 4)
    y = matvec(matrix, EncryptedVector.encrypt(pk, w)) + rng.uniform(-1, 1, 9)
    pv = pack(y)
    assert pv.frac_bits == 2 * DEFAULT_FRAC_BITS
    assert sk.decrypt_packed_ints(pv) == _signed(sk, y)
    np.testing.assert_array_equal(sk.decrypt_packed(pv), sk.decrypt_vector(y))


def _signed(sk: PrivateKey, ev: EncryptedVector) -> list[int]:
    return decode_signed_ints(sk.raw_decrypt_many(ev.ciphertexts), ev.public_key.n)


def test_pack_rerandomizes_by_default(keypair: KeyPair) -> None:
    pk, sk = keypair
    ev = EncryptedVector.encrypt(pk, [1.0, 2.0])
    plain_a, plain_b = pack(ev, rerandomize=False), pack(ev, rerandomize=False)
    assert plain_a.ciphertexts == plain_b.ciphertexts  # deterministic without a fresh mask
    fresh_a, fresh_b = pack(ev), pack(ev)
    assert fresh_a.ciphertexts != fresh_b.ciphertexts
    assert sk.decrypt_packed(fresh_a).tolist() == [1.0, 2.0]


def test_packed_value_out_of_slot_range_raises_on_decrypt(keypair: KeyPair) -> None:
    pk, sk = keypair
    # anything up to 2**headroom_bits times beyond the range, in any slot
    for bad in (2**63, -(2**63) - 1, 2**73, -(2**73), 5 * 2**70):
        ev = EncryptedVector.encrypt(pk, np.array([5, bad, -5], dtype=object), 0)
        with pytest.raises(EncodingOverflowError, match="slot 1 overflowed"):
            sk.decrypt_packed(pack(ev))
    # any overflow of the top slot, however large
    for bad in (2**80, -(2**80), 2**200):
        ev = EncryptedVector.encrypt(pk, np.array([5, bad], dtype=object), 0)
        with pytest.raises(EncodingOverflowError, match="wider than its 2 slots"):
            sk.decrypt_packed(pack(ev))
    edge = EncryptedVector.encrypt(pk, np.array([LO, HI], dtype=object), 0)
    assert sk.decrypt_packed_ints(pack(edge)) == [LO, HI]


def test_sum_of_worker_uploads(keypair: KeyPair) -> None:
    pk, sk = keypair
    rng = np.random.default_rng(5)
    uploads = [rng.uniform(-3, 3, 20) for _ in range(3)]
    total = encrypt_packed(pk, uploads[0])
    total = total + pack(EncryptedVector.encrypt(pk, uploads[1]))
    total = total + encrypt_packed(pk, uploads[2])
    assert total.contributions == 3
    quantised = sum(np.rint(np.ldexp(u, DEFAULT_FRAC_BITS)) for u in uploads)
    np.testing.assert_array_equal(sk.decrypt_packed(total), quantised / 2.0**DEFAULT_FRAC_BITS)


def test_contribution_limit_is_enforced(keypair: KeyPair) -> None:
    pk, _ = keypair
    spec = PackingSpec(value_bits=16, headroom_bits=1)
    a = encrypt_packed(pk, [1.0], frac_bits=4, spec=spec)
    assert (a + a).contributions == 2
    with pytest.raises(EncodingOverflowError, match="exceeds the 2"):
        (a + a) + a
    with pytest.raises(ValueError, match="contributions"):
        PackedVector(pk, a.ciphertexts, 1, 4, spec, contributions=3)


def test_packed_addition_checks_operands(keypair: KeyPair, other_keypair: KeyPair) -> None:
    pk, _ = keypair
    a = encrypt_packed(pk, [1.0, 2.0])
    with pytest.raises(KeyMismatchError):
        a + encrypt_packed(other_keypair[0], [1.0, 2.0])
    with pytest.raises(ValueError, match="length"):
        a + encrypt_packed(pk, [1.0])
    with pytest.raises(ValueError, match="frac_bits"):
        a + encrypt_packed(pk, [1.0, 2.0], frac_bits=8)
    with pytest.raises(ValueError, match="spec"):
        a + encrypt_packed(pk, [1.0, 2.0], spec=PackingSpec(headroom_bits=4))
    with pytest.raises(TypeError):
        a + EncryptedVector.encrypt(pk, [1.0, 2.0])  # type: ignore[operator]
    with pytest.raises(TypeError):
        pack([1.0])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        encrypt_packed("key", [1.0])  # type: ignore[arg-type]


def test_encrypt_packed_refuses_values_beyond_the_slot(keypair: KeyPair) -> None:
    pk, _ = keypair
    with pytest.raises(EncodingOverflowError, match="index 1"):
        encrypt_packed(pk, [0.0, 2.0**40])  # 2**40 * 2**24 needs 65 bits


def test_packed_bytes_round_trip(keypair: KeyPair) -> None:
    pk, sk = keypair
    pv = encrypt_packed(pk, np.arange(10.0))
    again = PackedVector.from_bytes(pk, pv.to_bytes(), 10, DEFAULT_FRAC_BITS, SPEC)
    assert again.ciphertexts == pv.ciphertexts
    assert sk.decrypt_packed(again).tolist() == list(range(10))
    with pytest.raises(InvalidCiphertextError):
        PackedVector.from_bytes(pk, bytes(len(pv.to_bytes())), 10, DEFAULT_FRAC_BITS, SPEC)
    with pytest.raises(ValueError, match="need 2 packed ciphertexts"):
        PackedVector.from_bytes(pk, pv.to_bytes()[: pk.ciphertext_bytes], 10, 24, SPEC)
    with pytest.raises(ValueError, match="need 3"):
        PackedVector(pk, pv.ciphertexts, 13, 24, SPEC)  # 6 slots per 512-bit plaintext


def test_weights_of_the_reference_model_fit_two_ciphertexts(keypair_2048: KeyPair) -> None:
    pk, sk = keypair_2048
    w = np.random.default_rng(11).uniform(-3, 3, 31)
    pv = pack(EncryptedVector.encrypt(pk, w))
    assert len(pv.ciphertexts) == 2
    assert len(pv.to_bytes()) == 2 * 512
    np.testing.assert_array_equal(sk.decrypt_packed(pv), np.rint(np.ldexp(w, 24)) / 2.0**24)
