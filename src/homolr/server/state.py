"""The run's state as the servicer and the training loop share it, on one asyncio event loop.

Everything here runs on the event loop thread (no locks): who joined, which round is published and
open, which members completed their update, who has a call in flight, and how training ended.
Waiting is on a :class:`Notifier` (a version counter and an event), so a waiting call holds no
thread and every wait has a timeout. Refusals raise the domain errors that the servicer maps to
status codes; a refused call changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from homolr.enclave.keyholder import RoundSum
from homolr.errors import ConfigError, PolicyError, PreconditionError
from homolr.protocol.messages import (
    MAX_SAMPLES,
    GlobalModel,
    ModelHeader,
    Outcome,
    RoundKind,
    Scaler,
    TrainingPlan,
)


class Notifier:
    """Wake every waiter when the state changes; waiters re-check their condition."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, timeout: float) -> None:
        """Return at the next change or after ``timeout`` seconds, whichever comes first.

        A cancellation is never lost, even one that arrives with a change (``asyncio.timeout``,
        not Python 3.11's ``asyncio.wait_for``, which then returns and drops the cancel: a
        signal would not stop the training task).
        """
        if timeout <= 0:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._event.wait()


@dataclass
class MemberState:
    member_id: str
    n_samples: int
    active: bool = True
    connected: bool = True
    polling: bool = False
    submitting: bool = False
    fetched_round: int = -1
    saw_finish: bool = False


@dataclass(frozen=True)
class Published:
    """One published round: what every member fetches (its weight share is added per member)."""

    round: int
    step: int
    kind: RoundKind
    encrypted: bool
    length: int
    frac_bits: int
    payload: bytes
    weights: Mapping[str, float]


@dataclass(frozen=True)
class Finish:
    round: int
    outcome: Outcome
    reason: str


class OpenMembership:
    """Development mode without a federation file: the first ``capacity`` distinct ids to join."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.ids: frozenset[str] | None = None


class FederationMembership:
    """The federation's members, by id; nobody else may join."""

    def __init__(self, ids: frozenset[str]) -> None:
        self.ids: frozenset[str] | None = ids
        self.capacity = len(ids)


Membership = OpenMembership | FederationMembership


@dataclass
class RunState:
    """Shared state of one run (see the module docstring)."""

    plan: TrainingPlan
    membership: Membership
    members: dict[str, MemberState] = field(default_factory=dict)
    published: Published | None = None
    round_sum: RoundSum | None = None
    submitted: set[str] = field(default_factory=set)
    finish: Finish | None = None
    scaler: Scaler | None = None
    changed: Notifier = field(default_factory=Notifier)

    # --------------------------------------------------------------------------- membership
    def join(self, member_id: str, n_features: int, n_samples: int) -> int:
        """Register (or re-register) a member; return the round it should fetch next."""
        if n_features != self.plan.n_features:
            raise ConfigError(
                f"member '{member_id}' has {n_features} features but the plan has "
                f"{self.plan.n_features}"
            )
        if not 1 <= n_samples <= MAX_SAMPLES:
            raise ConfigError(
                f"member '{member_id}' announced {n_samples} samples; allowed 1..{MAX_SAMPLES:,}"
            )
        if self.plan.privacy_level == "record" and n_samples < self.plan.dp_min_samples:
            raise ConfigError(
                f"member '{member_id}' announced {n_samples} samples; the privacy plan needs at "
                f"least min_samples = {self.plan.dp_min_samples}"
            )
        if self.finish is not None:
            raise PreconditionError(f"training has finished ({self.finish.reason}); join refused")
        ids = self.membership.ids
        if ids is not None and member_id not in ids:
            raise PolicyError(f"'{member_id}' is not a member of this federation")
        record = self.members.get(member_id)
        if record is None and len(self.members) >= self.membership.capacity:
            raise PolicyError(
                f"'{member_id}' refused: the PS expects {self.membership.capacity} members and "
                f"{', '.join(sorted(self.members))} already joined"
            )
        if record is not None and record.n_samples != n_samples:
            raise PreconditionError(
                f"member '{member_id}' joined again with {n_samples} samples; it joined with "
                f"{record.n_samples}"
            )
        if record is None:
            self.members[member_id] = MemberState(member_id, n_samples)
        else:
            record.active = record.connected = True
        self.changed.notify()
        return 0 if self.published is None else self.published.round

    def restore(self, samples: Mapping[str, int]) -> None:
        """Members of a resumed run (they still have to reconnect)."""
        for member_id, n_samples in samples.items():
            self.members[member_id] = MemberState(member_id, n_samples, connected=False)

    def member(self, member_id: str) -> MemberState:
        record = self.members.get(member_id)
        if record is None:
            raise PreconditionError(f"'{member_id}' has not joined this run; call Join first")
        return record

    def sample_counts(self) -> dict[str, int]:
        return {m: r.n_samples for m, r in self.members.items()}

    def missing_members(self) -> list[str]:
        """Federation members that have not joined (empty in open mode)."""
        ids = self.membership.ids
        return sorted(ids - set(self.members)) if ids is not None else []

    # ------------------------------------------------------------------------------- rounds
    def publish(self, published: Published, round_sum: RoundSum | None) -> None:
        self.published = published
        self.round_sum = round_sum
        self.submitted = set()
        self.changed.notify()

    def close_round(self) -> None:
        """No more submissions for the published round (late ones are refused)."""
        self.round_sum = None
        self.changed.notify()

    def model_for(self, member_id: str, wanted: int, have_scaler: bool) -> GlobalModel | None:
        """The answer to GetModel(round=wanted), or None when the member must wait.

        A member gets the published model when its round is >= ``wanted``, and also when the open
        round still lacks its update although it asks for a later one: it submitted to a PS that
        was restarted before that round closed, and must answer it again.
        """
        if self.finish is not None:
            self.member(member_id).saw_finish = True
            return GlobalModel(
                ModelHeader(
                    round=self.finish.round,
                    finished=True,
                    reason=self.finish.reason,
                    outcome=self.finish.outcome,
                )
            )
        published = self.published
        if published is None:
            return None
        if member_id not in published.weights and published.round >= wanted:
            return None  # it takes no part in this round (joined late under quorum): wait
        owes = (
            self.round_sum is not None
            and member_id in published.weights
            and member_id not in self.submitted
        )
        if published.round < wanted and not owes:
            return None
        header = ModelHeader(
            round=published.round,
            step=published.step,
            kind=published.kind,
            encrypted=published.encrypted,
            length=published.length,
            frac_bits=published.frac_bits,
            weight=published.weights[member_id],
            scaler=None if have_scaler else self.scaler,
        )
        return GlobalModel(header, published.payload)

    def mark_fetched(self, member_id: str, round_: int) -> None:
        record = self.members.get(member_id)
        if record is not None and round_ > record.fetched_round:
            record.fetched_round = round_
            self.changed.notify()

    def end(self, finish: Finish) -> None:
        self.finish = finish
        self.round_sum = None
        self.changed.notify()

    def members_without_finish(self) -> list[str]:
        return sorted(m for m, r in self.members.items() if r.active and not r.saw_finish)


__all__ = [
    "FederationMembership",
    "Finish",
    "MemberState",
    "Membership",
    "Notifier",
    "OpenMembership",
    "Published",
    "RunState",
]
