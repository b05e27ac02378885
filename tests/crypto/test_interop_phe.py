"""Interoperability with python-paillier (phe, GPL: a test-only dependency).

Both sides use g = n + 1, so a ciphertext is g**m * r**n mod n**2 whoever made it; ours
uses r = h**a (DJN). Given the same p and q each side must decrypt the other's ciphertexts,
and ciphertexts from both sides must combine homomorphically.
"""

from __future__ import annotations

import secrets

import pytest
from phe import paillier

from homolr.crypto import PrivateKey, PublicKey
from tests.crypto.conftest import KeyPair


def _phe_private(pk: PublicKey, sk: PrivateKey) -> paillier.PaillierPrivateKey:
    return paillier.PaillierPrivateKey(paillier.PaillierPublicKey(int(pk.n)), int(sk.p), int(sk.q))


def _samples(n: int) -> list[int]:
    return [0, 1, 2, n - 1, n // 2, *(secrets.randbelow(n) for _ in range(5))]


@pytest.mark.parametrize("fixture", ["keypair_1024", "keypair_2048"])
def test_phe_decrypts_our_ciphertexts(fixture: str, request: pytest.FixtureRequest) -> None:
    pk, sk = request.getfixturevalue(fixture)
    theirs = _phe_private(pk, sk)
    for m in _samples(int(pk.n)):
        assert theirs.raw_decrypt(int(pk.raw_encrypt(m))) == m


def test_we_decrypt_phe_ciphertexts() -> None:
    phe_pk, phe_sk = paillier.generate_paillier_keypair(n_length=1024)
    ours = PrivateKey(PublicKey.from_modulus(phe_pk.n), phe_sk.p, phe_sk.q)
    for m in _samples(phe_pk.n):
        assert ours.raw_decrypt(phe_pk.raw_encrypt(m)) == m
    # phe's high-level API obfuscates with a fresh r**n; the raw ciphertext decrypts too
    number = phe_pk.encrypt(123456789)
    assert number.exponent == 0
    assert ours.raw_decrypt(number.ciphertext(be_secure=True)) == 123456789


def test_ciphertexts_from_both_sides_combine(keypair_1024: KeyPair) -> None:
    pk, sk = keypair_1024
    phe_pk = paillier.PaillierPublicKey(int(pk.n))
    theirs = _phe_private(pk, sk)
    a, b = 1234, 98765
    mixed = pk.raw_add(pk.raw_encrypt(a), phe_pk.raw_encrypt(b))
    assert sk.raw_decrypt(mixed) == a + b
    assert theirs.raw_decrypt(int(mixed)) == a + b
    scaled = pk.raw_mul(phe_pk.raw_encrypt(b), -3)
    assert theirs.raw_decrypt(int(scaled)) == (-3 * b) % int(pk.n)
