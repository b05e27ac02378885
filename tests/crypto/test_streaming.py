"""Batch ciphertext validation, fold_into and ChunkedSum (streaming sums per chunk)."""

from __future__ import annotations

import functools
import operator

import gmpy2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from homolr.crypto import (
    ChunkedSum,
    PackedVector,
    PackingSpec,
    chunk_bounds,
    encrypt_packed,
    fold_into,
    packed_chunk_values,
    unpack_ints,
)
from homolr.errors import InvalidCiphertextError, RoundError
from tests.crypto._hyp import CRYPTO
from tests.crypto.conftest import KeyPair

SPEC = PackingSpec(value_bits=16, headroom_bits=4)  # 512-bit key: 25 slots per ciphertext


# ---------------------------------------------------------------------------- validation
def rule(pk_n: int, nsquare: int, c: int) -> bool:
    """The validity rule, element by element: ``0 < c < n**2`` and ``gcd(c, n) = 1``."""
    return 0 < c < nsquare and gmpy2.gcd(c, pk_n) == 1


@CRYPTO
@given(st.data())
def test_batch_validation_applies_the_element_rule(keypair: KeyPair, data: st.DataObject) -> None:
    pk, sk = keypair
    good = pk.raw_encrypt_many([1, 2, 3, 4, 5, 6])
    bad = [0, pk.nsquare, pk.nsquare + 5, -3, sk.p * 7, sk.q, pk.n, sk.p * sk.p * 3]
    batch = data.draw(st.lists(st.sampled_from(good + bad), min_size=0, max_size=12))
    first_bad = next((i for i, c in enumerate(batch) if not rule(pk.n, pk.nsquare, c)), None)
    if first_bad is None:
        assert pk.validate_ciphertexts(batch) == batch
        assert all(isinstance(v, gmpy2.mpz) for v in pk.validate_ciphertexts(batch))
    else:
        with pytest.raises(InvalidCiphertextError, match=f"index {first_bad}"):
            pk.validate_ciphertexts(batch)


def test_batch_validation_types_and_bytes(keypair: KeyPair) -> None:
    pk, sk = keypair
    cs = pk.raw_encrypt_many([10, 20])
    assert pk.validate_ciphertexts([int(c) for c in cs]) == cs
    with pytest.raises(TypeError):
        pk.validate_ciphertexts([cs[0], 1.5])
    with pytest.raises(TypeError):
        pk.validate_ciphertexts([True])
    data = pk.ciphertexts_to_bytes(cs) + (sk.q * 3).to_bytes(pk.ciphertext_bytes, "big")
    with pytest.raises(InvalidCiphertextError, match="index 2 shares a factor"):
        pk.ciphertexts_from_bytes(data)
    assert pk.ciphertexts_from_bytes(data[: 2 * pk.ciphertext_bytes]) == cs


# ---------------------------------------------------------------------------- fold_into
def test_fold_into_multiplies_in_place(keypair: KeyPair) -> None:
    pk, sk = keypair
    a, b = pk.raw_encrypt_many([3, 4]), pk.raw_encrypt_many([10, 20])
    acc = fold_into(None, a, pk.nsquare)
    assert acc == a and acc is not a
    assert fold_into(acc, b, pk.nsquare) is acc
    assert acc == [x * y % pk.nsquare for x, y in zip(a, b, strict=True)]
    assert sk.decrypt_in_process(acc) == [13, 24]
    with pytest.raises(ValueError, match="3 ciphertexts into 2"):
        fold_into(acc, a + a[:1], pk.nsquare)


def test_chunk_bounds() -> None:
    assert chunk_bounds(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert chunk_bounds(0, 4) == []
    with pytest.raises(ValueError):
        chunk_bounds(5, 0)


# ---------------------------------------------------------------------------- ChunkedSum
@CRYPTO
@given(st.data())
def test_streamed_sums_equal_the_batch_sum_in_any_order(
    keypair: KeyPair, data: st.DataObject
) -> None:
    pk, sk = keypair
    members = data.draw(st.integers(1, 4))
    length = data.draw(st.integers(1, 130))  # up to 6 packed ciphertexts
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    updates = {
        f"m{k}": encrypt_packed(pk, rng.integers(-(2**15), 2**15, length), 0, SPEC)
        for k in range(members)
    }
    total = len(next(iter(updates.values())).ciphertexts)
    bounds = chunk_bounds(total, data.draw(st.integers(1, total)))
    arrivals = [(m, c) for m in updates for c in range(len(bounds))]
    arrivals = data.draw(st.permutations(arrivals))
    sums = ChunkedSum(pk, bounds, required=updates)
    taken: dict[int, list[gmpy2.mpz]] = {}
    for member, chunk in arrivals:
        start, stop = bounds[chunk]
        for done in sums.fold(member, chunk, updates[member].ciphertexts[start:stop]):
            taken[done] = sums.take(done)  # decrypt as soon as complete
    assert sorted(taken) == list(range(len(bounds))) and sums.complete() == []
    batch: PackedVector = functools.reduce(operator.add, updates.values())
    assert [c for k in sorted(taken) for c in taken[k]] == list(batch.ciphertexts)
    # each chunk decrypts and unpacks on its own to its slice of the batch sum
    expected = sk.decrypt_packed_ints(batch)
    for chunk, (start, stop) in enumerate(bounds):
        values = packed_chunk_values(start, stop, length, SPEC, pk.n_bits)
        plain = sk.decrypt_in_process(taken[chunk])
        unpacked = unpack_ints(plain, len(values), SPEC, members, pk.n_bits)
        assert unpacked == expected[values.start : values.stop]


def test_required_set_can_come_later(keypair: KeyPair) -> None:
    pk, sk = keypair
    sums = ChunkedSum(pk, chunk_bounds(3, 2))
    assert sums.fold("a", 0, pk.raw_encrypt_many([1, 2])) == []  # no required set yet
    assert sums.fold("b", 0, pk.raw_encrypt_many([10, 20])) == []
    assert sums.fold("a", 1, pk.raw_encrypt_many([3])) == []
    with pytest.raises(RoundError, match="no required member set"):
        sums.take(0)
    assert sums.require(["a", "b"]) == [0]  # chunk 0 has both already
    assert sums.members(1) == {"a"}
    assert sums.fold("b", 1, pk.raw_encrypt_many([30])) == [1]
    assert sums.complete() == [0, 1]
    assert sk.decrypt_in_process(sums.take(0) + sums.take(1)) == [11, 22, 33]
    assert sums.total == 3 and len(sums) == 2


def test_duplicate_late_and_foreign_folds_are_refused(keypair: KeyPair) -> None:
    pk, sk = keypair
    one = pk.raw_encrypt_many([1, 1])
    sums = ChunkedSum(pk, [(0, 2)], required={"a", "b"})
    sums.fold("a", 0, one)
    with pytest.raises(RoundError, match="already folded into chunk 0"):
        sums.fold("a", 0, one)
    with pytest.raises(RoundError, match="not in the required set"):
        sums.fold("mallory", 0, one)
    with pytest.raises(RoundError, match=r"missing \['b'\]"):
        sums.take(0)
    with pytest.raises(ValueError, match="holds 2 ciphertexts"):
        sums.fold("b", 0, one[:1])
    with pytest.raises(InvalidCiphertextError, match="index 1"):
        sums.fold("b", 0, [one[0], pk.nsquare])
    assert sums.members(0) == {"a"}  # nothing of b's was folded
    assert sums.fold("b", 0, one) == [0]
    assert sk.decrypt_in_process(sums.take(0)) == [2, 2]
    with pytest.raises(RoundError, match="already taken"):
        sums.take(0)
    with pytest.raises(RoundError, match="already taken"):
        sums.fold("c", 0, one)
    with pytest.raises(ValueError, match="chunk must be"):
        sums.fold("a", 1, one)


def test_a_required_set_that_excludes_a_folded_member_is_refused(keypair: KeyPair) -> None:
    pk, _ = keypair
    sums = ChunkedSum(pk, [(0, 1), (1, 2)])
    sums.fold("dropped", 1, pk.raw_encrypt_many([5]))
    with pytest.raises(RoundError, match=r"chunk 1 already holds \['dropped'\]"):
        sums.require({"a", "b"})
    with pytest.raises(ValueError, match="empty"):
        sums.require([])


def test_chunk_layout_is_checked(keypair: KeyPair) -> None:
    pk, _ = keypair
    for bounds in ([(1, 2)], [(0, 2), (3, 4)], [(0, 0)], [(0, 2), (2, 1)]):
        with pytest.raises(ValueError, match="contiguous"):
            ChunkedSum(pk, bounds)
    with pytest.raises(ValueError, match="not within"):
        packed_chunk_values(0, 3, 30, SPEC, pk.n_bits)  # 30 values: 2 ciphertexts


def test_streaming_with_decrypt_async(keypair: KeyPair) -> None:
    pk, sk = keypair
    values = {m: list(range(k, k + 300)) for k, m in enumerate(("a", "b", "c"))}
    cts = {m: pk.raw_encrypt_many(v) for m, v in values.items()}
    sums = ChunkedSum(pk, chunk_bounds(300, 64), required=values)
    futures = {}
    for chunk in range(len(sums)):
        start, stop = sums.bounds[chunk]
        for member in ("c", "a", "b"):
            for done in sums.fold(member, chunk, cts[member][start:stop], validated=True):
                futures[done] = sk.decrypt_async(sums.take(done))
    plain = [v for chunk in sorted(futures) for v in futures[chunk].result(timeout=60)]
    assert plain == [a + b + c for a, b, c in zip(*values.values(), strict=True)]
