"""The run's shared state: who may join, what each member is handed, and waking the waiters."""

from __future__ import annotations

import asyncio
import time
from typing import cast

import pytest

from homolr.enclave.keyholder import RoundSum
from homolr.errors import ConfigError, PolicyError, PreconditionError
from homolr.protocol.messages import MAX_SAMPLES, Scaler, TrainingPlan
from homolr.server.state import (
    FederationMembership,
    Finish,
    Notifier,
    OpenMembership,
    Published,
    RunState,
)

PLAN = TrainingPlan(n_features=3, expected_workers=3, min_workers=2).validate()
MEMBERS = frozenset({"guest", "host", "third"})
#: RunState only asks whether a round is open; the key holder's sums are tested elsewhere.
OPEN_SUM = cast(RoundSum, object())
SCALER = Scaler((0.5, 1.0, -2.0), (1.0, 2.0, 0.5))


def _federation_state() -> RunState:
    return RunState(PLAN, FederationMembership(MEMBERS))


def _published(
    round_: int = 3, step: int = 2, weights: dict[str, float] | None = None
) -> Published:
    return Published(
        round=round_,
        step=step,
        kind="train",
        encrypted=True,
        length=4,
        frac_bits=24,
        payload=b"ciphertexts of round %d" % round_,
        weights=weights if weights is not None else {"guest": 0.25, "host": 0.75},
    )


def _joined(*members: str, samples: int = 100) -> RunState:
    state = _federation_state()
    for member in members:
        state.join(member, PLAN.n_features, samples)
    return state


# --- join --------------------------------------------------------------------------------------


@pytest.mark.parametrize("features", [0, 2, 4])
def test_join_needs_the_plans_feature_count(features: int) -> None:
    state = _federation_state()
    with pytest.raises(ConfigError, match=f"'guest' has {features} features but the plan has 3"):
        state.join("guest", features, 100)
    assert state.members == {}


@pytest.mark.parametrize("samples", [0, -1, MAX_SAMPLES + 1])
def test_join_needs_a_sample_count_in_range(samples: int) -> None:
    state = _federation_state()
    with pytest.raises(ConfigError, match=f"announced {samples} samples; allowed 1..1,000,000,000"):
        state.join("guest", 3, samples)
    assert state.members == {}


@pytest.mark.parametrize("samples", [1, MAX_SAMPLES])
def test_the_sample_range_is_inclusive(samples: int) -> None:
    state = _federation_state()
    assert state.join("guest", 3, samples) == 0
    assert state.sample_counts() == {"guest": samples}


def test_a_non_member_cannot_join_a_federation() -> None:
    state = _federation_state()
    with pytest.raises(PolicyError, match="'mallory' is not a member of this federation"):
        state.join("mallory", 3, 100)
    assert state.members == {}
    assert state.missing_members() == sorted(MEMBERS)


def test_open_mode_admits_the_first_capacity_distinct_ids() -> None:
    state = RunState(PLAN, OpenMembership(2))
    state.join("w1", 3, 10)
    state.join("w2", 3, 20)
    with pytest.raises(PolicyError, match="expects 2 members and w1, w2 already joined"):
        state.join("w3", 3, 30)
    assert sorted(state.members) == ["w1", "w2"]
    state.join("w1", 3, 10)  # a member that joined may join again
    assert state.missing_members() == []


def test_a_rejoin_must_announce_the_same_sample_count() -> None:
    state = _joined("guest", samples=100)
    with pytest.raises(
        PreconditionError, match="joined again with 101 samples; it joined with 100"
    ):
        state.join("guest", 3, 101)
    assert state.sample_counts() == {"guest": 100}
    record = state.members["guest"]
    record.active = record.connected = False
    state.join("guest", 3, 100)
    assert record.active and record.connected


def test_a_resumed_member_reconnects_with_its_sample_count() -> None:
    state = _federation_state()
    state.restore({"guest": 100, "host": 50})
    assert not state.members["guest"].connected
    with pytest.raises(PreconditionError, match="joined with 50"):
        state.join("host", 3, 51)
    state.join("guest", 3, 100)
    assert state.members["guest"].connected
    assert state.missing_members() == ["third"]


def test_join_after_the_end_is_refused() -> None:
    state = _joined("guest")
    state.end(Finish(round=9, outcome="completed", reason="plan done"))
    for member in ("guest", "host"):
        with pytest.raises(PreconditionError, match=r"training has finished \(plan done\)"):
            state.join(member, 3, 100)
    assert sorted(state.members) == ["guest"]


def test_join_names_the_round_to_fetch() -> None:
    state = _joined("guest")
    assert state.join("host", 3, 100) == 0
    state.publish(_published(round_=7), OPEN_SUM)
    assert state.join("third", 3, 100) == 7


# --- model_for ---------------------------------------------------------------------------------


def test_nothing_published_means_wait() -> None:
    state = _joined("guest")
    assert state.model_for("guest", 0, have_scaler=True) is None


def test_the_published_model_carries_the_round_step_and_the_members_share() -> None:
    state = _joined("guest", "host")
    published = _published(round_=3, step=2)
    state.publish(published, OPEN_SUM)
    for member, share in (("guest", 0.25), ("host", 0.75)):
        model = state.model_for(member, 3, have_scaler=True)
        assert model is not None
        header = model.header
        assert (header.round, header.step, header.kind) == (3, 2, "train")
        assert (header.encrypted, header.length, header.frac_bits) == (True, 4, 24)
        assert header.weight == share
        assert not header.pending and not header.finished and header.outcome is None
        assert model.payload == published.payload
    assert state.model_for("guest", 0, have_scaler=True) is not None  # older asks get it too


def test_pending_when_nothing_newer() -> None:
    state = _joined("guest", "host")
    state.publish(_published(round_=3), OPEN_SUM)
    state.submitted.add("guest")
    assert state.model_for("guest", 4, have_scaler=True) is None
    state.close_round()
    assert state.model_for("host", 4, have_scaler=True) is None  # closed: owes nothing any more


def test_a_member_that_owes_the_open_round_gets_it_even_when_asking_for_a_later_one() -> None:
    # It submitted round 3 to a PS that restarted before round 3 closed: it must answer again.
    state = _joined("guest", "host")
    state.publish(_published(round_=3), OPEN_SUM)
    model = state.model_for("guest", 4, have_scaler=True)
    assert model is not None and model.header.round == 3 and model.header.weight == 0.25


def test_a_member_outside_the_open_round_is_not_handed_it() -> None:
    state = _joined("guest", "host")
    state.publish(_published(round_=3, weights={"guest": 0.5, "host": 0.5}), OPEN_SUM)
    assert state.join("third", 3, 100) == 3  # joins late
    model = state.model_for("third", 3, have_scaler=True)
    assert model is None or model.header.weight > 0.0


def test_the_scaler_is_sent_only_to_a_member_without_it() -> None:
    state = _joined("guest")
    state.scaler = SCALER
    state.publish(_published(round_=1), OPEN_SUM)
    without = state.model_for("guest", 1, have_scaler=False)
    holding = state.model_for("guest", 1, have_scaler=True)
    assert without is not None and without.header.scaler == SCALER
    assert holding is not None and holding.header.scaler is None


@pytest.mark.parametrize("outcome", ["completed", "paused", "stopped", "failed"])
def test_after_the_end_every_member_gets_the_finished_notice(outcome: str) -> None:
    state = _joined("guest", "host")
    state.publish(_published(round_=8), OPEN_SUM)
    state.end(Finish(round=8, outcome=outcome, reason="why it ended"))  # type: ignore[arg-type]
    assert state.round_sum is None
    assert state.members_without_finish() == ["guest", "host"]
    model = state.model_for("guest", 9, have_scaler=False)
    assert model is not None and model.payload == b""
    header = model.header
    assert header.finished and header.outcome == outcome and header.reason == "why it ended"
    assert header.round == 8 and header.scaler is None
    assert state.members_without_finish() == ["host"]
    with pytest.raises(PreconditionError, match="'mallory' has not joined"):
        state.model_for("mallory", 0, have_scaler=True)


def test_mark_fetched_only_moves_forward() -> None:
    state = _joined("guest")
    state.mark_fetched("guest", 4)
    state.mark_fetched("guest", 2)
    assert state.members["guest"].fetched_round == 4
    state.mark_fetched("nobody", 9)  # unknown members are ignored
    assert "nobody" not in state.members


def test_member_lookup_refuses_the_unknown() -> None:
    state = _joined("guest")
    assert state.member("guest").n_samples == 100
    with pytest.raises(PreconditionError, match="call Join first"):
        state.member("host")


# --- Notifier ----------------------------------------------------------------------------------


def test_notify_wakes_every_waiter_at_once() -> None:
    async def main() -> list[float]:
        notifier = Notifier()
        started = time.monotonic()

        async def waiter() -> float:
            await notifier.wait(5.0)
            return time.monotonic() - started

        tasks = [asyncio.create_task(waiter()) for _ in range(3)]
        await asyncio.sleep(0.02)
        notifier.notify()
        return await asyncio.gather(*tasks)

    assert all(elapsed < 1.0 for elapsed in asyncio.run(main()))


def test_wait_returns_after_its_timeout_without_a_change() -> None:
    async def main() -> float:
        notifier = Notifier()
        started = time.monotonic()
        await notifier.wait(0.05)
        return time.monotonic() - started

    assert 0.04 <= asyncio.run(main()) < 1.0


def test_a_notification_before_the_wait_does_not_end_it() -> None:
    # Waiters re-check their condition first; a wait is for the next change.
    async def main() -> bool:
        notifier = Notifier()
        notifier.notify()
        waiter = asyncio.create_task(notifier.wait(5.0))
        await asyncio.sleep(0.03)
        done_early = waiter.done()
        notifier.notify()
        await asyncio.wait_for(waiter, 1.0)
        return done_early

    assert asyncio.run(main()) is False


def test_wait_with_no_time_left_returns_at_once() -> None:
    async def main() -> None:
        notifier = Notifier()
        await asyncio.wait_for(notifier.wait(0.0), 0.5)
        await asyncio.wait_for(notifier.wait(-1.0), 0.5)

    asyncio.run(main())


def test_a_cancel_that_coincides_with_a_notification_is_not_lost() -> None:
    # SIGINT/SIGTERM cancel the training task while it waits on the notifier, which members
    # notify many times a second: a cancel arriving with a notification must still cancel
    # (Python 3.11's asyncio.wait_for returns the inner result then and drops the cancel).
    async def main() -> str:
        notifier = Notifier()
        waiter = asyncio.create_task(notifier.wait(5.0))
        await asyncio.sleep(0.01)
        notifier.notify()
        waiter.cancel()
        try:
            await asyncio.wait_for(waiter, 1.0)
        except asyncio.CancelledError:
            return "cancelled"
        return "finished"

    assert asyncio.run(main()) == "cancelled"


def test_state_changes_wake_the_waiters() -> None:
    async def main() -> list[str]:
        state = _federation_state()
        woken: list[str] = []

        async def wait_for(what: str) -> None:
            await state.changed.wait(5.0)
            woken.append(what)

        steps = (
            ("join", lambda: state.join("guest", 3, 100)),
            ("publish", lambda: state.publish(_published(round_=0), OPEN_SUM)),
            ("fetched", lambda: state.mark_fetched("guest", 0)),
            ("close", state.close_round),
            ("end", lambda: state.end(Finish(0, "stopped", "SIGTERM"))),
        )
        for name, change in steps:
            task = asyncio.create_task(wait_for(name))
            await asyncio.sleep(0.01)
            change()
            await asyncio.wait_for(task, 1.0)
        return woken

    assert asyncio.run(main()) == ["join", "publish", "fetched", "close", "end"]
