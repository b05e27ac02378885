"""The key holder: streaming per-chunk sums, and the rules under which it decrypts anything.

The reference for every sum is the batch path that does not stream: the members' updates as
:class:`PackedVector` objects added with ``+`` and decrypted with ``PrivateKey.decrypt_packed``.
A spy around the private key records every decryption, so "never decrypted" is asserted on what the
key did, not only on the exception raised.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Mapping, Sequence
from concurrent import futures
from dataclasses import dataclass, field, fields

import gmpy2
import numpy as np
import pytest
from numpy.typing import NDArray

from homolr.crypto import (
    PackedVector,
    PackingSpec,
    PrivateKey,
    PublicKey,
    encrypt_packed,
    generate_keypair,
)
from homolr.enclave.keyholder import (
    KeyHolder,
    ParticipationRule,
    Release,
    RoundSum,
    UpdateLayout,
    average_release,
)
from homolr.errors import EncodingOverflowError, PolicyError, ProtocolError, RoundError

SPEC = PackingSpec(value_bits=64, headroom_bits=10)
FRAC_BITS = 24
FloatArray = NDArray[np.float64]
KeyPair = tuple[PublicKey, PrivateKey]
ABC = frozenset({"a", "b", "c"})


@pytest.fixture(scope="module")
def keys() -> KeyPair:
    return generate_keypair(512, insecure_small_key=True)


class SpyKey:
    """The private key, recording how many ciphertexts it decrypted."""

    def __init__(self, private_key: PrivateKey) -> None:
        self._key = private_key
        self.public_key = private_key.public_key
        self.decrypted: list[int] = []

    def raw_decrypt_many(self, cs: Sequence[int]) -> list[gmpy2.mpz]:
        self.decrypted.append(len(cs))
        return self._key.raw_decrypt_many(cs)


@dataclass
class Recorder:
    """A release mechanism that records what the key holder passes it and returns a marker."""

    calls: list[tuple[FloatArray, FloatArray]]
    marker: FloatArray
    contributors: list[frozenset[str]] = field(default_factory=list)

    def __call__(
        self, sums: FloatArray, weight_totals: FloatArray, contributors: frozenset[str]
    ) -> FloatArray:
        self.calls.append((sums.copy(), weight_totals.copy()))
        self.contributors.append(contributors)
        return self.marker


def _recorder() -> Recorder:
    return Recorder([], np.array([-12345.678]))


def _holder(
    keys: KeyPair,
    policy: str = "all",
    members: frozenset[str] | None = ABC,
    min_workers: int = 2,
) -> tuple[KeyHolder, SpyKey]:
    spy = SpyKey(keys[1])
    rule = ParticipationRule(policy, members, min_workers)  # type: ignore[arg-type]
    return KeyHolder(spy, rule), spy  # type: ignore[arg-type]


def _layout(pk: PublicKey, length: int, chunk_ciphertexts: int) -> UpdateLayout:
    return UpdateLayout(length, FRAC_BITS, SPEC, chunk_ciphertexts, pk.n_bits)


def _update(pk: PublicKey, values: FloatArray) -> PackedVector:
    return encrypt_packed(pk, values, frac_bits=FRAC_BITS, spec=SPEC)


def _chunk(layout: UpdateLayout, data: bytes, chunk: int, width: int) -> bytes:
    start, stop = layout.chunk_ciphertext_range(chunk)
    return data[start * width : stop * width]


def _fold_all(
    round_sum: RoundSum, updates: Mapping[str, PackedVector], order: Sequence[tuple[str, int]]
) -> None:
    """Fold the chunks in ``order``; every fold must be new."""
    layout = round_sum.layout
    for member, chunk in order:
        update = updates[member]
        data = _chunk(layout, update.to_bytes(), chunk, update.public_key.ciphertext_bytes)
        assert round_sum.fold(member, chunk, data)


def _decrypt_ready(round_sum: RoundSum) -> None:
    for chunk in round_sum.ready_chunks():
        round_sum.decrypt_chunk(chunk)


def _random_updates(
    pk: PublicKey, members: Sequence[str], length: int, rng: np.random.Generator
) -> dict[str, PackedVector]:
    return {m: _update(pk, rng.uniform(-1000, 1000, length)) for m in members}


# --- streaming equals the batch sum -------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "chunk_ciphertexts", "seed"),
    [(1, 1, 0), (6, 1, 1), (31, 1, 2), (31, 2, 3), (31, 4, 4), (31, 6, 5), (31, 50, 6), (40, 3, 7)],
)
def test_streaming_sum_equals_the_batch_sum_bit_for_bit(
    keys: KeyPair, length: int, chunk_ciphertexts: int, seed: int
) -> None:
    pk, sk = keys
    rng = np.random.default_rng(seed)
    updates = _random_updates(pk, sorted(ABC), length, rng)
    holder, _ = _holder(keys)
    layout = _layout(pk, length, chunk_ciphertexts)
    recorder = _recorder()
    shares = {"a": 0.5, "b": 0.3, "c": 0.2}
    round_sum = holder.open_round(0, layout, shares, ABC, recorder)
    order = [(m, k) for m in sorted(ABC) for k in range(layout.n_chunks)]
    random.Random(seed).shuffle(order)
    _fold_all(round_sum, updates, order)
    assert round_sum.complete_members() == ABC
    assert sorted(round_sum.ready_chunks()) == list(range(layout.n_chunks))
    _decrypt_ready(round_sum)
    released = round_sum.release()

    batch = sk.decrypt_packed(updates["a"] + updates["b"] + updates["c"])
    [(sums, totals)] = recorder.calls
    assert sums.dtype == batch.dtype and np.array_equal(sums, batch)  # bit for bit
    np.testing.assert_array_equal(totals, np.full(length, 0.5 + 0.3 + 0.2))
    assert released.values is recorder.marker
    assert released.contributors == ("a", "b", "c")


def test_concurrent_folds_give_the_batch_sum(keys: KeyPair) -> None:
    pk, sk = keys
    members = [f"m{i}" for i in range(6)]
    updates = _random_updates(pk, members, 50, np.random.default_rng(11))
    holder, _ = _holder(keys, "quorum", frozenset(members), 2)
    layout = _layout(pk, 50, 2)
    recorder = _recorder()
    round_sum = holder.open_round(
        0, layout, dict.fromkeys(members, 1.0), frozenset(members), recorder
    )
    order = [(m, k) for m in members for k in range(layout.n_chunks)]
    random.Random(3).shuffle(order)
    width = pk.ciphertext_bytes

    def fold(item: tuple[str, int]) -> bool:
        member, chunk = item
        return round_sum.fold(
            member, chunk, _chunk(layout, updates[member].to_bytes(), chunk, width)
        )

    with futures.ThreadPoolExecutor(max_workers=4) as pool:
        assert all(pool.map(fold, order))
    _decrypt_ready(round_sum)
    round_sum.release()
    total = updates[members[0]]
    for member in members[1:]:
        total = total + updates[member]
    assert np.array_equal(recorder.calls[0][0], sk.decrypt_packed(total))


def test_a_chunk_is_decrypted_as_soon_as_every_expected_member_is_in_it(keys: KeyPair) -> None:
    pk, _ = keys
    updates = _random_updates(pk, sorted(ABC), 20, np.random.default_rng(5))
    holder, spy = _holder(keys)
    layout = _layout(pk, 20, 1)  # 4 chunks of one ciphertext (6 slots each)
    round_sum = holder.open_round(0, layout, dict.fromkeys(ABC, 1.0), ABC)
    _fold_all(round_sum, updates, [(m, 2) for m in sorted(ABC)] + [("a", 0), ("b", 0)])
    assert round_sum.ready_chunks() == [2]
    round_sum.decrypt_chunk(2)
    assert spy.decrypted == [1]
    assert round_sum.ready_chunks() == []  # decrypted once
    with pytest.raises(PolicyError, match="not every chunk is decrypted"):
        round_sum.release()


# --- partial sums --------------------------------------------------------------------------------


def test_a_partial_chunk_is_never_decrypted_while_the_round_is_open(keys: KeyPair) -> None:
    pk, _ = keys
    updates = _random_updates(pk, sorted(ABC), 12, np.random.default_rng(1))
    for policy in ("all", "quorum"):
        holder, spy = _holder(keys, policy)
        layout = _layout(pk, 12, 1)
        round_sum = holder.open_round(0, layout, dict.fromkeys(ABC, 1.0), ABC)
        _fold_all(round_sum, updates, [("a", 0), ("b", 0), ("a", 1), ("b", 1), ("c", 1)])
        assert round_sum.ready_chunks() == [1]
        with pytest.raises(PolicyError, match="refusing a partial sum of chunk 0"):
            round_sum.decrypt_chunk(0)
        assert spy.decrypted == []  # the quorum {a, b} would satisfy the rule: still refused
        assert not round_sum.member_complete("c") and round_sum.member_complete("a")


def test_all_refuses_any_set_missing_a_member_even_after_close(keys: KeyPair) -> None:
    pk, _ = keys
    updates = _random_updates(pk, sorted(ABC), 6, np.random.default_rng(2))
    for size in (1, 2):
        for subset in itertools.combinations(sorted(ABC), size):
            holder, spy = _holder(keys, "all")
            round_sum = holder.open_round(0, _layout(pk, 6, 1), dict.fromkeys(ABC, 1.0), ABC)
            _fold_all(round_sum, updates, [(m, 0) for m in subset])
            round_sum.close()
            assert round_sum.ready_chunks() == [0]  # closed: offered to the rule
            missing = sorted(ABC - set(subset))
            with pytest.raises(PolicyError, match=f"missing {', '.join(missing)}"):
                round_sum.decrypt_chunk(0)
            assert spy.decrypted == []
            with pytest.raises(PolicyError):
                round_sum.release()


def test_all_cannot_open_a_round_expecting_fewer_than_every_member(keys: KeyPair) -> None:
    pk, _ = keys
    holder, _ = _holder(keys, "all")
    with pytest.raises(PolicyError, match="missing c"):
        holder.open_round(0, _layout(pk, 6, 1), {"a": 1.0, "b": 1.0}, frozenset({"a", "b"}))


def test_quorum_after_close_decrypts_at_least_min_workers(keys: KeyPair) -> None:
    pk, sk = keys
    updates = _random_updates(pk, sorted(ABC), 12, np.random.default_rng(3))
    shares = {"a": 0.5, "b": 0.3, "c": 0.2}
    layout = _layout(pk, 12, 1)

    holder, spy = _holder(keys, "quorum", ABC, 2)
    recorder = _recorder()
    round_sum = holder.open_round(0, layout, shares, ABC, recorder)
    _fold_all(round_sum, updates, [(m, k) for m in ("a", "c") for k in range(2)])
    assert round_sum.ready_chunks() == []  # open: b is still expected
    round_sum.close()
    _decrypt_ready(round_sum)
    released = round_sum.release()
    assert released.contributors == ("a", "c")
    [(sums, totals)] = recorder.calls
    assert np.array_equal(sums, sk.decrypt_packed(updates["a"] + updates["c"]))
    np.testing.assert_array_equal(totals, np.full(12, 0.5 + 0.2))

    lone, lone_spy = _holder(keys, "quorum", ABC, 2)
    round_sum = lone.open_round(0, layout, shares, ABC, _recorder())
    _fold_all(round_sum, updates, [("b", 0), ("b", 1)])
    round_sum.close()
    with pytest.raises(PolicyError, match=r"1 member\(s\) \(b\); the policy needs at least 2"):
        round_sum.decrypt_chunk(0)
    assert lone_spy.decrypted == [] and spy.decrypted == [1, 1]


def test_open_membership_needs_min_workers_distinct_ids(keys: KeyPair) -> None:
    pk, _ = keys
    updates = _random_updates(pk, ["x", "y", "z"], 6, np.random.default_rng(4))
    holder, spy = _holder(keys, "quorum", None, 3)
    xyz = frozenset({"x", "y", "z"})
    round_sum = holder.open_round(0, _layout(pk, 6, 1), dict.fromkeys(xyz, 1.0), xyz)
    _fold_all(round_sum, updates, [("x", 0), ("y", 0)])
    round_sum.close()
    with pytest.raises(PolicyError, match="needs at least 3"):
        round_sum.decrypt_chunk(0)
    assert spy.decrypted == []


# --- resubmissions and late data ---------------------------------------------------------------


def test_resubmitted_chunks_are_skipped(keys: KeyPair) -> None:
    pk, sk = keys
    updates = _random_updates(pk, sorted(ABC), 12, np.random.default_rng(6))
    holder, _ = _holder(keys)
    layout = _layout(pk, 12, 1)
    recorder = _recorder()
    round_sum = holder.open_round(0, layout, {"a": 0.2, "b": 0.3, "c": 0.5}, ABC, recorder)
    width = pk.ciphertext_bytes
    data = updates["a"].to_bytes()
    assert round_sum.fold("a", 0, _chunk(layout, data, 0, width))
    # the stream broke; the member sends its byte-identical update again
    assert not round_sum.fold("a", 0, _chunk(layout, data, 0, width))
    assert round_sum.fold("a", 1, _chunk(layout, data, 1, width))
    # a different second update for the same chunk is refused: a member resends exactly its
    # stored upload, so other bytes are a protocol violation, not a resubmission
    other = _update(pk, np.full(12, 999.0)).to_bytes()
    with pytest.raises(ProtocolError, match="resubmitted with other bytes"):
        round_sum.fold("a", 0, _chunk(layout, other, 0, width))
    assert round_sum.has_chunk("a", 0) and round_sum.has_chunk("a", 1)
    _fold_all(round_sum, updates, [(m, k) for m in ("b", "c") for k in range(2)])
    _decrypt_ready(round_sum)
    round_sum.release()
    [(sums, totals)] = recorder.calls
    assert np.array_equal(sums, sk.decrypt_packed(updates["a"] + updates["b"] + updates["c"]))
    np.testing.assert_array_equal(totals, np.ones(12))  # a's weight counted once


def test_fold_after_close_raises_a_round_error(keys: KeyPair) -> None:
    pk, _ = keys
    updates = _random_updates(pk, sorted(ABC), 6, np.random.default_rng(7))
    holder, _ = _holder(keys, "quorum")
    layout = _layout(pk, 6, 1)
    round_sum = holder.open_round(4, layout, dict.fromkeys(ABC, 1.0), ABC)
    _fold_all(round_sum, updates, [("a", 0), ("b", 0)])
    round_sum.close()
    data = _chunk(layout, updates["c"].to_bytes(), 0, pk.ciphertext_bytes)
    with pytest.raises(RoundError, match="round 4 closed before this data arrived"):
        round_sum.fold("c", 0, data)
    assert not round_sum.has_chunk("c", 0)


def test_a_chunk_already_decrypted_takes_no_more_data(keys: KeyPair) -> None:
    pk, _ = keys
    updates = _random_updates(pk, sorted(ABC), 6, np.random.default_rng(8))
    holder, _ = _holder(keys, "quorum")
    layout = _layout(pk, 6, 1)
    ab = frozenset({"a", "b"})
    round_sum = holder.open_round(0, layout, dict.fromkeys(ABC, 1.0), ab)
    _fold_all(round_sum, updates, [("a", 0), ("b", 0)])
    round_sum.decrypt_chunk(0)
    data = _chunk(layout, updates["c"].to_bytes(), 0, pk.ciphertext_bytes)
    with pytest.raises(RoundError):
        round_sum.fold("c", 0, data)


# --- malformed data ------------------------------------------------------------------------------


def test_malformed_data_messages_are_protocol_errors_naming_member_round_and_message(
    keys: KeyPair,
) -> None:
    pk, _ = keys
    holder, _ = _holder(keys)
    layout = _layout(pk, 12, 1)
    round_sum = holder.open_round(3, layout, dict.fromkeys(ABC, 1.0), ABC)
    width = pk.ciphertext_bytes
    good = _chunk(layout, _update(pk, np.zeros(12)).to_bytes(), 0, width)
    with pytest.raises(ProtocolError, match=r"'a' for round 3, data message 3: .* only 2"):
        round_sum.fold("a", 2, good)
    with pytest.raises(ProtocolError, match=f"{width - 1} bytes; expected 1 ciphertexts"):
        round_sum.fold("a", 0, good[:-1])
    with pytest.raises(ProtocolError, match="'a' for round 3, data message 1"):
        round_sum.fold("a", 0, bytes(width))  # zero is no ciphertext
    n_square = int(pk.n) ** 2
    with pytest.raises(ProtocolError):
        round_sum.fold("a", 0, n_square.to_bytes(width, "big"))
    with pytest.raises(PolicyError, match="'mallory' takes no part in this round"):
        round_sum.fold("mallory", 0, good)
    assert not any(round_sum.has_chunk(m, 0) for m in ABC)


def test_an_update_under_a_key_of_another_size_is_refused(keys: KeyPair) -> None:
    pk, _ = keys
    other_pk, _ = generate_keypair(768, insecure_small_key=True)
    holder, _ = _holder(keys)
    layout = _layout(pk, 6, 1)
    round_sum = holder.open_round(0, layout, dict.fromkeys(ABC, 1.0), ABC)
    with pytest.raises(ProtocolError, match="expected 1 ciphertexts"):
        round_sum.fold("a", 0, _update(other_pk, np.zeros(6)).to_bytes())


# --- overflow ------------------------------------------------------------------------------------


def _packed_plaintext(slot_values: Sequence[int]) -> int:
    return sum(v << (SPEC.slot_bits * i) for i, v in enumerate(slot_values))


def test_an_overflow_names_the_round_and_slot_but_no_decrypted_value(keys: KeyPair) -> None:
    pk, _ = keys
    layout = _layout(pk, 18, 1)  # 3 chunks of 6 slots
    slots = layout.slots
    assert slots == 6
    rng = random.Random(9)
    # b is honest; a sends, in chunk 1, slot 4 (value index 10) far above any in-range value
    honest = [[rng.randrange(1 << 64) for _ in range(slots)] for _ in range(3)]
    rogue = [[rng.randrange(1 << 64) for _ in range(slots)] for _ in range(3)]
    rogue[1][4] = (1 << 73) + rng.randrange(1 << 60)
    holder, spy = _holder(keys, "quorum", frozenset({"a", "b"}), 2)
    ab = frozenset({"a", "b"})
    round_sum = holder.open_round(7, layout, dict.fromkeys(ab, 1.0), ab)
    for member, plain in (("a", rogue), ("b", honest)):
        ciphertexts = pk.raw_encrypt_many([_packed_plaintext(p) for p in plain])
        data = pk.ciphertexts_to_bytes(ciphertexts)
        for chunk in range(3):
            assert round_sum.fold(member, chunk, _chunk(layout, data, chunk, pk.ciphertext_bytes))
    round_sum.decrypt_chunk(0)
    with pytest.raises(EncodingOverflowError) as err:
        round_sum.decrypt_chunk(1)
    message = str(err.value)
    assert re.search(r"\bround 7\b", message) and re.search(r"\bslot 10\b", message)
    slot_sums = [a + b for a, b in zip(rogue[1], honest[1], strict=True)]
    bias = 2 * SPEC.offset
    for value in slot_sums + [s - bias for s in slot_sums] + [_packed_plaintext(slot_sums)]:
        assert str(value) not in message
        assert str(abs(value)) not in message
        assert f"{value:x}" not in message.lower()
    assert err.value.__cause__ is None and err.value.__suppress_context__
    with pytest.raises(PolicyError, match="not every chunk is decrypted"):
        round_sum.release()
    assert spy.decrypted == [1, 1]


# --- release -------------------------------------------------------------------------------------


def test_release_refuses_mixed_member_sets(keys: KeyPair) -> None:
    pk, _ = keys
    updates = _random_updates(pk, sorted(ABC), 12, np.random.default_rng(10))
    holder, _ = _holder(keys, "quorum")
    recorder = _recorder()
    layout = _layout(pk, 12, 1)
    round_sum = holder.open_round(0, layout, dict.fromkeys(ABC, 1.0), ABC, recorder)
    # chunk 0 holds a, b, c; chunk 1 only a, b: their difference would be c's values
    _fold_all(round_sum, updates, [("a", 0), ("b", 0), ("c", 0), ("a", 1), ("b", 1)])
    round_sum.close()
    _decrypt_ready(round_sum)
    with pytest.raises(
        PolicyError, match=r"different sets of members .*holds \['c'\].*not released"
    ):
        round_sum.release()
    assert recorder.calls == []


def test_a_round_is_released_once(keys: KeyPair) -> None:
    pk, _ = keys
    updates = _random_updates(pk, sorted(ABC), 6, np.random.default_rng(12))
    holder, _ = _holder(keys)
    recorder = _recorder()
    round_sum = holder.open_round(0, _layout(pk, 6, 1), dict.fromkeys(ABC, 1.0), ABC, recorder)
    _fold_all(round_sum, updates, [(m, 0) for m in sorted(ABC)])
    _decrypt_ready(round_sum)
    round_sum.release()
    with pytest.raises(PolicyError, match="already released"):
        round_sum.release()
    assert len(recorder.calls) == 1


def test_the_caller_sees_only_what_the_mechanism_returns(keys: KeyPair) -> None:
    pk, sk = keys
    updates = _random_updates(pk, sorted(ABC), 9, np.random.default_rng(13))
    holder, _ = _holder(keys)
    recorder = _recorder()
    round_sum = holder.open_round(0, _layout(pk, 9, 1), dict.fromkeys(ABC, 1.0), ABC, recorder)
    _fold_all(round_sum, updates, [(m, k) for m in sorted(ABC) for k in range(2)])
    _decrypt_ready(round_sum)
    released = round_sum.release()
    assert [f.name for f in fields(Release)] == ["values", "contributors"]
    assert released.values is recorder.marker
    assert released.contributors == ("a", "b", "c")
    sums = recorder.calls[0][0]
    public = {name: getattr(round_sum, name) for name in dir(round_sum) if not name.startswith("_")}
    for value in public.values():
        if isinstance(value, np.ndarray):
            assert not np.array_equal(value, sums)
    np.testing.assert_array_equal(
        sums, sk.decrypt_packed(updates["a"] + updates["b"] + updates["c"])
    )


def test_average_release_divides_the_weighted_sums_by_the_weight_totals() -> None:
    sums = np.array([3.0, -1.5, 0.0])
    totals = np.array([1.0, 0.75, 0.5])
    np.testing.assert_array_equal(average_release(sums, totals, ABC), [3.0, -2.0, 0.0])


# --- rounds and rules ----------------------------------------------------------------------------


def test_rounds_must_increase(keys: KeyPair) -> None:
    pk, _ = keys
    holder, _ = _holder(keys)
    layout = _layout(pk, 6, 1)
    weights = dict.fromkeys(ABC, 1.0)
    holder.open_round(3, layout, weights, ABC)
    for again in (3, 2, 0):
        with pytest.raises(PolicyError, match=f"round {again} was already opened"):
            holder.open_round(again, layout, weights, ABC)
    holder.open_round(4, layout, weights, ABC)
    holder.resume_after(10)
    with pytest.raises(PolicyError, match="last round 10"):
        holder.open_round(10, layout, weights, ABC)
    holder.resume_after(5)  # never lowers the mark
    with pytest.raises(PolicyError):
        holder.open_round(8, layout, weights, ABC)
    holder.open_round(11, layout, weights, ABC)


def test_a_refused_open_does_not_use_up_the_round(keys: KeyPair) -> None:
    pk, _ = keys
    holder, _ = _holder(keys)
    layout = _layout(pk, 6, 1)
    with pytest.raises(PolicyError, match="every expected member needs a weight share"):
        holder.open_round(0, layout, {"a": 1.0, "b": 1.0}, ABC)
    holder.open_round(0, layout, dict.fromkeys(ABC, 1.0), ABC)


@pytest.mark.parametrize("k", [-1, 0, 1])
def test_min_workers_below_two_cannot_be_configured(k: int) -> None:
    for policy, members in (("quorum", None), ("quorum", ABC), ("all", ABC)):
        with pytest.raises(PolicyError, match=">= 2"):
            ParticipationRule(policy, members, k)  # type: ignore[arg-type]


def test_participation_rule_construction() -> None:
    with pytest.raises(PolicyError, match='"all" needs the list of members'):
        ParticipationRule("all", None, 2)
    with pytest.raises(PolicyError, match="min_workers is 4 but only 3 members exist"):
        ParticipationRule("quorum", ABC, 4)


@pytest.mark.parametrize(
    ("policy", "members", "min_workers", "contributors", "allowed"),
    [
        ("all", ABC, 2, ABC, True),
        ("all", ABC, 2, {"a", "b"}, False),
        ("all", ABC, 2, set(), False),
        ("quorum", ABC, 2, {"a", "b"}, True),
        ("quorum", ABC, 2, {"c"}, False),
        ("quorum", ABC, 3, {"a", "b"}, False),
        ("quorum", ABC, 2, {"a", "mallory"}, False),
        ("all", ABC, 2, ABC | {"mallory"}, False),
        ("quorum", None, 2, {"x", "y"}, True),
        ("quorum", None, 2, {"x"}, False),
    ],
)
def test_participation_rule_check(
    policy: str,
    members: frozenset[str] | None,
    min_workers: int,
    contributors: set[str],
    allowed: bool,
) -> None:
    rule = ParticipationRule(policy, members, min_workers)  # type: ignore[arg-type]
    if allowed:
        rule.check(frozenset(contributors), "the sum")
        return
    with pytest.raises(PolicyError, match="refusing to decrypt the sum") as err:
        rule.check(frozenset(contributors), "the sum")
    if "mallory" in contributors:
        assert "mallory are not members" in str(err.value)


def test_model_is_reencrypted_with_fresh_randomness(keys: KeyPair) -> None:
    _, sk = keys
    holder = KeyHolder(sk, ParticipationRule("all", ABC, 2))
    w = np.array([0.5, -1.25, 3.0])
    first, second = holder.encrypt_model(w, 24), holder.encrypt_model(w, 24)
    assert first.to_bytes() != second.to_bytes()
    np.testing.assert_allclose(sk.decrypt_vector(first), w)
    np.testing.assert_allclose(sk.decrypt_vector(second), w)


def test_layout_chunks_cover_the_update_exactly(keys: KeyPair) -> None:
    pk, _ = keys
    layout = _layout(pk, 31, 2)  # 6 slots: 6 ciphertexts, 3 chunks
    assert (layout.slots, layout.n_ciphertexts, layout.n_chunks) == (6, 6, 3)
    assert [layout.chunk_value_range(k) for k in range(3)] == [(0, 12), (12, 24), (24, 31)]
    uneven = _layout(pk, 31, 4)
    assert [uneven.chunk_ciphertext_range(k) for k in range(2)] == [(0, 4), (4, 6)]
