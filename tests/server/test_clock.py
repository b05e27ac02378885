"""Deadlines count only the time the PS was running: a frozen PS does not expire every round."""

from __future__ import annotations

import asyncio

import pytest

from homolr.server import clock as clock_module
from homolr.server.clock import FROZEN_AFTER_S, TICK_S, AwakeClock, Deadline


class FakeMonotonic:
    """A monotonic clock the test moves by hand; counts how often it was read."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.now

    def run(self, clock: AwakeClock, seconds: float, step: float = TICK_S) -> None:
        """The process runs normally for ``seconds``: the ticker observes every ``step``."""
        ticks = round(seconds / step)
        for _ in range(ticks):
            self.now += step
            clock.observe()


def test_normal_ticking_counts_against_a_deadline() -> None:
    mono = FakeMonotonic()
    clock = AwakeClock(mono)
    deadline = Deadline(clock, 10.0)
    mono.run(clock, 4.0)
    assert deadline.remaining() == pytest.approx(6.0)
    assert deadline.elapsed() == pytest.approx(4.0)
    assert not deadline.expired
    mono.run(clock, 6.0)
    assert deadline.expired and deadline.remaining() == 0.0
    assert clock.frozen_s == 0.0


def test_a_gap_longer_than_frozen_after_is_not_counted() -> None:
    mono = FakeMonotonic()
    clock = AwakeClock(mono)
    deadline = Deadline(clock, 10.0)
    mono.run(clock, 2.0)
    mono.now += 3600.0  # SIGSTOP / a paused VM for an hour
    assert not deadline.expired
    # at most one tick of the gap is counted as running time
    assert deadline.remaining() == pytest.approx(8.0 - TICK_S)
    assert clock.frozen_s == pytest.approx(3600.0 - TICK_S)
    mono.run(clock, 8.0 - TICK_S - 0.5)
    assert deadline.remaining() == pytest.approx(0.5)
    mono.run(clock, 0.5)
    assert deadline.expired


@pytest.mark.parametrize("gap", [0.5, FROZEN_AFTER_S])
def test_a_late_tick_within_frozen_after_is_running_time(gap: float) -> None:
    mono = FakeMonotonic()
    clock = AwakeClock(mono)
    deadline = Deadline(clock, 10.0)
    mono.now += gap
    assert deadline.remaining() == pytest.approx(10.0 - gap)
    assert clock.frozen_s == 0.0


def test_freezes_add_up_and_only_they_are_subtracted() -> None:
    mono = FakeMonotonic()
    clock = AwakeClock(mono)
    start = clock.awake()
    for frozen in (5.0, 120.0, 1.5):
        mono.run(clock, 1.0)
        mono.now += frozen
        clock.observe()
    mono.run(clock, 1.0)
    expected_frozen = sum(f - TICK_S for f in (5.0, 120.0, 1.5))
    assert clock.frozen_s == pytest.approx(expected_frozen)
    assert clock.awake() - start == pytest.approx(4.0 + 3 * TICK_S)


def test_restart_gives_a_full_allowance_again() -> None:
    mono = FakeMonotonic()
    clock = AwakeClock(mono)
    deadline = Deadline(clock, 10.0)
    mono.run(clock, 10.0)
    assert deadline.expired
    deadline.restart()
    assert deadline.remaining() == pytest.approx(10.0)
    deadline.restart(3.0)
    assert deadline.seconds == 3.0 and deadline.remaining() == pytest.approx(3.0)


def test_the_ticker_watches_the_event_loop_until_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    # A fast ticker in real time over a fake monotonic clock; only how often it observes and what
    # a jump of the fake clock does are asserted.
    monkeypatch.setattr(clock_module, "TICK_S", 0.002)
    mono = FakeMonotonic()
    clock = AwakeClock(mono)

    async def main() -> tuple[float, int, int]:
        clock.start()
        clock.start()  # idempotent: one ticker
        deadline = Deadline(clock, 10.0)
        await asyncio.sleep(0.03)
        mono.now += 30.0  # the process was frozen: the next tick sees the gap
        await asyncio.sleep(0.03)
        remaining = deadline.remaining()
        await clock.stop()
        reads = mono.reads
        await asyncio.sleep(0.02)
        return remaining, reads, mono.reads

    remaining, reads_at_stop, reads_later = asyncio.run(main())
    assert remaining == pytest.approx(10.0 - 0.002)
    assert clock.frozen_s == pytest.approx(30.0 - 0.002)
    assert reads_at_stop > 5  # it ticked
    assert reads_later == reads_at_stop  # and stopped
