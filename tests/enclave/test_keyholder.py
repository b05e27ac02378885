"""The key holder decrypts only sums of >= min_workers distinct single contributions."""

from __future__ import annotations

import numpy as np
import pytest

from homolr.crypto import (
    PackedVector,
    PackingSpec,
    PrivateKey,
    PublicKey,
    encrypt_packed,
    generate_keypair,
)
from homolr.enclave.keyholder import KeyHolder
from homolr.errors import PolicyError

SPEC = PackingSpec(value_bits=64, headroom_bits=10)
KeyPair = tuple[PublicKey, PrivateKey]


@pytest.fixture(scope="module")
def keys() -> KeyPair:
    return generate_keypair(1024, insecure_small_key=True)


def _contribution(pk: PublicKey, values: list[float]) -> PackedVector:
    return encrypt_packed(pk, np.asarray(values, dtype=float), frac_bits=24, spec=SPEC)


def test_sum_of_enough_workers_is_decrypted(keys: KeyPair) -> None:
    pk, sk = keys
    holder = KeyHolder(sk, min_workers=2)
    a, b, c = ([1.5, -2.0, 0.25], [0.5, 1.0, -0.25], [-1.0, 0.0, 3.0])
    got = holder.decrypt_sum(
        {"a": _contribution(pk, a), "b": _contribution(pk, b), "c": _contribution(pk, c)}
    )
    assert got.workers == ("a", "b", "c")
    np.testing.assert_allclose(got.total, np.add(np.add(a, b), c), atol=1e-6)


def test_a_single_worker_is_never_decrypted(keys: KeyPair) -> None:
    pk, sk = keys
    holder = KeyHolder(sk, min_workers=2)
    with pytest.raises(PolicyError, match="sum of 1 worker"):
        holder.decrypt_sum({"a": _contribution(pk, [1.0, 2.0])})


def test_fewer_than_min_workers_is_refused(keys: KeyPair) -> None:
    pk, sk = keys
    holder = KeyHolder(sk, min_workers=3)
    subs = {w: _contribution(pk, [1.0]) for w in ("a", "b")}
    with pytest.raises(PolicyError, match="needs at least 3"):
        holder.decrypt_sum(subs)


def test_a_presummed_contribution_cannot_pass_as_several_workers(keys: KeyPair) -> None:
    pk, sk = keys
    holder = KeyHolder(sk, min_workers=2)
    lone = _contribution(pk, [4.0])
    presummed = lone + _contribution(pk, [0.0])
    with pytest.raises(PolicyError, match="claims to be a sum of 2"):
        holder.decrypt_sum({"a": presummed, "b": _contribution(pk, [0.0])})


def test_contribution_under_another_key_is_refused(keys: KeyPair) -> None:
    pk, sk = keys
    other_pk, _ = generate_keypair(512, insecure_small_key=True)
    holder = KeyHolder(sk, min_workers=2)
    with pytest.raises(PolicyError, match="another public key"):
        holder.decrypt_sum({"a": _contribution(pk, [1.0]), "b": _contribution(other_pk, [1.0])})


@pytest.mark.parametrize("k", [0, 1])
def test_min_workers_below_two_cannot_be_configured(keys: KeyPair, k: int) -> None:
    with pytest.raises(PolicyError, match=">= 2"):
        KeyHolder(keys[1], min_workers=k)


def test_model_is_reencrypted_with_fresh_randomness(keys: KeyPair) -> None:
    _, sk = keys
    holder = KeyHolder(sk, min_workers=2)
    w = np.array([0.5, -1.25, 3.0])
    first, second = holder.encrypt_model(w, 24), holder.encrypt_model(w, 24)
    assert first.to_bytes() != second.to_bytes()
    np.testing.assert_allclose(sk.decrypt_vector(first), w)
