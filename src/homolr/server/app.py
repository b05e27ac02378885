"""The PS process: wire the key holder, the round state, the servicer and the training loop.

This is the I/O shell around the pure parts: it reads the validation set, creates (or restores) the
key pair, starts the gRPC server, installs SIGTERM/SIGINT handlers that stop training gracefully, and
writes ``model.json`` with the last good model when training ends, however it ends.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType

import grpc

from homolr.crypto import PackedVector, PrivateKey
from homolr.enclave.keyholder import KeyHolder
from homolr.enclave.sealing import SealedStore
from homolr.enclave.tls import ServerIdentity
from homolr.learning import Dataset, LogisticModel, load_csv
from homolr.protocol.messages import PROTOCOL_VERSION, ServerInfo, TrainingPlan
from homolr.protocol.service import add_servicer
from homolr.server.checkpoint import Checkpoint, check_same_plan, save_checkpoint
from homolr.server.reporting import Reporter
from homolr.server.rounds import RoundCoordinator
from homolr.server.security import ServerSecurity
from homolr.server.servicer import Servicer
from homolr.server.training import Trainer, TrainingOutcome, TrainingState, WireCounter
from homolr.worker.transport import MAX_MESSAGE_BYTES

#: Fewest gRPC handler threads; the Gramine manifest's sgx.max_threads is sized for this number.
MIN_RPC_THREADS = 10


def rpc_threads(expected_workers: int) -> int:
    """Handler threads for ``expected_workers``: each worker can hold a long-poll and a submission
    at once, and a long-poll must never starve another worker's submission."""
    return max(MIN_RPC_THREADS, 2 * expected_workers + 2)


DEV_MODE_BANNER = (
    "*** DEVELOPMENT MODE: this PS is NOT running in an attested SGX enclave (--attestation none). "
    "Workers cannot verify whom they encrypt for. Never use this with real data. ***"
)


@dataclass(frozen=True)
class PsConfig:
    plan: TrainingPlan
    validate_set: Path
    host: str = "127.0.0.1"
    port: int = 50051
    key_bits: int = 2048
    out_dir: Path | None = None
    port_file: Path | None = None
    join_timeout_s: float = 300.0


@dataclass(frozen=True)
class PsKeys:
    """The PS's secrets for this run: fresh, or restored from the sealed checkpoint."""

    private_key: PrivateKey
    run_id: str
    tls_identity: ServerIdentity | None = None


def plan_for(plan: TrainingPlan, validation: Dataset) -> TrainingPlan:
    """The plan with the validation set's feature count and names filled in, validated."""
    return replace(
        plan, n_features=validation.n_features, feature_names=tuple(validation.feature_names)
    ).validate()


def start_grpc_server(
    servicer: Servicer,
    host: str,
    port: int,
    credentials: grpc.ServerCredentials | None,
    threads: int,
) -> tuple[grpc.Server, int]:
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="homolr-rpc"),
        options=[
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
        ],
    )
    add_servicer(servicer, server)
    address = f"{host}:{port}"
    bound = (
        server.add_insecure_port(address)
        if credentials is None
        else server.add_secure_port(address, credentials)
    )
    if bound == 0:
        raise OSError(f"could not listen on {address} (port in use or not allowed)")
    server.start()
    return server, bound


def install_signal_handlers(stop: threading.Event, log: Callable[[str], None]) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            return
        log(
            f"received {signal.Signals(signum).name}: stopping after the current step, saving the model"
        )
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def save_model(
    out_dir: Path, outcome: TrainingOutcome, plan: TrainingPlan, key_bits: int, run_id: str
) -> Path:
    model = LogisticModel.from_weights(
        outcome.weights,
        feature_names=list(plan.feature_names),
        metadata={
            "run_id": run_id,
            "mode": plan.mode,
            "key_bits": key_bits,
            "rounds": outcome.rounds,
            "finished": outcome.reason,
            "validation": {
                "accuracy": outcome.final_metrics.accuracy,
                "loss": outcome.final_metrics.loss,
                "auc": outcome.final_metrics.auc,
            },
            "plan": _plan_document(plan),
        },
    )
    path = out_dir / "model.json"
    model.save(path)
    return path


def _plan_document(plan: TrainingPlan) -> dict[str, object]:
    doc = {k: v for k, v in plan.__dict__.items() if k != "feature_names"}
    return doc


def run_ps(
    config: PsConfig,
    keys: PsKeys,
    security: ServerSecurity,
    *,
    store: SealedStore | None = None,
    resume: Checkpoint | None = None,
) -> int:
    """Serve one training run to its end; write ``model.json``; return the exit status."""
    log = _stderr_log
    if security.attestation_type == "none":
        log(DEV_MODE_BANNER)
    validation = load_csv(config.validate_set)
    plan = plan_for(config.plan, validation)
    if resume is not None:
        check_same_plan(resume.plan, plan)
        log(f"resuming run {keys.run_id} at round {resume.next_round} from the sealed checkpoint")
    key_holder = KeyHolder(keys.private_key, min_workers=plan.min_workers)
    info = ServerInfo(
        protocol_version=PROTOCOL_VERSION,
        run_id=keys.run_id,
        public_key=key_holder.public_key.to_bytes(),
        plan=plan,
        attestation_type=security.attestation_type,
        quote=security.quote,
        tls_certificate=security.tls_certificate,
    )
    coordinator: RoundCoordinator[PackedVector] = RoundCoordinator(
        n_features=plan.n_features, expected_workers=plan.expected_workers
    )
    if resume is not None:
        coordinator.restore_workers(resume.workers)
    wire = WireCounter()
    servicer = Servicer(
        info=info,
        public_key=key_holder.public_key,
        coordinator=coordinator,
        wire=wire,
        authenticate=security.authenticate,
    )
    server, port = start_grpc_server(
        servicer, config.host, config.port, security.credentials, rpc_threads(plan.expected_workers)
    )
    if config.port_file is not None:
        _write_atomically(config.port_file, f"{port}\n")
    log(
        f"listening on {config.host}:{port} ({'insecure' if security.credentials is None else 'mTLS'}); "
        f"run {keys.run_id}; {plan.mode} mode; waiting for {plan.expected_workers} workers"
    )
    stop = threading.Event()
    install_signal_handlers(stop, log)
    reporter = Reporter(plan.iterations, config.out_dir)
    checkpoint = None if store is None else _checkpointer(store, keys, plan)
    trainer = Trainer(
        plan,
        key_holder,
        validation,
        coordinator,
        reporter,
        stop=stop,
        wire=wire,
        join_timeout_s=config.join_timeout_s,
        start_round=0 if resume is None else resume.next_round,
        start_weights=None if resume is None else resume.weights,
        on_round_end=checkpoint,
    )
    try:
        outcome = trainer.run()
    finally:
        reporter.close()
        server.stop(grace=2.0).wait()
    if config.out_dir is not None:
        path = save_model(config.out_dir, outcome, plan, key_holder.public_key.n_bits, keys.run_id)
        log(f"model written to {path}")
    m = outcome.final_metrics
    log(
        f"done in {outcome.seconds:.1f} s: {outcome.rounds} rounds, validation acc {m.accuracy:.4f} "
        f"loss {m.loss:.4f} auc {m.auc:.4f}"
    )
    return 0


def _checkpointer(
    store: SealedStore, keys: PsKeys, plan: TrainingPlan
) -> Callable[[TrainingState], None]:
    def save(state: TrainingState) -> None:
        save_checkpoint(
            store,
            Checkpoint(
                private_key=keys.private_key,
                run_id=keys.run_id,
                plan=plan,
                next_round=state.next_round,
                weights=state.weights,
                workers=state.workers,
                tls_identity=keys.tls_identity,
            ),
        )

    return save


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _stderr_log(text: str) -> None:
    print(f"homolr ps: {text}", file=sys.stderr, flush=True)


__all__ = [
    "DEV_MODE_BANNER",
    "MIN_RPC_THREADS",
    "PsConfig",
    "PsKeys",
    "plan_for",
    "rpc_threads",
    "run_ps",
    "save_model",
]
