"""Deadlines that count only the time the PS was running.

A host can freeze the PS (SIGSTOP, a paused VM, a swapped-out enclave). The monotonic clock keeps
running meanwhile, so on waking every deadline would have passed at once and a round would close
before the members, who were waiting on the frozen PS too, had any chance to answer. The
:class:`AwakeClock` detects such gaps with a ticker on the event loop (a tick that arrives much later
than scheduled means the process did not run) and subtracts them: ``awake()`` is the monotonic time
minus the time spent frozen. Deadlines measured on it give members their full allowance of PS
running time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

#: Ticker period and the lateness above which a gap counts as frozen time.
TICK_S = 0.25
FROZEN_AFTER_S = 1.0


class AwakeClock:
    """Monotonic time minus the gaps in which the process (or its event loop) did not run."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._frozen = 0.0
        self._last_tick = monotonic()
        self._task: asyncio.Task[None] | None = None

    @property
    def frozen_s(self) -> float:
        """Seconds the process was seen frozen since the clock started."""
        return self._frozen

    def awake(self) -> float:
        """Monotonic seconds minus frozen time (only differences are meaningful)."""
        self.observe()
        return self._monotonic() - self._frozen

    def observe(self) -> None:
        """Account a gap since the last observation longer than :data:`FROZEN_AFTER_S`."""
        now = self._monotonic()
        gap = now - self._last_tick
        if gap > FROZEN_AFTER_S:
            self._frozen += gap - TICK_S
        self._last_tick = now

    def start(self) -> None:
        """Start the ticker on the running event loop."""
        if self._task is None:
            self._last_tick = self._monotonic()
            self._task = asyncio.get_running_loop().create_task(self._tick(), name="awake-clock")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            self.observe()


class Deadline:
    """``seconds`` of awake time from now (or from :meth:`restart`)."""

    def __init__(self, clock: AwakeClock, seconds: float) -> None:
        self._clock = clock
        self.seconds = seconds
        self._end = clock.awake() + seconds

    def restart(self, seconds: float | None = None) -> None:
        if seconds is not None:
            self.seconds = seconds
        self._end = self._clock.awake() + self.seconds

    def remaining(self) -> float:
        return max(0.0, self._end - self._clock.awake())

    def elapsed(self) -> float:
        return self.seconds - self.remaining()

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0.0


__all__ = ["FROZEN_AFTER_S", "TICK_S", "AwakeClock", "Deadline"]
