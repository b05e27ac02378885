"""The PS's training loop: publish the global model, collect a round, decrypt the sum, evaluate.

Per round ``r`` (0-based, also the iteration index ``t`` of the learning-rate schedule):

1. publish ``w`` — as ``Enc(w)`` re-encrypted with fresh randomness at scale ``frac_bits``
   (encrypted mode) or as float64 (aggregate mode);
2. collect the workers' packed encrypted updates until all active workers submitted or the round
   deadline passed; fewer than ``min_workers`` ends training with the last good model;
3. the key holder sums them homomorphically and decrypts only the sum; the PS averages it into the
   new ``w``;
4. evaluate ``w`` on the validation set every ``eval_every`` iterations and print the reference line.

The loop is transport-free: it talks to a :class:`~homolr.server.rounds.RoundCoordinator`, so tests
drive it without a network.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from homolr.crypto import PackedVector
from homolr.enclave.keyholder import KeyHolder
from homolr.errors import EncodingOverflowError, PolicyError
from homolr.learning import Dataset, Metrics, add_bias, evaluate
from homolr.protocol.messages import GlobalModel, ModelHeader, TrainingPlan
from homolr.server.aggregation import global_weights
from homolr.server.reporting import Reporter, RoundRecord
from homolr.server.rounds import RoundCoordinator


@dataclass(frozen=True)
class TrainingState:
    """What a checkpoint needs to resume: the model after ``next_round`` rounds and who trained it."""

    next_round: int
    weights: NDArray[np.float64]
    workers: dict[str, int]


@dataclass(frozen=True)
class TrainingOutcome:
    weights: NDArray[np.float64]
    rounds: int
    reason: str
    final_metrics: Metrics
    seconds: float


class WireCounter:
    """Bytes the PS sent and received, counted by the servicer, read per round by the loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bytes = 0

    def add(self, n: int) -> None:
        with self._lock:
            self._bytes += n

    def take(self) -> int:
        with self._lock:
            n, self._bytes = self._bytes, 0
            return n


class Trainer:
    """Runs the rounds of one training plan against a coordinator and a key holder."""

    def __init__(
        self,
        plan: TrainingPlan,
        key_holder: KeyHolder,
        validation: Dataset,
        coordinator: RoundCoordinator[PackedVector],
        reporter: Reporter,
        *,
        stop: threading.Event,
        wire: WireCounter,
        join_timeout_s: float = 300.0,
        start_round: int = 0,
        start_weights: NDArray[np.float64] | None = None,
        on_round_end: Callable[[TrainingState], None] | None = None,
    ) -> None:
        self._plan = plan
        self._keys = key_holder
        self._Xb = add_bias(validation.X)
        self._y = validation.y
        self._coordinator = coordinator
        self._reporter = reporter
        self._stop = stop
        self._wire = wire
        self._join_timeout_s = join_timeout_s
        self._start_round = start_round
        self._weights = (
            np.array(start_weights, dtype=np.float64)
            if start_weights is not None
            else np.full(plan.n_weights, plan.init_weight, dtype=np.float64)
        )
        self._on_round_end = on_round_end
        self._started = time.monotonic()

    @property
    def weights(self) -> NDArray[np.float64]:
        """The last good global model (bias first)."""
        return self._weights.copy()

    def run(self) -> TrainingOutcome:
        started = self._started = time.monotonic()
        reason, rounds = self._train()
        self._reporter.advance(rounds, "finished")
        self._coordinator.finish(reason, rounds)
        self._reporter.message(f"training finished after {rounds} rounds: {reason}")
        pending = self._coordinator.wait_finish_seen(timeout=min(10.0, self._plan.round_timeout_s))
        if pending:
            self._reporter.message(
                f"workers that did not collect the end notice: {', '.join(pending)}"
            )
        final = evaluate(self._weights, self._Xb, self._y)
        return TrainingOutcome(
            self._weights.copy(), rounds, reason, final, time.monotonic() - started
        )

    def _train(self) -> tuple[str, int]:
        plan = self._plan
        joined = self._coordinator.wait_for_workers(plan.expected_workers, self._join_timeout_s)
        if self._stop.is_set():
            return "stopped by signal before training started", self._start_round
        if joined < plan.min_workers:
            return (
                f"only {joined} worker(s) joined within {self._join_timeout_s:.0f} s; "
                f"min_workers is {plan.min_workers}",
                self._start_round,
            )
        self._reporter.message(f"{joined} workers joined: {', '.join(self._coordinator.workers())}")
        for r in range(self._start_round, plan.iterations):
            outcome = self._round(r)
            if outcome is not None:
                return outcome, r
        return f"completed {plan.iterations} iterations", plan.iterations

    def _round(self, r: int) -> str | None:
        """Run round ``r``; return a reason to stop, or None to go on."""
        plan = self._plan
        self._coordinator.publish(self._model_message(r))
        self._reporter.advance(r, f"round {r}: waiting for workers")
        if plan.mode == "encrypted":  # while the workers compute: randomness of the next Enc(w)
            self._keys.prepare_encryptions(plan.n_weights)
        result = self._coordinator.collect(plan.round_timeout_s, stop=self._stop)
        if self._stop.is_set():
            return "stopped by signal"
        if result.missing:
            self._reporter.message(f"round {r}: no update from {', '.join(result.missing)} in time")
        if len(result.submissions) < plan.min_workers:
            return (
                f"round {r} got {len(result.submissions)} update(s) before its "
                f"{plan.round_timeout_s:g} s deadline; min_workers is {plan.min_workers}"
            )
        try:
            aggregate = self._keys.decrypt_sum(result.submissions)
        except (EncodingOverflowError, PolicyError) as exc:
            self._reporter.message(f"round {r} discarded, model unchanged: {exc}")
            return None
        new = global_weights(
            aggregate.total, aggregate.workers, plan.weighting, self._coordinator.workers()
        )
        delta = float(np.max(np.abs(new - self._weights)))
        self._weights = new
        self._report(r, len(aggregate.workers))
        if self._on_round_end is not None:
            self._on_round_end(TrainingState(r + 1, new.copy(), self._coordinator.workers()))
        if plan.tolerance > 0 and delta < plan.tolerance:
            return f"converged at iteration {r}: max weight change {delta:.3g} < tolerance {plan.tolerance:g}"
        return None

    def _model_message(self, r: int) -> GlobalModel:
        plan = self._plan
        if plan.mode == "encrypted":
            payload = self._keys.encrypt_model(self._weights, plan.frac_bits).to_bytes()
            header = ModelHeader(
                round=r, encrypted=True, length=plan.n_weights, frac_bits=plan.frac_bits
            )
        else:
            payload = self._weights.astype("<f8").tobytes()
            header = ModelHeader(round=r, encrypted=False, length=plan.n_weights)
        return GlobalModel(header, payload)

    def _report(self, r: int, n_workers: int) -> None:
        plan = self._plan
        last = r == plan.iterations - 1
        if r % plan.eval_every != 0 and not last:
            return
        metrics = evaluate(self._weights, self._Xb, self._y)
        record = RoundRecord(
            iteration=r,
            acc=metrics.accuracy,
            loss=metrics.loss,
            auc=metrics.auc,
            seconds=time.monotonic() - self._started,
            bytes=self._wire.take(),
            workers=n_workers,
        )
        self._reporter.evaluation(r, metrics, record)


__all__ = ["Trainer", "TrainingOutcome", "TrainingState", "WireCounter"]
