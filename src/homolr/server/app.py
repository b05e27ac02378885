"""The PS process: wire the key holder, the run state, the servicer and the training loop.

This is the I/O shell around the pure parts. It reads the validation set, starts a ``grpc.aio``
server (one event loop: a waiting call holds no thread), runs the training coroutine, and ends the
run with an honest outcome and exit status:

* completed (its plan or stopping rule): ``model.json`` and ``validation_scores.csv`` are written,
  exit 0;
* paused (a member missed a round, quorum lost), join timeout, failed: the sealed checkpoint stays,
  no model is written, exit 5 / 4 / 9;
* SIGINT / SIGTERM: training stops at once (a second signal ends the process immediately), no model
  is written, exit 130 / 143.

In every case the members are told how the run ended before the server stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from grpc import aio

from homolr.crypto import PrivateKey
from homolr.enclave.keyholder import KeyHolder, ParticipationRule
from homolr.enclave.sealing import SealedStore
from homolr.enclave.tls import ServerIdentity
from homolr.errors import (
    ConfigError,
    ExitCode,
    HomolrError,
    Interrupted,
    JoinTimeoutError,
    RunPausedError,
    TrainingFailedError,
)
from homolr.files import write_atomically
from homolr.learning import Dataset, add_bias, load_csv, sigmoid
from homolr.learning import Scaler as LearnedScaler
from homolr.protocol.messages import PROTOCOL_VERSION, Outcome, Scaler, ServerInfo, TrainingPlan
from homolr.protocol.serde import CHUNK_BYTES
from homolr.protocol.service import add_servicer
from homolr.server.checkpoint import Checkpoint, check_same_plan, save_checkpoint
from homolr.server.clock import AwakeClock
from homolr.server.memory import tune_allocator
from homolr.server.reporting import Reporter
from homolr.server.security import ServerSecurity
from homolr.server.servicer import ServerLimits, Servicer
from homolr.server.state import (
    FederationMembership,
    Finish,
    Membership,
    OpenMembership,
    RunState,
)
from homolr.server.training import (
    Trainer,
    TrainingOutcome,
    TrainingState,
    Validation,
    WireCounter,
    privacy_config,
)

DEV_MODE_BANNER = (
    "*** DEVELOPMENT MODE: this PS is NOT running in an attested SGX enclave (--attestation none). "
    "Workers cannot verify whom they encrypt for. Never use this with real data. ***"
)
#: Seconds the PS keeps answering after the end, so members learn how the run ended (after a
#: signal: briefly, so that the PS still stops within a few seconds).
FINISH_NOTICE_S = 10.0
FINISH_NOTICE_AFTER_SIGNAL_S = 1.0
#: A whole RPC message: the largest data message plus room for the header.
MESSAGE_MARGIN = 64 * 1024
#: Threads of the ``homolr-work`` executor: chunk decryptions of one round may overlap.
WORK_THREADS = 2
ENCLAVE_THREADS = 1 + 1 + WORK_THREADS + 1
"""Threads the PS itself runs at most, whatever the number of members: the main thread (the
asyncio event loop: every RPC, the training coroutine, the awake-clock ticker) and the threads of
the three executors of :func:`_serve` (``homolr-fold``, one: validating and folding received
ciphertexts; ``homolr-work``, :data:`WORK_THREADS`: encryption, decryption, evaluation;
``homolr-idle``, one: the next model's encryption randomness, never awaited). Executor threads
start on first use. Waiting calls hold no thread. Not counted: gRPC's own threads (grpc.aio's completion-queue poller, the C core's
event-engine pool, timer and lifeguard), rich's refresh thread (only on a terminal) and Gramine's
helpers; deploy/gramine/README.md adds them up for ``sgx.max_threads``, and
tests/enclave/test_gramine_manifest.py counts the threads of a running PS against this number."""


@dataclass(frozen=True)
class PsConfig:
    plan: TrainingPlan
    validate_set: Path
    host: str = "127.0.0.1"
    port: int = 50051
    out_dir: Path | None = None
    port_file: Path | None = None
    join_timeout_s: float = 300.0
    members: frozenset[str] | None = None  # the federation's member ids; None = open membership
    federation: bytes = b""  # canonical federation document (ServerInfo.federation)
    federation_hash: bytes = b""
    federation_name: str = ""
    label: str = "y"
    limits: ServerLimits = field(default_factory=ServerLimits)


@dataclass(frozen=True)
class PsKeys:
    """The PS's secrets for this run: fresh, or restored from the sealed checkpoint."""

    private_key: PrivateKey
    run_id: str
    tls_identity: ServerIdentity | None = None


def plan_for(plan: TrainingPlan, validation: Dataset) -> TrainingPlan:
    """The plan with the validation set's feature count and names filled in, validated.

    Development runs with ``--standardize`` and no federation file take the features' bounds from
    the validation set (4 x its largest absolute value, rounded up to a power of two); a federation
    file states them (``validation.bounds``).
    """
    bounds = plan.feature_bounds
    if plan.standardize and not bounds:
        largest = np.max(np.abs(validation.X), axis=0)
        bounds = tuple(float(2.0 ** np.ceil(np.log2(max(4 * m, 1e-300)))) for m in largest)
    return replace(
        plan,
        n_features=validation.n_features,
        feature_names=tuple(validation.feature_names),
        feature_bounds=bounds,
    ).validate()


def server_options(plan: TrainingPlan, ciphertext_bytes: int) -> list[tuple[str, int]]:
    """gRPC's own limits: message sizes from the plan, streams per connection, keepalive
    enforcement (a client may not ping more often than every 10 s without data), idle
    connections closed after 5 minutes."""
    receive = plan.chunk_ciphertexts * ciphertext_bytes + MESSAGE_MARGIN
    return [
        ("grpc.max_receive_message_length", receive),
        ("grpc.max_send_message_length", CHUNK_BYTES + MESSAGE_MARGIN),
        ("grpc.max_concurrent_streams", 16),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.http2.max_ping_strikes", 2),
        ("grpc.max_connection_idle_ms", 300_000),
        # bounded per-stream buffering: without it gRPC grows each stream's window (BDP probing)
        # and the PS's memory grows with the number of members streaming at once
        ("grpc.http2.bdp_probe", 0),
        ("grpc.http2.lookahead_bytes", 256 * 1024),
        ("grpc.so_reuseport", 0),
    ]


def max_concurrent_rpcs(expected_members: int) -> int:
    """Calls served at once: two per member plus generous room for key exchanges; beyond it gRPC
    answers RESOURCE_EXHAUSTED. Waiting calls hold no thread, so this bounds memory only."""
    return 256 + 4 * expected_members


def save_model(
    out_dir: Path,
    outcome: TrainingOutcome,
    plan: TrainingPlan,
    key_bits: int,
    run_id: str,
    extra: Mapping[str, object] | None = None,
    scaler: Scaler | None = None,
) -> Path:
    """``model.json``: the weights in training space with the scaler, so it scores raw data."""
    from homolr.learning.model import LogisticModel  # scikit-learn: loaded once, at the end

    model = LogisticModel.from_weights(
        outcome.weights,
        feature_names=list(plan.feature_names),
        scaler=(
            None if scaler is None else LearnedScaler(np.array(scaler.mean), np.array(scaler.scale))
        ),
        metadata={
            "run_id": run_id,
            "mode": plan.mode,
            "key_bits": key_bits,
            "rounds": outcome.steps,
            "finished": outcome.reason,
            "validation": {
                "accuracy": outcome.final_metrics.accuracy,
                "loss": outcome.final_metrics.loss,
                "auc": outcome.final_metrics.auc,
            },
            "plan": {k: v for k, v in plan.__dict__.items() if k != "feature_names"},
            **(extra or {}),
        },
    )
    path = out_dir / "model.json"
    model.save(path)
    return path


def save_validation_scores(out_dir: Path, weights: np.ndarray, validation: Validation) -> Path:
    """``y,probability`` of the validation rows under the final model (for ROC and calibration)."""
    p = sigmoid(validation.Xb @ weights)
    rows = ["y,probability", *(f"{int(y)},{q:.17g}" for y, q in zip(validation.y, p, strict=True))]
    path = out_dir / "validation_scores.csv"
    write_atomically(path, ("\n".join(rows) + "\n").encode(), mode=0o644)
    return path


def run_ps(
    config: PsConfig,
    keys: PsKeys,
    security: ServerSecurity,
    *,
    store: SealedStore | None = None,
    resume: Checkpoint | None = None,
) -> int:
    """Serve one training run to its end; return the exit status (see :class:`ExitCode`)."""
    log = _stderr_log
    if security.attestation_type == "none":
        log(DEV_MODE_BANNER)
    tune_allocator()
    validation_set = load_csv(
        config.validate_set, features=config.plan.feature_names or None, label=config.label
    )
    plan = plan_for(config.plan, validation_set)
    if resume is not None:
        check_same_plan(resume.plan, plan)
        log(f"resuming run {keys.run_id} at round {resume.next_round} from the sealed checkpoint")
    validation = Validation(add_bias(validation_set.X), validation_set.y)
    privacy_config(plan)  # refuse unusable privacy settings before listening
    return asyncio.run(_serve(config, keys, security, plan, validation, store, resume, log))


async def _serve(
    config: PsConfig,
    keys: PsKeys,
    security: ServerSecurity,
    plan: TrainingPlan,
    validation: Validation,
    store: SealedStore | None,
    resume: Checkpoint | None,
    log: Callable[[str], None],
) -> int:
    public_key = keys.private_key.public_key
    membership: Membership = (
        OpenMembership(plan.expected_workers)
        if config.members is None
        else FederationMembership(config.members)
    )
    # Open membership (development): the ids are whoever joins, so "all" is a quorum of everyone.
    rule = ParticipationRule(
        plan.participation if config.members is not None else "quorum",
        config.members,
        plan.required_members,
    )
    key_holder = KeyHolder(keys.private_key, rule)
    state = RunState(plan, membership)
    if resume is not None:
        state.restore(resume.workers)
    info = ServerInfo(
        protocol_version=PROTOCOL_VERSION,
        run_id=keys.run_id,
        public_key=public_key.to_bytes(),
        plan=plan,
        attestation_type=security.attestation_type,
        quote=security.quote,
        tls_certificate=security.tls_certificate,
        federation=config.federation,
    )
    wire = WireCounter()
    fold_executor = ThreadPoolExecutor(1, thread_name_prefix="homolr-fold")
    # chunk decryptions of one round may overlap (the process pool keeps every core busy)
    work_executor = ThreadPoolExecutor(WORK_THREADS, thread_name_prefix="homolr-work")
    idle_executor = ThreadPoolExecutor(1, thread_name_prefix="homolr-idle")
    servicer = Servicer(
        info=info,
        state=state,
        fold_executor=fold_executor,
        authenticate=security.authenticate,
        limits=config.limits,
        on_bytes=wire.add,
    )
    servicer.set_ciphertext_bytes(public_key.ciphertext_bytes)
    server = aio.server(
        options=server_options(plan, public_key.ciphertext_bytes),
        maximum_concurrent_rpcs=max_concurrent_rpcs(plan.expected_workers),
    )
    add_servicer(servicer, server)
    port = _bind(server, config.host, config.port, security)
    await server.start()
    if config.port_file is not None:
        write_atomically(config.port_file, f"{port}\n".encode(), mode=0o644)
    log(
        f"listening on {config.host}:{port} ({'insecure' if security.credentials is None else 'mTLS'}); "
        f"run {keys.run_id}; {plan.mode} mode; participation {plan.participation}; "
        f"{plan.expected_workers} members"
    )
    clock = AwakeClock()
    clock.start()
    reporter = Reporter(plan.iterations, config.out_dir)
    trainer = Trainer(
        plan,
        key_holder,
        validation,
        state,
        reporter,
        clock=clock,
        executor=work_executor,
        idle=idle_executor,
        wire=wire,
        join_timeout_s=config.join_timeout_s,
        run_id=keys.run_id,
        start=None if resume is None else _start_state(resume),
        on_round_end=(
            None if store is None else _checkpointer(store, keys, plan, config.federation_hash)
        ),
    )
    task = asyncio.get_running_loop().create_task(trainer.run(), name="training")
    signals = _SignalGuard(task, log)
    try:
        outcome, finish, code = await _finish_run(task, trainer, signals)
        signals.completed = outcome is not None
        state.end(finish)
        reporter.advance(trainer.step, finish.outcome)
        reporter.message(f"training {finish.outcome}: {finish.reason}")
        await _notify_members(state, signals, reporter)
    finally:
        reporter.close()
        await servicer.close()  # streams still waiting (an attacker's) end before the stop
        await server.stop(grace=1.0)
        await clock.stop()
        for executor in (fold_executor, work_executor, idle_executor):
            executor.shutdown(wait=False, cancel_futures=True)
        signals.remove()  # last: a second signal during the grace still exits with its status
    if signals.received is not None and outcome is not None:
        code = int(Interrupted(signals.received).exit_code)  # completed, then interrupted
    if outcome is None:
        log(f"no model written: the run {finish.outcome} ({finish.reason})")
        return code
    if config.out_dir is not None:
        extra: dict[str, object] = dict(trainer.privacy_summary())
        if config.federation_hash:
            extra["federation"] = {
                "name": config.federation_name,
                "hash": config.federation_hash.hex(),
                "members": sorted(config.members or ()),
            }
        path = save_model(
            config.out_dir, outcome, plan, public_key.n_bits, keys.run_id, extra, state.scaler
        )
        save_validation_scores(
            config.out_dir, outcome.weights, replace(validation, Xb=validation.scaled(state.scaler))
        )
        log(f"model written to {path}")
    m = outcome.final_metrics
    log(
        f"done in {outcome.seconds:.1f} s: {outcome.steps} steps, validation acc {m.accuracy:.4f} "
        f"loss {m.loss:.4f} auc {m.auc:.4f}"
    )
    return code


async def _finish_run(
    task: asyncio.Task[TrainingOutcome], trainer: Trainer, signals: _SignalGuard
) -> tuple[TrainingOutcome | None, Finish, int]:
    """Wait for the training task; turn how it ended into (outcome, finish notice, exit code)."""
    outcome: Outcome
    try:
        result = await task
    except asyncio.CancelledError:
        if signals.received is None:
            raise
        error = Interrupted(signals.received)
        return None, Finish(trainer.round, "stopped", str(error)), int(error.exit_code)
    except (JoinTimeoutError, RunPausedError) as exc:
        outcome = "paused"
        return None, Finish(trainer.round, outcome, str(exc)), int(exc.exit_code)
    except (TrainingFailedError, HomolrError) as exc:
        return None, Finish(trainer.round, "failed", str(exc)), int(exc.exit_code)
    return result, Finish(trainer.round, "completed", result.reason), int(ExitCode.OK)


async def _notify_members(state: RunState, signals: _SignalGuard, reporter: Reporter) -> None:
    """Keep serving until every active member has seen the end (bounded; cut short by a signal,
    whenever it comes)."""
    give_up = time.monotonic() + FINISH_NOTICE_S
    while state.members_without_finish() and time.monotonic() < give_up:
        if signals.received_at is not None:
            give_up = min(give_up, signals.received_at + FINISH_NOTICE_AFTER_SIGNAL_S)
        await state.changed.wait(max(0.0, min(0.2, give_up - time.monotonic())))
    pending = state.members_without_finish()
    if pending and signals.received is None:
        reporter.message(f"members that did not collect the end notice: {', '.join(pending)}")


class _SignalGuard:
    """SIGINT/SIGTERM cancel the training task (the run ends as 'stopped'); a second signal ends
    the process at once with the signal's exit status."""

    def __init__(self, task: asyncio.Task[TrainingOutcome], log: Callable[[str], None]) -> None:
        self.received: int | None = None
        self.received_at: float | None = None
        self.completed = False  # training has completed: a signal only cuts the end notice short
        self._task = task
        self._log = log
        self._loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._loop.add_signal_handler(signum, self._handle, signum)

    def _handle(self, signum: int) -> None:
        if self.received is not None:
            self._log(f"second signal ({signal.Signals(signum).name}): exiting now")
            os._exit(int(Interrupted(signum).exit_code))
        self.received, self.received_at = signum, time.monotonic()
        name = signal.Signals(signum).name
        if self.completed:
            self._log(
                f"received {name}: training has completed; writing the model and exiting "
                "(send it again to exit at once)"
            )
            return
        self._log(f"received {name}: stopping; no model is written (send it again to exit at once)")
        self._task.cancel()

    def remove(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(Exception):
                self._loop.remove_signal_handler(signum)


def _bind(server: aio.Server, host: str, port: int, security: ServerSecurity) -> int:
    address = f"{host}:{port}"
    try:
        bound = (
            server.add_insecure_port(address)
            if security.credentials is None
            else server.add_secure_port(address, security.credentials)
        )
    except RuntimeError:
        bound = 0
    if bound == 0:
        raise ConfigError(
            f"cannot listen on {address}: the port is in use or the address is not this host's "
            "(choose another with --port, or --port 0 for any free port)"
        )
    return bound


def _start_state(resume: Checkpoint) -> TrainingState:
    return TrainingState(
        resume.next_round, resume.step, resume.weights, dict(resume.workers), resume.scaler
    )


def _checkpointer(
    store: SealedStore, keys: PsKeys, plan: TrainingPlan, federation_hash: bytes
) -> Callable[[TrainingState], None]:
    def save(state: TrainingState) -> None:
        save_checkpoint(
            store,
            Checkpoint(
                private_key=keys.private_key,
                run_id=keys.run_id,
                plan=plan,
                next_round=state.next_round,
                step=state.step,
                weights=state.weights,
                workers=state.members,
                scaler=state.scaler,
                tls_identity=keys.tls_identity,
                federation_hash=federation_hash,
            ),
        )

    return save


def _stderr_log(text: str) -> None:
    print(f"homolr ps: {text}", file=sys.stderr, flush=True)


__all__ = [
    "DEV_MODE_BANNER",
    "ENCLAVE_THREADS",
    "WORK_THREADS",
    "PsConfig",
    "PsKeys",
    "plan_for",
    "run_ps",
    "save_model",
    "save_validation_scores",
    "server_options",
]
