"""The PS's training loop (a coroutine): publish, collect a round, release the sum, evaluate.

Per step ``t`` of the schedule (one round; a discarded round is retried under a new round number
with the same ``t``):

1. publish ``w``: ``Enc(w)`` re-encrypted with fresh randomness at scale ``frac_bits`` (encrypted
   mode) or float64 (aggregate mode), with each member's weight share;
2. collect the members' packed encrypted updates: the key holder folds each arriving chunk into a
   running sum and decrypts a chunk as soon as every expected member's part of it is in. The round's
   deadline starts when every expected member has the model; a member that misses it pauses the run
   (participation "all") or is left out (quorum, while at least ``min_workers`` remain);
3. the key holder releases the round (through the privacy mechanism): the new ``w``;
4. evaluate ``w`` on the validation set every ``eval_every`` steps and print the reference line;
   checkpoint.

With ``plan.standardize`` a moments round runs first: members send their row count, feature sums and
sums of squares; the key holder releases only their sum, from which the PS publishes the global
scaler.

The loop is transport-free: it talks to a :class:`~homolr.server.state.RunState`, so tests drive it
without a network. CPU work (encryption, decryption, evaluation, checkpoints) runs on ``executor``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from homolr.crypto import PackingSpec
from homolr.enclave.keyholder import (
    KeyHolder,
    Release,
    ReleaseMechanism,
    RoundSum,
    UpdateLayout,
    average_release,
)
from homolr.errors import (
    EncodingOverflowError,
    JoinTimeoutError,
    PolicyError,
    RunPausedError,
    TrainingFailedError,
)
from homolr.learning import Metrics, evaluate, learning_rate, scaler_warnings
from homolr.privacy import DpMechanism, PrivacyConfig, PrivacyLedger, admit_model
from homolr.protocol.messages import Outcome, Scaler, TrainingPlan
from homolr.server.clock import AwakeClock, Deadline
from homolr.server.reporting import Reporter, RoundRecord
from homolr.server.state import Published, RunState

FloatArray = NDArray[np.float64]
T = TypeVar("T")

#: Consecutive discarded rounds (overflowing sums) after which training fails.
MAX_DISCARDED_ROUNDS = 3
#: How often a wait that lasts says what it waits for.
WAIT_LOG_S = 10.0


@dataclass(frozen=True)
class TrainingState:
    """What a checkpoint needs to resume: the next round and step, the model, who trains it."""

    next_round: int
    step: int
    weights: FloatArray
    members: dict[str, int]
    scaler: Scaler | None


@dataclass(frozen=True)
class TrainingOutcome:
    weights: FloatArray
    steps: int
    outcome: Outcome
    reason: str
    final_metrics: Metrics
    seconds: float


@dataclass(frozen=True)
class Validation:
    """The PS's validation set with the bias column: ``Xb`` (raw units) and ``y``."""

    Xb: FloatArray
    y: NDArray[np.int64]

    def scaled(self, scaler: Scaler | None) -> FloatArray:
        if scaler is None:
            return self.Xb
        mean = np.asarray(scaler.mean, dtype=np.float64)
        scale = np.asarray(scaler.scale, dtype=np.float64)
        return np.hstack([self.Xb[:, :1], (self.Xb[:, 1:] - mean) / scale])


class WireCounter:
    """Bytes the PS sent and received, counted by the servicer, read per evaluation."""

    def __init__(self) -> None:
        self._bytes = 0

    def add(self, n: int) -> None:
        self._bytes += n

    def take(self) -> int:
        n, self._bytes = self._bytes, 0
        return n


def privacy_config(plan: TrainingPlan) -> PrivacyConfig | None:
    """The plan's differential-privacy settings (None without privacy)."""
    if plan.privacy_level == "none":
        return None
    return PrivacyConfig(
        level=plan.privacy_level,
        epsilon=plan.dp_epsilon or None,
        delta=plan.dp_delta,
        clip=plan.dp_clip,
        noise_multiplier=plan.dp_noise_multiplier,
        model_bound=plan.dp_model_bound or None,
        min_samples=plan.dp_min_samples or None,
    )


class Trainer:
    """Runs the rounds of one training plan against a :class:`RunState` and a key holder."""

    def __init__(
        self,
        plan: TrainingPlan,
        key_holder: KeyHolder,
        validation: Validation,
        state: RunState,
        reporter: Reporter,
        *,
        clock: AwakeClock,
        executor: Executor,
        idle: Executor,
        wire: WireCounter,
        join_timeout_s: float,
        run_id: str = "",
        start: TrainingState | None = None,
        on_round_end: Callable[[TrainingState], None] | None = None,
    ) -> None:
        self._plan = plan
        self._keys = key_holder
        self._validation = validation
        self._state = state
        self._reporter = reporter
        self._clock = clock
        self._executor = executor
        self._idle = idle
        self._wire = wire
        self._join_timeout_s = join_timeout_s
        self._run_id = run_id
        self._on_round_end = on_round_end
        self._round = 0 if start is None else start.next_round
        self._step = 0 if start is None else start.step
        self._weights = (
            np.array(start.weights, dtype=np.float64)
            if start is not None
            else np.full(plan.n_weights, plan.init_weight, dtype=np.float64)
        )
        if start is not None:
            state.scaler = start.scaler
            key_holder.resume_after(start.next_round - 1)
        self._first_round = True
        self._started = time.monotonic()
        self._privacy = privacy_config(plan)
        self._ledger = (
            None
            if self._privacy is None
            else PrivacyLedger(
                plan.dp_noise_multiplier, plan.dp_delta, budget=plan.dp_epsilon or None
            )
        )
        if self._ledger is not None:
            for step in range(self._step):  # a resumed run has spent its completed steps
                self._ledger.spend(step)

    @property
    def weights(self) -> FloatArray:
        return self._weights.copy()

    @property
    def step(self) -> int:
        return self._step

    @property
    def round(self) -> int:
        """The number the next round will have."""
        return self._round

    # ---------------------------------------------------------------------------------- run
    async def run(self) -> TrainingOutcome:
        """Train to the end of the plan (or its stopping rule).

        Raises JoinTimeoutError, RunPausedError or TrainingFailedError when the run cannot go on;
        cancelling the task stops it (the caller ends the run as 'stopped').
        """
        self._started = time.monotonic()
        await self._wait_for_members()
        if self._plan.standardize and self._state.scaler is None:
            await self._moments_round()
        reason = await self._train()
        final = await self._run(self._evaluate)
        return TrainingOutcome(
            self._weights.copy(),
            self._step,
            "completed",
            reason,
            final,
            time.monotonic() - self._started,
        )

    async def _train(self) -> str:
        plan = self._plan
        discarded = 0
        while self._step < plan.iterations:
            if self._budget_spent():
                assert self._ledger is not None
                return (
                    f"privacy budget spent after {self._step} steps: epsilon "
                    f"{self._ledger.epsilon:.4g} of {self._ledger.budget:g} (delta {plan.dp_delta:g})"
                )
            try:
                release = await self._training_round()
            except (EncodingOverflowError, PolicyError) as exc:
                discarded += 1
                self._reporter.message(
                    f"round {self._round - 1} discarded, model unchanged, step {self._step} will "
                    f"run again: {exc}"
                )
                if discarded >= MAX_DISCARDED_ROUNDS:
                    raise TrainingFailedError(
                        f"{discarded} consecutive rounds were discarded; last: {exc}"
                    ) from None
                self._checkpoint()  # the round number moved on: a resume must not reuse it
                continue
            discarded = 0
            previous = self._weights
            self._weights = (
                release.values if plan.mode == "encrypted" else previous + release.values
            )
            delta = float(np.max(np.abs(self._weights - previous)))
            step = self._step
            self._step += 1
            await self._report(step, len(release.contributors))
            self._checkpoint()
            if plan.tolerance > 0 and delta < plan.tolerance:
                return (
                    f"converged at step {step}: max weight change {delta:.3g} < tolerance "
                    f"{plan.tolerance:g}"
                )
        return f"completed {plan.iterations} iterations"

    # ------------------------------------------------------------------------------- joining
    async def _wait_for_members(self) -> None:
        plan, state = self._plan, self._state
        deadline = Deadline(self._clock, self._join_timeout_s)
        next_log = 0.0
        while True:
            joined = sorted(m for m, r in state.members.items() if r.connected)
            if len(joined) >= plan.expected_workers:
                self._reporter.message(f"{len(joined)} members joined: {', '.join(joined)}")
                return
            missing = state.missing_members() or [
                f"{plan.expected_workers - len(joined)} more (open membership)"
            ]
            if deadline.expired:
                if plan.participation == "quorum" and len(joined) >= plan.min_workers:
                    self._reporter.message(
                        f"join deadline passed; going on with the quorum {', '.join(joined)} "
                        f"(missing: {', '.join(missing)})"
                    )
                    return
                raise JoinTimeoutError(
                    f"only {len(joined)} of {plan.expected_workers} members joined within "
                    f"{self._join_timeout_s:g} s ({', '.join(joined) or 'none'}); missing: "
                    f"{', '.join(missing)}"
                )
            if deadline.elapsed() >= next_log:
                self._reporter.message(
                    f"waiting for members: {len(joined)} of {plan.expected_workers} joined"
                    f"{' (' + ', '.join(joined) + ')' if joined else ''}; missing: "
                    f"{', '.join(missing)}; {deadline.elapsed():.0f} s of {deadline.seconds:g} s"
                )
                next_log = deadline.elapsed() + WAIT_LOG_S
            self._reporter.advance(self._step, "waiting for members")
            await state.changed.wait(min(deadline.remaining(), 1.0))

    # -------------------------------------------------------------------------------- rounds
    def _expected(self) -> frozenset[str]:
        plan, state = self._plan, self._state
        if plan.participation == "all":
            return frozenset(state.members)
        return frozenset(m for m, r in state.members.items() if r.active)

    def _shares(self, expected: frozenset[str]) -> dict[str, float]:
        """Each member's weight share: 1 (equal weighting: the key holder divides by the number of
        contributors) or its fraction of the expected members' samples."""
        if self._plan.weighting == "equal":
            return dict.fromkeys(expected, 1.0)
        samples = self._state.sample_counts()
        total = sum(samples[m] for m in expected)
        return {m: samples[m] / total for m in expected}

    def _budget_spent(self) -> bool:
        """True when one more release would exceed the budget (the ledger's own rule)."""
        ledger = self._ledger
        if ledger is None or ledger.budget is None:
            return False
        return ledger.epsilon_after(ledger.releases + 1) > ledger.budget

    def _release_mechanism(self) -> ReleaseMechanism:
        """The weighted average, through differential-privacy noise when the plan has it. The
        noise is added to the decrypted sum inside the key holder's release, calibrated to and
        labelled by the members actually in the sum: nothing noiseless leaves the key holder, and a
        replay of the round with another set of members gets independent noise."""
        config, ledger, plan = self._privacy, self._ledger, self._plan
        if config is None or ledger is None:
            return average_release
        round_, step, keys = self._round, self._step, self._keys

        def release(sums: FloatArray, totals: FloatArray, members: frozenset[str]) -> FloatArray:
            source = keys.noise_source(round_, step, members)
            if config.level == "member":
                mechanism = DpMechanism.for_member_round(
                    config,
                    plan.dp_noise_multiplier,
                    n_members=len(members),
                    frac_bits=plan.frac_bits,
                    source=source,
                )
            else:
                mechanism = DpMechanism.for_record_round(
                    config,
                    plan.dp_noise_multiplier,
                    lr=learning_rate(plan.schedule, plan.learning_rate, step),
                    alpha=plan.alpha,
                    n_members=len(members),
                    n_weights=plan.n_weights,
                    frac_bits=plan.frac_bits,
                    source=source,
                )
            ledger.spend(round_)
            released: FloatArray = mechanism.release(sums) / totals
            return released

        return release

    def privacy_summary(self) -> dict[str, object]:
        """What model.json records about differential privacy (empty without it)."""
        config, ledger = self._privacy, self._ledger
        if config is None or ledger is None:
            return {}
        return {
            "privacy": {
                "level": config.level,
                "mechanism": "Gaussian noise added to the decrypted sum inside the key holder",
                "clip": config.clip,
                "model_bound": config.model_bound,
                "min_samples": config.min_samples,
                "noise_multiplier": ledger.noise_multiplier,
                "rounds": ledger.releases,
                "epsilon": ledger.epsilon,
                "delta": ledger.delta,
                "accountant": "dp_accounting Gaussian (T rounds = multiplier / sqrt(T))",
            }
        }

    def _layout(self, length: int, frac_bits: int) -> UpdateLayout:
        plan = self._plan
        return UpdateLayout(
            length=length,
            frac_bits=frac_bits,
            spec=PackingSpec(value_bits=plan.value_bits, headroom_bits=plan.headroom_bits),
            chunk_ciphertexts=plan.chunk_ciphertexts,
            n_bits=self._keys.public_key.n_bits,
        )

    async def _training_round(self) -> Release:
        plan = self._plan
        expected = self._expected()
        weights = self._shares(expected)
        mechanism = self._release_mechanism()
        if self._privacy is not None:
            self._weights = admit_model(self._privacy, self._weights, plan.frac_bits)
        if plan.mode == "encrypted":
            ciphertexts = await self._run(self._keys.encrypt_model, self._weights, plan.frac_bits)
            payload = ciphertexts.to_bytes()
        else:
            payload = self._weights.astype("<f8").tobytes()
        layout = self._layout(plan.n_weights, plan.update_frac_bits)
        published = Published(
            round=self._round,
            step=self._step,
            kind="train",
            encrypted=plan.mode == "encrypted",
            length=plan.n_weights,
            frac_bits=plan.frac_bits,
            payload=payload,
            weights=weights,
        )
        return await self._round_trip(published, layout, expected, mechanism)

    async def _moments_round(self) -> None:
        plan = self._plan
        moments = plan.moments_plan
        expected = self._expected()
        layout = self._layout(plan.moments_length, moments.frac_bits)
        published = Published(
            round=self._round,
            step=self._step,
            kind="moments",
            encrypted=False,
            length=0,
            frac_bits=moments.frac_bits,
            payload=b"",
            weights=dict.fromkeys(expected, 1.0),
        )
        self._reporter.message(f"round {self._round}: statistics round (standardize = true)")
        release = await self._round_trip(published, layout, expected, lambda sums, *_: sums)
        scaler = moments.scaler(release.values, contributions=len(release.contributors))
        self._state.scaler = Scaler(tuple(scaler.mean.tolist()), tuple(scaler.scale.tolist()))
        self._reporter.message(
            f"global scaler from {round(float(release.values[0])):,} rows of "
            f"{len(release.contributors)} members published"
        )
        for warning in scaler_warnings(scaler, plan.feature_names):
            self._reporter.message(f"warning: {warning}")
        self._checkpoint()

    async def _round_trip(
        self,
        published: Published,
        layout: UpdateLayout,
        expected: frozenset[str],
        mechanism: ReleaseMechanism,
    ) -> Release:
        """Open, publish and collect one round; return the key holder's release."""
        round_sum = self._keys.open_round(
            published.round, layout, published.weights, expected, mechanism
        )
        self._round += 1
        self._state.publish(published, round_sum)
        self._reporter.advance(self._step, f"round {published.round}: waiting for members")
        if self._plan.mode == "encrypted" and published.kind == "train":
            # the next model's encryption randomness, while the members compute; never awaited:
            # whatever is not ready when the next model is encrypted is drawn then
            self._idle.submit(self._keys.prepare_encryptions, self._plan.n_weights)
        try:
            release = await self._collect(round_sum, published, expected)
        finally:
            self._state.close_round()
        self._first_round = False
        return release

    async def _collect(
        self, round_sum: RoundSum, published: Published, expected: frozenset[str]
    ) -> Release:
        plan, state = self._plan, self._state
        allowance = plan.first_round_timeout_s if self._first_round else plan.round_timeout_s
        fetch = Deadline(self._clock, allowance)
        answer: Deadline | None = None
        decrypting: dict[int, asyncio.Future[None]] = {}
        next_log = WAIT_LOG_S
        r = published.round
        while True:
            for chunk in round_sum.ready_chunks():
                if chunk not in decrypting:
                    decrypting[chunk] = self._run(round_sum.decrypt_chunk, chunk)
                    decrypting[chunk].add_done_callback(lambda _: state.changed.notify())
            for future in decrypting.values():
                if future.done() and future.exception() is not None:
                    await _drain(decrypting)
                    future.result()  # raises the overflow / policy error
            complete = round_sum.complete_members()
            if expected <= complete and len(decrypting) == layout_chunks(round_sum):
                await asyncio.gather(*decrypting.values())
                return round_sum.release()
            if answer is None:
                fetched = {m for m in expected if state.members[m].fetched_round >= r}
                if fetched == expected:
                    answer = Deadline(self._clock, allowance)
                elif fetch.expired:
                    answer = Deadline(self._clock, 0.0)
            if answer is not None and answer.expired:
                break
            waited = fetch.elapsed() if answer is None else answer.elapsed()
            if waited >= next_log:
                missing = sorted(expected - complete)
                self._reporter.message(
                    f"round {r}: waiting for updates from {', '.join(missing)}; "
                    f"{waited:.0f} s of {allowance:g} s"
                )
                next_log = waited + WAIT_LOG_S
            left = fetch.remaining() if answer is None else answer.remaining()
            await state.changed.wait(min(max(left, 0.01), 1.0))
        return await self._after_deadline(round_sum, expected, decrypting, allowance)

    async def _after_deadline(
        self,
        round_sum: RoundSum,
        expected: frozenset[str],
        decrypting: dict[int, asyncio.Future[None]],
        allowance: float,
    ) -> Release:
        plan, state = self._plan, self._state
        r = round_sum.round
        complete = round_sum.complete_members()
        missing = sorted(expected - complete)
        round_sum.close()
        if plan.participation == "all":
            await _drain(decrypting)
            raise RunPausedError(
                f"round {r}: no complete update from {', '.join(missing)} within {allowance:g} s; "
                "participation 'all' needs every member, so the run is paused (nothing of this "
                "round was released). Resume with 'homolr ps --resume' when the member is back."
            )
        if len(complete) < plan.min_workers:
            await _drain(decrypting)
            raise RunPausedError(
                f"round {r}: only {len(complete)} complete update(s) "
                f"({', '.join(sorted(complete)) or 'none'}) within {allowance:g} s; min_workers is "
                f"{plan.min_workers}. The run is paused; resume with 'homolr ps --resume'."
            )
        for member in missing:
            record = state.members[member]
            if record.active:
                self._reporter.message(
                    f"member {member} missed round {r}; later rounds go on without it until it "
                    "returns"
                )
                record.active = False
        for chunk in round_sum.ready_chunks():
            if chunk not in decrypting:
                decrypting[chunk] = self._run(round_sum.decrypt_chunk, chunk)
        await asyncio.gather(*decrypting.values())
        return round_sum.release()

    # ------------------------------------------------------------------------------ reporting
    def _evaluate(self) -> Metrics:
        v = self._validation
        return evaluate(self._weights, v.scaled(self._state.scaler), v.y)

    async def _report(self, step: int, n_members: int) -> None:
        plan = self._plan
        self._reporter.advance(step + 1, f"step {step}")
        if step % plan.eval_every != 0 and step != plan.iterations - 1:
            return
        metrics = await self._run(self._evaluate)
        record = RoundRecord(
            run_id=self._run_id,
            iteration=step,
            acc=metrics.accuracy,
            loss=metrics.loss,
            auc=metrics.auc,
            seconds=time.monotonic() - self._started,
            bytes=self._wire.take(),
            workers=n_members,
            epsilon=None if self._ledger is None else self._ledger.epsilon,
        )
        self._reporter.evaluation(step, metrics, record)

    def _checkpoint(self) -> None:
        if self._on_round_end is not None:
            self._on_round_end(
                TrainingState(
                    self._round,
                    self._step,
                    self._weights.copy(),
                    self._state.sample_counts(),
                    self._state.scaler,
                )
            )

    def _run(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        return asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)


def layout_chunks(round_sum: RoundSum) -> int:
    return round_sum.layout.n_chunks


async def _drain(futures: dict[int, asyncio.Future[None]]) -> None:
    """Wait for started decryptions to end (their results stay inside the key holder)."""
    await asyncio.gather(*futures.values(), return_exceptions=True)


__all__ = [
    "MAX_DISCARDED_ROUNDS",
    "Trainer",
    "TrainingOutcome",
    "TrainingState",
    "Validation",
    "WireCounter",
]
