"""The enclave component that holds the Paillier private key, and the rules it decrypts under.

It is the only code with access to the private key, and it enforces the participation policy where
the key is:

* it decrypts **only homomorphic sums** that it formed itself from single-member contributions;
* under ``participation = "all"`` a sum must hold **every** member of the federation; under
  ``"quorum"`` (and in open development mode) at least ``min_workers`` (never fewer than 2);
* every round number is used once: a round at or below the last one opened is refused, so one
  enclave never decrypts two different sums for the same round;
* nothing decrypted leaves it before :meth:`RoundSum.release`, which applies the privacy mechanism
  (differential-privacy noise, when the plan has it) first.

Streaming aggregation. An update arrives as data messages of ``chunk_ciphertexts`` ciphertexts.
:class:`RoundSum` keeps one running homomorphic sum per chunk and the set of members folded into it;
each arriving chunk is validated and folded at once and then dropped, so memory is one update
whatever the number of members. When every expected member's chunk ``k`` is in, chunk ``k`` can be
decrypted while later chunks still stream. A member whose stream broke may send its (byte-identical)
update again: chunks it already folded are skipped.

The key holder also re-encrypts the global model the PS sends back (fresh randomness).
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from homolr.crypto import EncryptedVector, PackingSpec, PrivateKey, PublicKey, unpack_ints
from homolr.crypto.encoding import fixed_to_float
from homolr.crypto.streaming import ChunkedSum, chunk_bounds
from homolr.errors import EncodingOverflowError, PolicyError, ProtocolError, RoundError
from homolr.privacy import ByteSource, keyed_source
from homolr.protocol.messages import MIN_WORKERS_FLOOR, Participation

FloatArray = NDArray[np.float64]
#: Chunks at least this long are decrypted on the process pool.
POOL_MIN_CIPHERTEXTS = 32

#: ``release(sums, weight_totals, contributors) -> released values``: the privacy mechanism
#: (noise, projection) applied to the decrypted weighted sums before anything leaves the key
#: holder. ``weight_totals`` holds, per value, the sum of the weight shares of the contributors;
#: ``contributors`` are the members whose updates the sums hold (noise is labelled by them).
ReleaseMechanism = Callable[[FloatArray, FloatArray, frozenset[str]], FloatArray]


def average_release(
    sums: FloatArray, weight_totals: FloatArray, contributors: frozenset[str]
) -> FloatArray:
    """No privacy mechanism: the weighted average of the members' values."""
    return sums / weight_totals


@dataclass(frozen=True)
class ParticipationRule:
    """Which sets of members the key holder decrypts sums of.

    ``members`` None means open membership (development mode without a federation file): any
    ``min_workers`` distinct ids.
    """

    policy: Participation
    members: frozenset[str] | None
    min_workers: int

    def __post_init__(self) -> None:
        if self.min_workers < MIN_WORKERS_FLOOR:
            raise PolicyError(
                f"min_workers is {self.min_workers}; the key holder needs >= {MIN_WORKERS_FLOOR} "
                "so that no single member's contribution is ever decrypted"
            )
        if self.policy == "all" and self.members is None:
            raise PolicyError('participation "all" needs the list of members')
        if self.members is not None and len(self.members) < self.min_workers:
            raise PolicyError(
                f"min_workers is {self.min_workers} but only {len(self.members)} members exist"
            )

    def check(self, contributors: frozenset[str], what: str) -> None:
        """Raise PolicyError unless a sum of ``contributors`` may be decrypted."""
        names = ", ".join(sorted(contributors)) or "none"
        if self.members is not None and not contributors <= self.members:
            strangers = ", ".join(sorted(contributors - self.members))
            raise PolicyError(f"refusing to decrypt {what}: {strangers} are not members")
        if self.policy == "all":
            assert self.members is not None
            missing = self.members - contributors
            if missing:
                raise PolicyError(
                    f"refusing to decrypt {what} of {names}: participation 'all' needs every "
                    f"member; missing {', '.join(sorted(missing))}"
                )
        elif len(contributors) < self.min_workers:
            raise PolicyError(
                f"refusing to decrypt {what} of {len(contributors)} member(s) ({names}); "
                f"the policy needs at least {self.min_workers}"
            )


@dataclass(frozen=True)
class UpdateLayout:
    """Shape of one round's updates: packed values, scale, slots and the data-message size."""

    length: int
    frac_bits: int
    spec: PackingSpec
    chunk_ciphertexts: int
    n_bits: int

    @property
    def slots(self) -> int:
        return self.spec.slots_per_ciphertext(self.n_bits)

    @property
    def n_ciphertexts(self) -> int:
        return self.spec.ciphertext_count(self.length, self.n_bits)

    @property
    def n_chunks(self) -> int:
        return -(-self.n_ciphertexts // self.chunk_ciphertexts)

    def chunk_ciphertext_range(self, chunk: int) -> tuple[int, int]:
        start = chunk * self.chunk_ciphertexts
        return start, min(start + self.chunk_ciphertexts, self.n_ciphertexts)

    def chunk_value_range(self, chunk: int) -> tuple[int, int]:
        start, stop = self.chunk_ciphertext_range(chunk)
        return start * self.slots, min(stop * self.slots, self.length)


@dataclass(frozen=True)
class Release:
    """What leaves the key holder after a round: released values and who contributed."""

    values: FloatArray
    contributors: tuple[str, ...]


class RoundSum:
    """Running sums of one round's updates, chunk by chunk (see the module docstring).

    The sums themselves live in a :class:`~homolr.crypto.ChunkedSum` whose required set is the
    expected members (after the deadline: the members whose update is complete). Thread-safe:
    folds (one thread) and decryptions (another) may overlap.
    """

    def __init__(
        self,
        holder: KeyHolder,
        round_: int,
        layout: UpdateLayout,
        weights: Mapping[str, float],
        expected: frozenset[str],
        release: ReleaseMechanism,
    ) -> None:
        self.round = round_
        self.layout = layout
        self._holder = holder
        self._weights = dict(weights)
        self._expected = frozenset(expected)
        self._release = release
        bounds = chunk_bounds(layout.n_ciphertexts, layout.chunk_ciphertexts)
        self._sums = ChunkedSum(holder.public_key, bounds, required=self._expected)
        self._values: list[FloatArray | None] = [None] * len(bounds)
        self._digests: dict[tuple[str, int], bytes] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._unreleasable = ""
        self._released = False

    @property
    def expected(self) -> frozenset[str]:
        return self._expected

    def has_chunk(self, member: str, chunk: int) -> bool:
        with self._lock:
            return member in self._sums.members(chunk)

    def fold(self, member: str, chunk: int, data: bytes) -> bool:
        """Validate one data message (``chunk``) of ``member``'s update and fold it in.

        Returns True when the chunk was folded, False when this member's chunk was already in
        (a byte-identical resubmission after a broken stream): nothing changes then.

        Raises
        ------
        ProtocolError
            Wrong chunk index or size, or an invalid ciphertext (names the member, round, chunk).
        PolicyError
            ``member`` has no weight this round (not joined / not a member).
        RoundError
            The round closed, or this chunk's sum was already decrypted.
        """
        layout = self.layout
        where = f"update of '{member}' for round {self.round}, data message {chunk + 1}"
        if member not in self._weights:
            raise PolicyError(f"{where}: '{member}' takes no part in this round")
        if not 0 <= chunk < layout.n_chunks:
            raise ProtocolError(f"{where}: the update has only {layout.n_chunks} data messages")
        start, stop = layout.chunk_ciphertext_range(chunk)
        width = self._holder.public_key.ciphertext_bytes
        if len(data) != (stop - start) * width:
            raise ProtocolError(
                f"{where}: {len(data)} bytes; expected {stop - start} ciphertexts of {width} bytes"
            )
        digest = hashlib.sha256(data).digest()
        if self.has_chunk(member, chunk):
            return self._same_again(member, chunk, digest, where)
        try:
            ciphertexts = self._holder.public_key.ciphertexts_from_bytes(data)
        except ValueError as exc:
            raise ProtocolError(f"{where}: {exc}") from None
        with self._lock:
            if self._closed:
                raise RoundError(f"{where}: round {self.round} closed before this data arrived")
            if self._values[chunk] is not None:
                raise RoundError(f"{where}: this chunk's sum is already decrypted")
            if member in self._sums.members(chunk):
                return self._same_again(member, chunk, digest, where)
            self._sums.fold(member, chunk, ciphertexts, validated=True)
            self._digests[member, chunk] = digest
        return True

    def _same_again(self, member: str, chunk: int, digest: bytes, where: str) -> bool:
        """A resubmitted chunk must be byte-identical to the one folded in (False: skipped)."""
        if self._digests.get((member, chunk)) != digest:
            raise ProtocolError(
                f"{where}: resubmitted with other bytes than the chunk already folded in; a "
                "member resends exactly its stored upload"
            )
        return False

    def member_complete(self, member: str) -> bool:
        """True when every chunk of ``member``'s update is folded in."""
        with self._lock:
            return all(member in self._sums.members(k) for k in range(self.layout.n_chunks))

    def complete_members(self) -> frozenset[str]:
        with self._lock:
            sets = [set(self._sums.members(k)) for k in range(self.layout.n_chunks)]
        return frozenset(set.intersection(*sets)) if sets else frozenset()

    def ready_chunks(self) -> list[int]:
        """Chunks not yet decrypted that hold exactly the required members (the expected ones;
        after the deadline, the members whose update is complete)."""
        with self._lock:
            return [] if self._unreleasable else self._sums.complete()

    def close(self) -> None:
        """The round's deadline passed: no more folds; the required set becomes the members whose
        update is complete, if the participation rule allows that set."""
        complete = self.complete_members()
        with self._lock:
            self._closed = True
            if not complete:
                self._unreleasable = "no member's update is complete"
                return
            try:
                self._sums.require(complete)
            except RoundError as exc:  # a chunk holds part of an incomplete update
                self._unreleasable = f"chunks hold different sets of members ({exc})"

    def decrypt_chunk(self, chunk: int) -> None:
        """Decrypt the sum held for ``chunk`` (kept inside; see :meth:`release`).

        Raises
        ------
        PolicyError
            The chunk's members do not satisfy the participation rule, or it is incomplete.
        EncodingOverflowError
            A slot of the sum overflowed: the message names the round and the slot, never a value.
        """
        with self._lock:
            if self._values[chunk] is not None:
                return
            members = self._sums.members(chunk)
            try:
                total = self._sums.take(chunk)
            except RoundError as exc:
                raise PolicyError(
                    f"round {self.round}: refusing a partial sum of chunk {chunk} ({exc})"
                ) from None
        self._holder.rule.check(members, f"round {self.round}, chunk {chunk}")
        key = self._holder.private_key
        # a whole chunk goes to the process pool (every core) even below its usual threshold;
        # a handful of ciphertexts (encrypted mode) is cheaper in this thread
        plaintexts = (
            key.decrypt_async(total).result()
            if len(total) >= POOL_MIN_CIPHERTEXTS
            else key.raw_decrypt_many(total)
        )
        layout = self.layout
        lo, hi = layout.chunk_value_range(chunk)
        try:
            ints = unpack_ints(plaintexts, hi - lo, layout.spec, len(members), layout.n_bits)
        except EncodingOverflowError as exc:
            slot = getattr(exc, "slot", None)
            where = f"slot {lo + slot}" if slot is not None else f"a slot of values {lo}..{hi - 1}"
            raise EncodingOverflowError(
                f"round {self.round}: the sum of the members' updates overflowed in {where}; "
                "a member sent values outside the plan's range"
            ) from None
        with self._lock:
            self._values[chunk] = fixed_to_float(ints, layout.frac_bits)

    def release(self) -> Release:
        """The round's released values (weighted average through the privacy mechanism).

        Every chunk must be decrypted from the same (required) set of members: a value vector
        mixing different member sets is refused (it could be differenced).
        """
        with self._lock:
            if self._released:
                raise PolicyError(f"round {self.round} was already released")
            if self._unreleasable:
                raise PolicyError(f"round {self.round}: {self._unreleasable}; not released")
            values = [v for v in self._values if v is not None]
            if len(values) != len(self._values):
                raise PolicyError(f"round {self.round}: not every chunk is decrypted")
            contributors = self._sums.required or frozenset()
            self._released = True
        weight_total = math.fsum(self._weights[m] for m in sorted(contributors))
        sums = np.concatenate(values)
        totals = np.full(len(sums), weight_total)
        released = self._release(sums, totals, frozenset(contributors))
        return Release(released, tuple(sorted(contributors)))


class KeyHolder:
    """Decrypts sums the participation rule allows; nothing else (see the module docstring)."""

    def __init__(self, private_key: PrivateKey, rule: ParticipationRule) -> None:
        self._private_key = private_key
        self.rule = rule
        self._last_round = -1

    @property
    def public_key(self) -> PublicKey:
        return self._private_key.public_key

    @property
    def private_key(self) -> PrivateKey:
        return self._private_key

    def open_round(
        self,
        round_: int,
        layout: UpdateLayout,
        weights: Mapping[str, float],
        expected: frozenset[str],
        release: ReleaseMechanism = average_release,
    ) -> RoundSum:
        """Start summing round ``round_``; rounds must increase strictly.

        ``weights`` maps every member that may contribute to its weight share; ``expected`` is the
        set whose complete chunks may be decrypted before the round closes.
        """
        if round_ <= self._last_round:
            raise PolicyError(
                f"round {round_} was already opened (last round {self._last_round}); each round's "
                "sum is decrypted at most once"
            )
        if not expected <= set(weights):
            raise PolicyError("every expected member needs a weight share")
        self.rule.check(frozenset(expected), f"round {round_}")
        self._last_round = round_
        return RoundSum(self, round_, layout, weights, expected, release)

    def resume_after(self, round_: int) -> None:
        """A resumed run continues after ``round_``: never open a round at or below it again."""
        self._last_round = max(self._last_round, round_)

    def noise_source(self, round_: int, step: int, members: frozenset[str]) -> ByteSource:
        """The differential-privacy noise of one release: keyed by a secret derived from the
        private key (so only the enclave knows it) and labelled by round, step and members (so a
        replayed round with the same members gets the same noise; see :func:`keyed_source`)."""
        secret = hashlib.sha256(
            b"homolr/dp-noise-key/v1\x00"
            + int(self._private_key.p).to_bytes(512, "big")
            + int(self._private_key.q).to_bytes(512, "big")
        ).digest()
        label = f"round={round_};step={step};members={','.join(sorted(members))}".encode()
        return keyed_source(secret, label)

    def encrypt_model(self, weights: FloatArray, frac_bits: int) -> EncryptedVector:
        """Encrypt the global model with fresh randomness at scale ``frac_bits``."""
        return EncryptedVector.encrypt(self.public_key, weights, frac_bits=frac_bits)

    def prepare_encryptions(self, count: int) -> None:
        """Precompute the randomness of the next ``count`` encryptions (idle time)."""
        missing = count - self.public_key.precomputed_masks
        if missing > 0:
            self.public_key.precompute_masks(missing)


__all__ = [
    "KeyHolder",
    "ParticipationRule",
    "Release",
    "ReleaseMechanism",
    "RoundSum",
    "UpdateLayout",
    "average_release",
]
