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
import uuid
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType

import grpc

from homolr.crypto import PackedVector, PrivateKey, generate_keypair
from homolr.enclave.keyholder import KeyHolder
from homolr.learning import Dataset, LogisticModel, load_csv
from homolr.protocol.messages import PROTOCOL_VERSION, ServerInfo, TrainingPlan
from homolr.protocol.service import add_servicer
from homolr.server.reporting import Reporter
from homolr.server.rounds import RoundCoordinator
from homolr.server.servicer import Authenticator, Servicer
from homolr.server.training import Trainer, TrainingOutcome, TrainingState, WireCounter
from homolr.worker.transport import MAX_MESSAGE_BYTES

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
    insecure: bool = True
    attestation: str = "none"


@dataclass(frozen=True)
class ServerSecurity:
    """What the transport and the attestation contribute to the PS (TLS, quote, client auth)."""

    credentials: grpc.ServerCredentials | None = None
    tls_certificate: bytes = b""
    quote: bytes = b""
    attestation_type: str = "none"
    authenticate: Authenticator | None = None


@dataclass(frozen=True)
class Restored:
    """State restored from a sealed checkpoint (``homolr ps --resume``)."""

    private_key: PrivateKey
    run_id: str
    next_round: int
    weights: list[float]
    workers: dict[str, int]


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
    security: ServerSecurity,
    *,
    restored: Restored | None = None,
    on_round_end: Callable[[TrainingState, PrivateKey, str], None] | None = None,
) -> int:
    log = _stderr_log
    if security.attestation_type == "none":
        log(DEV_MODE_BANNER)
    validation = load_csv(config.validate_set)
    plan = plan_for(config.plan, validation)
    if restored is None:
        _, private_key = generate_keypair(config.key_bits)
        run_id = uuid.uuid4().hex
    else:
        private_key, run_id = restored.private_key, restored.run_id
    key_holder = KeyHolder(private_key, min_workers=plan.min_workers)
    info = ServerInfo(
        protocol_version=PROTOCOL_VERSION,
        run_id=run_id,
        public_key=key_holder.public_key.to_bytes(),
        plan=plan,
        attestation_type=security.attestation_type,
        quote=security.quote,
        tls_certificate=security.tls_certificate,
    )
    coordinator: RoundCoordinator[PackedVector] = RoundCoordinator(
        n_features=plan.n_features, expected_workers=plan.expected_workers
    )
    if restored is not None:
        coordinator.restore_workers(restored.workers)
    wire = WireCounter()
    servicer = Servicer(
        info=info,
        public_key=key_holder.public_key,
        coordinator=coordinator,
        wire=wire,
        authenticate=security.authenticate,
    )
    threads = max(8, 3 * plan.expected_workers + 4)
    server, port = start_grpc_server(
        servicer, config.host, config.port, security.credentials, threads
    )
    if config.port_file is not None:
        _write_atomically(config.port_file, f"{port}\n")
    log(
        f"listening on {config.host}:{port} ({'insecure' if security.credentials is None else 'TLS'}); "
        f"run {run_id}; {plan.mode} mode; waiting for {plan.expected_workers} workers"
    )
    stop = threading.Event()
    install_signal_handlers(stop, log)
    reporter = Reporter(plan.iterations, config.out_dir)
    callback = None
    if on_round_end is not None:

        def callback(state: TrainingState) -> None:
            on_round_end(state, private_key, run_id)

    trainer = Trainer(
        plan,
        key_holder,
        validation,
        coordinator,
        reporter,
        stop=stop,
        wire=wire,
        join_timeout_s=config.join_timeout_s,
        start_round=0 if restored is None else restored.next_round,
        start_weights=None if restored is None else restored.weights,  # type: ignore[arg-type]
        on_round_end=callback,
    )
    try:
        outcome = trainer.run()
    finally:
        reporter.close()
        server.stop(grace=2.0).wait()
    if config.out_dir is not None:
        path = save_model(config.out_dir, outcome, plan, key_holder.public_key.n_bits, run_id)
        log(f"model written to {path}")
    m = outcome.final_metrics
    log(
        f"done in {outcome.seconds:.1f} s: {outcome.rounds} rounds, validation acc {m.accuracy:.4f} "
        f"loss {m.loss:.4f} auc {m.auc:.4f}"
    )
    return 0


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _stderr_log(text: str) -> None:
    print(f"homolr ps: {text}", file=sys.stderr, flush=True)


__all__ = ["DEV_MODE_BANNER", "PsConfig", "Restored", "ServerSecurity", "plan_for", "run_ps"]
