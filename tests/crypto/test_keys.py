"""Keys: generation policy, raw encryption/decryption, homomorphic raw ops, serialisation."""

from __future__ import annotations

import copy
import json
import secrets
import threading

import gmpy2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from homolr.crypto import PrivateKey, PublicKey, generate_keypair
from homolr.crypto._fixedbase import FixedBaseTable
from homolr.crypto._ring import PairRing
from homolr.errors import ConfigError, InvalidCiphertextError
from tests.crypto._hyp import CRYPTO
from tests.crypto.conftest import KeyPair


# ---------------------------------------------------------------------------- generation
def test_generated_key_has_the_promised_structure(keypair_1024: KeyPair) -> None:
    pk, sk = keypair_1024
    assert pk.n_bits == 1024
    assert sk.p != sk.q
    assert sk.p.bit_length() == sk.q.bit_length() == 512
    assert sk.p * sk.q == pk.n
    assert gmpy2.is_prime(sk.p) and gmpy2.is_prime(sk.q)
    assert gmpy2.gcd(pk.n, (sk.p - 1) * (sk.q - 1)) == 1
    assert 0 < pk.hs < pk.nsquare and gmpy2.gcd(pk.hs, pk.n) == 1
    # hs is an n-th residue: hs**lambda == 1 mod n**2 (its order divides phi(n))
    lam = gmpy2.lcm(sk.p - 1, sk.q - 1)
    assert gmpy2.powmod(pk.hs, lam, pk.nsquare) == 1
    assert pk.max_int == pk.n // 3 - 1
    assert pk.ciphertext_bytes == 256


def test_2048_bit_default_round_trip(keypair_2048: KeyPair) -> None:
    pk, sk = keypair_2048
    assert pk.n_bits == 2048 and pk.ciphertext_bytes == 512
    m = secrets.randbelow(int(pk.n))
    assert sk.raw_decrypt(pk.raw_encrypt(m)) == m


def test_small_keys_need_the_explicit_flag() -> None:
    with pytest.raises(ValueError, match="minimum of 2048"):
        generate_keypair(1024)
    with pytest.raises(ValueError, match="multiple of 8"):
        generate_keypair(1028, insecure_small_key=True)
    with pytest.raises(ValueError, match="absolute minimum of 256"):
        generate_keypair(128, insecure_small_key=True)
    with pytest.raises(TypeError):
        generate_keypair("2048")  # type: ignore[arg-type]


def test_keys_are_fresh_each_time() -> None:
    a, _ = generate_keypair(256, insecure_small_key=True)
    b, _ = generate_keypair(256, insecure_small_key=True)
    assert a.n != b.n and a != b


def test_private_key_checks_its_factors(keypair: KeyPair) -> None:
    pk, sk = keypair
    with pytest.raises(ValueError, match="does not equal"):
        PrivateKey(pk, sk.p, sk.q + 2)
    with pytest.raises(ValueError, match="distinct"):
        PrivateKey(pk, sk.p, sk.p)
    with pytest.raises(TypeError):
        PrivateKey(pk, float(sk.p), sk.q)  # type: ignore[arg-type]
    assert PrivateKey(pk, sk.q, sk.p) == sk  # order of factors does not matter


def test_private_key_never_leaks_or_serialises(keypair: KeyPair) -> None:
    _, sk = keypair
    assert str(sk.p) not in repr(sk) and format(sk.p, "x") not in repr(sk)
    assert not hasattr(sk, "to_json") and not hasattr(sk, "to_bytes")
    with pytest.raises(TypeError, match="never pickled"):
        copy.copy(sk)


# ---------------------------------------------------------------------------- raw layer
@CRYPTO
@given(st.data())
def test_raw_round_trip(keypair: KeyPair, data: st.DataObject) -> None:
    pk, sk = keypair
    m = data.draw(st.integers(min_value=0, max_value=int(pk.n) - 1))
    assert sk.raw_decrypt(pk.raw_encrypt(m)) == m


def test_encryption_is_randomised(keypair: KeyPair) -> None:
    pk, sk = keypair
    c1, c2 = pk.raw_encrypt(5), pk.raw_encrypt(5)
    assert c1 != c2
    assert sk.raw_decrypt(c1) == sk.raw_decrypt(c2) == 5


def test_plaintext_range_and_type_are_checked(keypair: KeyPair) -> None:
    pk, _ = keypair
    with pytest.raises(ValueError, match=r"\[0, n\)"):
        pk.raw_encrypt(-1)
    with pytest.raises(ValueError, match=r"\[0, n\)"):
        pk.raw_encrypt(pk.n)
    with pytest.raises(ValueError, match="index 1"):
        pk.raw_encrypt_many([1, pk.n])
    for bad in (1.0, "1", True):
        with pytest.raises(TypeError):
            pk.raw_encrypt(bad)  # type: ignore[arg-type]


@CRYPTO
@given(st.data())
def test_raw_homomorphic_identities(keypair: KeyPair, data: st.DataObject) -> None:
    pk, sk = keypair
    n = int(pk.n)
    a = data.draw(st.integers(0, n - 1))
    b = data.draw(st.integers(0, n - 1))
    k = data.draw(st.integers(-(1 << 80), 1 << 80))
    ca, cb = pk.raw_encrypt(a), pk.raw_encrypt(b)
    assert sk.raw_decrypt(pk.raw_add(ca, cb)) == (a + b) % n
    assert sk.raw_decrypt(pk.raw_add_plain(ca, b)) == (a + b) % n
    assert sk.raw_decrypt(pk.raw_add_plain(ca, -b)) == (a - b) % n
    assert sk.raw_decrypt(pk.raw_mul(ca, k)) == (a * k) % n
    assert sk.raw_decrypt(pk.raw_neg(ca)) == (-a) % n


def test_negative_scalars_use_the_inverse(keypair: KeyPair) -> None:
    pk, _ = keypair
    c = pk.raw_encrypt(12)
    expected = gmpy2.powmod(gmpy2.invert(c, pk.nsquare), 3, pk.nsquare)
    assert pk.raw_mul(c, -3) == expected
    assert pk.raw_mul(c, 0) == 1


def test_rerandomize_keeps_the_plaintext(keypair: KeyPair) -> None:
    pk, sk = keypair
    c = pk.raw_encrypt(77)
    r = pk.rerandomize(c)
    assert r != c and sk.raw_decrypt(r) == 77
    many = pk.rerandomize_many([c, c])
    assert many[0] != many[1] and [sk.raw_decrypt(x) for x in many] == [77, 77]


def test_decrypt_many_matches_decrypt(keypair: KeyPair) -> None:
    pk, sk = keypair
    ms = [0, 1, int(pk.n) - 1, 12345]
    assert sk.raw_decrypt_many(pk.raw_encrypt_many(ms)) == ms
    with pytest.raises(ValueError, match="outside"):
        sk.raw_decrypt(0)


def test_fixed_base_table_matches_powmod() -> None:
    n = gmpy2.next_prime(1 << 300) * gmpy2.next_prime(1 << 301)
    modulus = n * n
    base = gmpy2.mpz(secrets.randbits(1200)) % modulus
    table = FixedBaseTable(base, PairRing(n), 5)
    for exponent in (bytes(5), b"\xff" * 5, secrets.token_bytes(5), b"\x01\x00\x00\x00\x80"):
        e = int.from_bytes(exponent, "little")
        assert table.power(exponent) == gmpy2.powmod(base, e, modulus)
    with pytest.raises(ValueError, match="5 bytes"):
        table.power(b"\x00")
    with pytest.raises(ValueError):
        FixedBaseTable(base, PairRing(n), 0)


# ---------------------------------------------------------------------------- mask pool
def test_precomputed_masks_are_used_once_each(keypair: KeyPair) -> None:
    pk, sk = keypair
    pk.precompute_masks(40)
    assert pk.precomputed_masks >= 40
    results: list[list[gmpy2.mpz]] = []

    def encrypt_some() -> None:
        results.append(pk.raw_encrypt_many([3] * 10))

    threads = [threading.Thread(target=encrypt_some) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flat = [c for batch in results for c in batch]
    assert len(set(flat)) == 40  # no mask used twice
    assert {sk.raw_decrypt(c) for c in flat} == {3}
    assert pk.precomputed_masks == 0
    with pytest.raises(ValueError):
        pk.precompute_masks(-1)


# ---------------------------------------------------------------------------- wire form
def test_ciphertext_bytes_round_trip(keypair: KeyPair) -> None:
    pk, _ = keypair
    cs = pk.raw_encrypt_many([1, 2, 3])
    data = pk.ciphertexts_to_bytes(cs)
    assert len(data) == 3 * pk.ciphertext_bytes
    assert pk.ciphertexts_from_bytes(data) == cs
    assert pk.ciphertexts_from_bytes(b"") == []


def test_malformed_ciphertext_bytes_are_rejected(keypair: KeyPair) -> None:
    pk, sk = keypair
    width = pk.ciphertext_bytes
    good = pk.ciphertexts_to_bytes([pk.raw_encrypt(1)])
    with pytest.raises(InvalidCiphertextError, match="not a multiple"):
        pk.ciphertexts_from_bytes(good + b"\x00")
    with pytest.raises(InvalidCiphertextError, match="index 1"):
        pk.ciphertexts_from_bytes(good + bytes(width))  # c = 0
    too_big = (int(pk.nsquare)).to_bytes(width, "big")
    with pytest.raises(InvalidCiphertextError, match=r"index 0 is outside"):
        pk.ciphertexts_from_bytes(too_big)
    shares_factor = int(sk.p * 12345).to_bytes(width, "big")
    with pytest.raises(InvalidCiphertextError, match="gcd"):
        pk.ciphertexts_from_bytes(good + good + shares_factor)
    with pytest.raises(ValueError):  # InvalidCiphertextError is a ValueError
        pk.validate_ciphertext(pk.n)
    with pytest.raises(TypeError):
        pk.validate_ciphertext(b"\x01")
    with pytest.raises(InvalidCiphertextError):
        pk.ciphertexts_to_bytes([0])


def test_public_key_bytes_and_json_round_trip(keypair: KeyPair) -> None:
    pk, _ = keypair
    again = PublicKey.from_bytes(pk.to_bytes(), insecure_small_key=True)
    assert again == pk and hash(again) == hash(pk)
    assert again.fingerprint() == pk.fingerprint()
    assert len(pk.fingerprint()) == 64
    from_json = PublicKey.from_json(pk.to_json(), insecure_small_key=True)
    assert from_json == pk and from_json.hs == pk.hs
    assert {pk: 1}[from_json] == 1
    assert pk != PublicKey(pk.n, pk.rerandomize(pk.hs)) and pk != "key"


def test_key_deserialisation_enforces_the_size_policy(keypair: KeyPair) -> None:
    pk, _ = keypair
    with pytest.raises(ValueError, match="minimum is 2048"):
        PublicKey.from_bytes(pk.to_bytes())
    with pytest.raises(ValueError, match="minimum is 2048"):
        PublicKey.from_json(pk.to_json())


def test_2048_bit_key_deserialises_without_flag(keypair_2048: KeyPair) -> None:
    pk, _ = keypair_2048
    assert PublicKey.from_bytes(pk.to_bytes()) == pk
    assert PublicKey.from_json(pk.to_json()) == pk


def test_malformed_public_key_bytes_are_rejected(keypair: KeyPair) -> None:
    pk, sk = keypair
    blob = pk.to_bytes()
    cases = {
        "magic": b"XXXX" + blob[4:],
        "version": blob[:4] + b"\x07" + blob[5:],
        "expected": blob[:-1],
        "header": blob[:3],
    }
    for message, data in cases.items():
        with pytest.raises(ValueError, match=message):
            PublicKey.from_bytes(data, insecure_small_key=True)
    wrong_bits = blob[:5] + (pk.n_bits - 8).to_bytes(2, "big") + blob[7:]
    with pytest.raises(ValueError):
        PublicKey.from_bytes(wrong_bits, insecure_small_key=True)
    bad_hs = blob[: -pk.ciphertext_bytes] + int(sk.p).to_bytes(pk.ciphertext_bytes, "big")
    with pytest.raises(ValueError, match="gcd"):
        PublicKey.from_bytes(bad_hs, insecure_small_key=True)
    zero_hs = blob[: -pk.ciphertext_bytes] + bytes(pk.ciphertext_bytes)
    with pytest.raises(ValueError, match="hs"):
        PublicKey.from_bytes(zero_hs, insecure_small_key=True)


def test_malformed_public_key_json_is_rejected(keypair: KeyPair) -> None:
    pk, _ = keypair
    good = json.loads(pk.to_json())
    variants = [
        ("not json", "not JSON"),
        (json.dumps([1]), "kind"),
        (json.dumps({**good, "kind": "other"}), "kind"),
        (json.dumps({**good, "version": 2}), "version"),
        (json.dumps({**good, "n": "xyz"}), "hexadecimal"),
        (json.dumps({**good, "hs": 5}), "'hs'"),
        (json.dumps({k: v for k, v in good.items() if k != "n"}), "'n'"),
        (json.dumps({**good, "n_bits": 9}), "n_bits"),
    ]
    for text, message in variants:
        with pytest.raises(ValueError, match=message):
            PublicKey.from_json(text, insecure_small_key=True)


def test_public_key_constructor_checks_arithmetic(keypair: KeyPair) -> None:
    pk, _ = keypair
    with pytest.raises(ValueError, match="odd"):
        PublicKey(pk.n + 1, pk.hs)
    with pytest.raises(ValueError, match="hs"):
        PublicKey(pk.n, pk.nsquare)
    with pytest.raises(TypeError):
        PublicKey(float(pk.n), pk.hs)  # type: ignore[arg-type]


def test_from_modulus_makes_a_working_key(keypair: KeyPair) -> None:
    pk, sk = keypair
    twin = PublicKey.from_modulus(pk.n)
    assert twin.n == pk.n and twin.hs != pk.hs
    twin_sk = PrivateKey(twin, sk.p, sk.q)
    assert twin_sk.raw_decrypt(twin.raw_encrypt(99)) == 99
    assert sk.raw_decrypt(twin.raw_encrypt(99)) == 99  # same n: ciphertexts interchange


# ---------------------------------------------------------------------------- constant time
def test_crt_constants_match_their_definition(keypair: KeyPair) -> None:
    """h_p = L_p(g**(p-1) mod p**2)**-1 mod p for g = n + 1, computed the long way."""
    pk, sk = keypair
    for ct in (False, True):
        key = PrivateKey(pk, sk.p, sk.q, constant_time=ct)
        for prime, h in ((key.p, key._hp), (key.q, key._hq)):
            lp = (gmpy2.powmod(pk.n + 1, prime - 1, prime * prime) - 1) // prime
            assert h == gmpy2.invert(lp, prime)
        assert key._q_inv * key.q % key.p == 1


@CRYPTO
@given(st.lists(st.integers(min_value=0), min_size=1, max_size=6))
def test_constant_time_decrypts_the_same_plaintexts(keypair: KeyPair, ms: list[int]) -> None:
    pk, sk = keypair
    ms = [m % int(pk.n) for m in ms]
    ct = PrivateKey(pk, sk.p, sk.q, constant_time=True)
    cs = pk.raw_encrypt_many(ms)
    assert ct.constant_time and not sk.constant_time
    assert [ct.raw_decrypt(c) for c in cs] == [sk.raw_decrypt(c) for c in cs] == ms
    assert ct.decrypt_in_process(cs) == sk.decrypt_in_process(cs, constant_time=True) == ms


def test_constant_time_keys_call_powmod_sec(
    keypair: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    pk, sk = keypair
    calls: list[int] = []
    real = gmpy2.powmod_sec

    def counting(x: object, e: object, m: object) -> object:
        calls.append(1)
        return real(x, e, m)

    monkeypatch.setattr(gmpy2, "powmod_sec", counting)
    c = pk.raw_encrypt(42)
    assert sk.raw_decrypt(c) == 42 and calls == []
    ct = PrivateKey(pk, sk.p, sk.q, constant_time=True)
    built = len(calls)
    assert built == 3  # the three inversions at construction
    assert ct.raw_decrypt(c) == 42 and len(calls) == built + 2  # mod p**2 and mod q**2


def test_constant_time_switch_comes_from_the_environment_once(
    keypair: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    from homolr.crypto import keys

    assert keys.parse_constant_time("1") is True
    assert keys.parse_constant_time(" 0 ") is keys.parse_constant_time("") is False
    with pytest.raises(ConfigError, match=keys.CONSTANT_TIME_ENV):
        keys.parse_constant_time("yes")
    pk, sk = keypair
    monkeypatch.setattr(keys, "_constant_time_default", None)
    monkeypatch.setenv(keys.CONSTANT_TIME_ENV, "1")
    assert PrivateKey(pk, sk.p, sk.q).constant_time is True
    monkeypatch.setenv(keys.CONSTANT_TIME_ENV, "0")  # read once: a later change is ignored
    assert keys.constant_time_default() is True
    assert PrivateKey(pk, sk.p, sk.q, constant_time=False).constant_time is False
    with pytest.raises(TypeError, match="bool"):
        PrivateKey(pk, sk.p, sk.q, constant_time=1)  # type: ignore[arg-type]
