"""The worker's main loop: verify the PS, join, then fetch, step, submit until the PS says stop.

Nothing is encrypted or sent before ``verify`` accepted the PS's key (attestation, or the explicit
development mode). A late or refused submission is reported and the worker moves on to the next
published model; the loop ends when the PS announces the end of training.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from homolr.crypto import PublicKey
from homolr.errors import ConfigError, ProtocolError, RoundError
from homolr.learning import Dataset
from homolr.protocol.messages import PROTOCOL_VERSION, JoinRequest, ServerInfo, Update, UpdateHeader
from homolr.worker.local import make_local_step
from homolr.worker.transport import Connection


@dataclass(frozen=True)
class WorkerOutcome:
    rounds_submitted: int
    rounds_refused: int
    reason: str
    seconds: float


def check_server_info(info: ServerInfo, dataset: Dataset) -> PublicKey:
    """Check the PS's announcement against this worker's data; return the PS's public key."""
    if info.protocol_version != PROTOCOL_VERSION:
        raise ProtocolError(
            f"the PS speaks {info.protocol_version!r}; this worker speaks {PROTOCOL_VERSION!r}"
        )
    try:
        info.plan.validate()
    except ConfigError as exc:
        raise ProtocolError(f"the PS sent an invalid training plan: {exc}") from exc
    if dataset.n_features != info.plan.n_features:
        raise ConfigError(
            f"{dataset.source} has {dataset.n_features} features but the PS's validation set has "
            f"{info.plan.n_features}"
        )
    return PublicKey.from_bytes(info.public_key)


def run_worker(
    connection: Connection,
    dataset: Dataset,
    worker_id: str,
    *,
    verify: Callable[[ServerInfo], None],
    log: Callable[[str], None],
    poll_s: float = 20.0,
) -> WorkerOutcome:
    started = time.monotonic()
    info = connection.server_info()
    verify(info)
    public_key = check_server_info(info, dataset)
    plan = info.plan
    next_round = connection.join(
        JoinRequest(worker_id, info.run_id, dataset.n_features, dataset.n_samples)
    )
    log(
        f"joined run {info.run_id} ({plan.mode} mode, {plan.iterations} iterations, "
        f"{public_key.n_bits}-bit key {public_key.fingerprint()[:16]})"
    )
    step = make_local_step(dataset, plan, public_key, worker_id)
    submitted = refused = 0
    while True:
        model = connection.model(worker_id, info.run_id, next_round, poll_s)
        if model is None:
            continue
        if model.header.finished:
            return WorkerOutcome(
                submitted, refused, model.header.reason, time.monotonic() - started
            )
        packed = step.update(model)
        header = UpdateHeader(
            worker_id=worker_id,
            run_id=info.run_id,
            round=model.header.round,
            length=packed.length,
            frac_bits=packed.frac_bits,
            value_bits=packed.spec.value_bits,
            headroom_bits=packed.spec.headroom_bits,
            n_ciphertexts=len(packed.ciphertexts),
        )
        try:
            connection.submit(Update(header, packed.to_bytes()))
            submitted += 1
        except RoundError as exc:
            refused += 1
            log(f"round {model.header.round}: submission refused ({exc}); moving on")
        next_round = model.header.round + 1


__all__ = ["WorkerOutcome", "check_server_info", "run_worker"]
