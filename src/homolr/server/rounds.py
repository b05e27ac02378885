"""The round state machine: who joined, which model is published, which submissions arrived.

Servicer threads call :meth:`RoundCoordinator.join`, :meth:`~RoundCoordinator.wait_model` and
:meth:`~RoundCoordinator.submit`; the training loop calls :meth:`~RoundCoordinator.publish`,
:meth:`~RoundCoordinator.collect` and :meth:`~RoundCoordinator.finish`. All waiting is on one
condition variable (no polling loops). A round closes when every *active* worker has submitted, or
when its deadline passes; a worker that misses a deadline becomes inactive (later rounds do not wait
for it) until it shows up again. Every refused call raises :class:`~homolr.errors.RoundError` or
:class:`~homolr.errors.ConfigError` and changes nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from homolr.errors import ConfigError, RoundError
from homolr.protocol.messages import GlobalModel, ModelHeader

C = TypeVar("C")


@dataclass
class WorkerRecord:
    worker_id: str
    n_samples: int
    active: bool = True
    saw_finish: bool = False


@dataclass(frozen=True)
class RoundResult(Generic[C]):
    """Submissions of one closed round, by worker id, and the workers that missed it."""

    round: int
    submissions: dict[str, C]
    missing: tuple[str, ...]


class RoundCoordinator(Generic[C]):
    """Thread-safe coordination of rounds between the servicer threads and the training loop."""

    def __init__(
        self,
        *,
        n_features: int,
        expected_workers: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._n_features = n_features
        self._expected = expected_workers
        self._clock = clock
        self._cond = threading.Condition()
        self._workers: dict[str, WorkerRecord] = {}
        self._model: GlobalModel | None = None
        self._open_round: int | None = None
        self._submissions: dict[str, C] = {}
        self._finish: ModelHeader | None = None

    # --- servicer side -------------------------------------------------------------------------
    def join(self, worker_id: str, n_features: int, n_samples: int) -> int:
        """Register (or re-register) a worker; return the round it should fetch next."""
        if n_features != self._n_features:
            raise ConfigError(
                f"worker '{worker_id}' has {n_features} features but the PS's validation set has "
                f"{self._n_features}"
            )
        if n_samples < 1:
            raise ConfigError(f"worker '{worker_id}' announced {n_samples} samples; needs >= 1")
        with self._cond:
            if self._finish is not None:
                raise RoundError(f"training has finished ({self._finish.reason}); join refused")
            record = self._workers.get(worker_id)
            if record is None and len(self._workers) >= self._expected:
                known = ", ".join(sorted(self._workers))
                raise RoundError(
                    f"worker '{worker_id}' refused: the PS expects {self._expected} workers and "
                    f"{known} already joined"
                )
            if record is not None and record.n_samples != n_samples:
                raise ConfigError(
                    f"worker '{worker_id}' rejoined with {n_samples} samples; it joined with "
                    f"{record.n_samples}"
                )
            self._workers[worker_id] = WorkerRecord(worker_id, n_samples)
            self._cond.notify_all()
            return 0 if self._model is None else self._model.header.round

    def wait_model(self, worker_id: str, round: int, timeout: float) -> GlobalModel | None:
        """Block until a model of round >= ``round`` (or the end) is published; None on timeout.

        A worker that asks for a later round than the open one without having submitted to it
        gets the open round's model (see :meth:`_owes_open_round`).
        """
        deadline = self._clock() + timeout
        with self._cond:
            record = self._require_worker(worker_id)
            record.active = True
            while True:
                if self._finish is not None:
                    record.saw_finish = True
                    self._cond.notify_all()
                    return GlobalModel(self._finish)
                if self._model is not None and (
                    self._model.header.round >= round or self._owes_open_round(worker_id)
                ):
                    return self._model
                remaining = deadline - self._clock()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def submit(self, worker_id: str, round: int, contribution: C) -> int:
        """Store one worker's contribution for the open round; return how many the round holds."""
        with self._cond:
            record = self._require_worker(worker_id)
            if self._finish is not None:
                raise RoundError(
                    f"training has finished ({self._finish.reason}); submission refused"
                )
            if self._open_round is None or round != self._open_round:
                raise RoundError(self._wrong_round_message(worker_id, round))
            if worker_id in self._submissions:
                raise RoundError(f"worker '{worker_id}' already submitted for round {round}")
            self._submissions[worker_id] = contribution
            record.active = True
            self._cond.notify_all()
            return len(self._submissions)

    # --- training-loop side --------------------------------------------------------------------
    def wait_for_workers(self, count: int, timeout: float) -> int:
        """Block until ``count`` workers joined or ``timeout`` passed; return how many joined."""
        deadline = self._clock() + timeout
        with self._cond:
            while len(self._workers) < count and self._finish is None:
                remaining = deadline - self._clock()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return len(self._workers)

    def publish(self, model: GlobalModel) -> None:
        """Publish the global model of a new round and open that round for submissions."""
        with self._cond:
            self._model = model
            self._open_round = model.header.round
            self._submissions = {}
            self._cond.notify_all()

    def collect(self, timeout: float, *, stop: threading.Event | None = None) -> RoundResult[C]:
        """Close the open round when every active worker submitted or ``timeout`` passed."""
        deadline = self._clock() + timeout
        with self._cond:
            if self._open_round is None:
                raise RoundError("no round is open")
            while not self._all_active_submitted() and not (stop is not None and stop.is_set()):
                remaining = deadline - self._clock()
                if remaining <= 0:
                    break
                self._cond.wait(min(remaining, 0.5) if stop is not None else remaining)
            missing = tuple(sorted(w for w in self._workers if w not in self._submissions))
            if not (stop is not None and stop.is_set()):  # a stop is no fault of the workers
                for worker_id in missing:
                    self._workers[worker_id].active = False
            result = RoundResult(self._open_round, dict(self._submissions), missing)
            self._open_round = None
            self._submissions = {}
            return result

    def finish(self, reason: str, round: int) -> None:
        """End training: every waiting and future model request answers 'finished'."""
        with self._cond:
            self._finish = ModelHeader(round=round, finished=True, reason=reason)
            self._open_round = None
            self._cond.notify_all()

    def wait_finish_seen(self, timeout: float) -> tuple[str, ...]:
        """Wait until every active worker fetched the 'finished' notice; return those that did not."""
        deadline = self._clock() + timeout
        with self._cond:
            while True:
                pending = tuple(
                    sorted(
                        r.worker_id for r in self._workers.values() if r.active and not r.saw_finish
                    )
                )
                remaining = deadline - self._clock()
                if not pending or remaining <= 0:
                    return pending
                self._cond.wait(remaining)

    # --- queries -------------------------------------------------------------------------------
    def workers(self) -> dict[str, int]:
        """Joined workers and their announced sample counts."""
        with self._cond:
            return {w: r.n_samples for w, r in self._workers.items()}

    def active_workers(self) -> tuple[str, ...]:
        with self._cond:
            return tuple(sorted(w for w, r in self._workers.items() if r.active))

    def restore_workers(self, workers: dict[str, int]) -> None:
        """Re-register the workers of a resumed run; rounds wait for them to reconnect (until a
        deadline marks the absent ones inactive, as for any worker)."""
        with self._cond:
            for worker_id, n_samples in workers.items():
                self._workers[worker_id] = WorkerRecord(worker_id, n_samples)
            self._cond.notify_all()

    # --- helpers -------------------------------------------------------------------------------
    def _require_worker(self, worker_id: str) -> WorkerRecord:
        record = self._workers.get(worker_id)
        if record is None:
            raise RoundError(f"unknown worker '{worker_id}': it has not joined this run")
        return record

    def _owes_open_round(self, worker_id: str) -> bool:
        """True when the open round still lacks this worker's update although it asks for a later
        round: it submitted to a PS that was restarted from a checkpoint before that round closed,
        so it must redo the open round."""
        return self._open_round is not None and worker_id not in self._submissions

    def _all_active_submitted(self) -> bool:
        active = [w for w, r in self._workers.items() if r.active]
        return bool(active) and all(w in self._submissions for w in active)

    def _wrong_round_message(self, worker_id: str, round: int) -> str:
        if self._open_round is None:
            return f"worker '{worker_id}' submitted for round {round} but no round is open"
        when = "late" if round < self._open_round else "early"
        return f"worker '{worker_id}' submitted for round {round} ({when}); round {self._open_round} is open"


__all__ = ["RoundCoordinator", "RoundResult", "WorkerRecord"]
