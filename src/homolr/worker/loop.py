"""The member's main loop: verify the PS, join, then fetch, compute, submit until the PS says stop.

Nothing is encrypted or sent before ``verify`` accepted the PS (attestation and federation, or the
explicit development mode). Every contribution passes the :class:`~homolr.worker.replay.ReplayGuard`
first: it is recorded durably before it is sent, never made twice for a round, and a PS asking for
an old round is refused. A refused submission (round already closed) is reported and the member goes
on with the next published model; the loop ends when the PS announces the end of training, and how
it ended decides the exit status (:func:`outcome_error`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from homolr.crypto import PackedVector, PublicKey
from homolr.errors import (
    ConfigError,
    HomolrError,
    ProtocolError,
    RoundError,
    RunPausedError,
    TrainingFailedError,
)
from homolr.federation import Federation, plan_from_federation
from homolr.learning import Dataset, select_features
from homolr.protocol.messages import (
    PROTOCOL_VERSION,
    GlobalModel,
    JoinRequest,
    ModelHeader,
    Scaler,
    ServerInfo,
    TrainingPlan,
    Update,
    UpdateHeader,
)
from homolr.worker.local import LocalStep, make_local_step, moments_update
from homolr.worker.replay import ReplayGuard
from homolr.worker.transport import Connection


@dataclass(frozen=True)
class WorkerOutcome:
    rounds_submitted: int
    rounds_refused: int
    reason: str
    seconds: float


def check_server_info(
    info: ServerInfo, dataset: Dataset, federation: Federation | None = None
) -> PublicKey:
    """Check the PS's announcement against this member's data (and federation file, whose plan
    the PS must use exactly); return the PS's public key."""
    if info.protocol_version != PROTOCOL_VERSION:
        raise ProtocolError(
            f"the PS speaks {info.protocol_version!r}; this worker speaks {PROTOCOL_VERSION!r}"
        )
    try:
        info.plan.validate()
    except ConfigError as exc:
        raise ProtocolError(f"the PS sent an invalid training plan: {exc}") from exc
    if federation is not None:
        expected = plan_from_federation(federation)
        if info.plan != expected:
            differ = [
                f"{name}: {getattr(expected, name)!r} vs {getattr(info.plan, name)!r}"
                for name in TrainingPlan.__dataclass_fields__
                if getattr(expected, name) != getattr(info.plan, name)
            ]
            raise ProtocolError(
                "the PS's training plan is not the one the federation file dictates "
                f"({'; '.join(differ)})"
            )
    if dataset.n_features != info.plan.n_features:
        raise ConfigError(
            f"{dataset.source} has {dataset.n_features} features but the PS's plan has "
            f"{info.plan.n_features}"
        )
    try:
        public_key = PublicKey.from_bytes(info.public_key)
    except (ValueError, TypeError) as exc:
        raise ProtocolError(f"the PS sent a malformed public key: {exc}") from None
    if public_key.n_bits != info.plan.key_bits:
        raise ProtocolError(
            f"the PS's key has {public_key.n_bits} bits; its plan says {info.plan.key_bits}"
        )
    return public_key


def outcome_error(header: ModelHeader) -> HomolrError | None:
    """None when training completed; else the error whose exit status tells how it ended."""
    if header.outcome == "completed":
        return None
    text = f"the PS ended the run: {header.reason}"
    if header.outcome == "failed":
        return TrainingFailedError(text)
    return RunPausedError(text)


def model_size_limit(plan: TrainingPlan, public_key: PublicKey) -> int:
    """Largest model payload the plan allows (a bigger announcement is refused unread)."""
    if plan.mode == "encrypted":
        return plan.n_weights * public_key.ciphertext_bytes
    return 8 * plan.n_weights


def apply_scaler(dataset: Dataset, scaler: Scaler) -> Dataset:
    """``dataset`` with every feature standardised by the global scaler."""
    mean = np.asarray(scaler.mean, dtype=np.float64)
    scale = np.asarray(scaler.scale, dtype=np.float64)
    if (
        mean.shape != (dataset.n_features,)
        or scale.shape != mean.shape
        or not (np.all(np.isfinite(mean)) and np.all(np.isfinite(scale)))
        or np.any(scale <= 0)
    ):
        raise ProtocolError(
            f"the PS's scaler has {mean.size} means and {scale.size} scales for "
            f"{dataset.n_features} features, a value that is not finite, or a scale <= 0"
        )
    return replace(dataset, X=(dataset.X - mean) / scale)


class _Member:
    """One member's session with the PS (state of :func:`run_worker`)."""

    def __init__(
        self,
        connection: Connection,
        dataset: Dataset,
        worker_id: str,
        info: ServerInfo,
        public_key: PublicKey,
        guard: ReplayGuard,
        log: Callable[[str], None],
    ) -> None:
        self.connection = connection
        self.raw = dataset
        self.worker_id = worker_id
        self.info = info
        self.plan = info.plan
        self.public_key = public_key
        self.guard = guard
        self.log = log
        self.scaler: Scaler | None = None
        self.step: LocalStep | None = None if self.plan.standardize else self._make_step(dataset)
        self.submitted = 0
        self.refused = 0

    def _make_step(self, dataset: Dataset) -> LocalStep:
        return make_local_step(dataset, self.plan, self.public_key, self.worker_id)

    def contribution(self, model: GlobalModel) -> Update:
        """The upload for ``model``'s round: the stored one when the PS asks again for the round
        of our mark, else a fresh one, recorded before it is returned."""
        stored = self.guard.before_round(model.header.round)
        if stored is not None:
            self.log(f"round {model.header.round}: sending the stored upload again (PS resumed)")
            return stored
        packed = self._compute(model)
        update = Update(self._header(model.header.round, packed), packed.to_bytes())
        self.guard.record(update)
        return update

    def _compute(self, model: GlobalModel) -> PackedVector:
        header = model.header
        if header.kind == "moments":
            if not self.plan.standardize:
                raise ProtocolError(f"round {header.round}: a moments round, but the plan has none")
            if header.frac_bits != self.plan.moments_plan.frac_bits:
                raise ProtocolError(
                    f"round {header.round}: moments at scale {header.frac_bits}; the plan's is "
                    f"{self.plan.moments_plan.frac_bits}"
                )
            return moments_update(self.raw, self.plan, self.public_key)
        if self.step is None:
            scaler = header.scaler or self.scaler
            if scaler is None:
                raise ProtocolError(
                    f"round {header.round}: the plan standardises features but the PS sent no scaler"
                )
            self.scaler = scaler
            self.step = self._make_step(apply_scaler(self.raw, scaler))
        return self.step.update(model)

    def _header(self, round_: int, packed: PackedVector) -> UpdateHeader:
        return UpdateHeader(
            worker_id=self.worker_id,
            run_id=self.info.run_id,
            round=round_,
            length=packed.length,
            frac_bits=packed.frac_bits,
            value_bits=packed.spec.value_bits,
            headroom_bits=packed.spec.headroom_bits,
            n_ciphertexts=len(packed.ciphertexts),
        )


def run_worker(
    connection: Connection,
    dataset: Dataset,
    worker_id: str,
    *,
    verify: Callable[[ServerInfo], PublicKey],
    guard_for: Callable[[ServerInfo, PublicKey], ReplayGuard],
    log: Callable[[str], None],
) -> WorkerOutcome:
    """Take part in one run until the PS ends it.

    Raises the error of :func:`outcome_error` when the run did not complete, and
    :class:`~homolr.errors.RollbackError` when the PS asks for a round this member left behind.
    """
    started = time.monotonic()
    info = connection.server_info()
    public_key = verify(info)
    plan = info.plan
    if plan.feature_names:  # columns by name, in the plan's wire order
        dataset = select_features(dataset, plan.feature_names)
    guard = guard_for(info, public_key)
    member = _Member(connection, dataset, worker_id, info, public_key, guard, log)
    next_round = connection.join(
        JoinRequest(worker_id, info.run_id, dataset.n_features, dataset.n_samples)
    )
    log(
        f"joined run {info.run_id} ({plan.mode} mode, {plan.iterations} iterations, "
        f"participation {plan.participation}, {public_key.n_bits}-bit key "
        f"{public_key.fingerprint()[:16]})"
    )
    chunk_bytes = plan.chunk_ciphertexts * public_key.ciphertext_bytes
    limit = model_size_limit(plan, public_key)
    while True:
        model = connection.model(
            worker_id,
            info.run_id,
            next_round,
            have_scaler=member.scaler is not None or not plan.standardize,
            max_payload_bytes=limit,
        )
        header = model.header
        if header.pending:
            continue
        if header.finished:
            error = outcome_error(header)
            if error is not None:
                raise error
            return WorkerOutcome(
                member.submitted, member.refused, header.reason, time.monotonic() - started
            )
        update = member.contribution(model)
        try:
            connection.submit(update, chunk_bytes)
            member.submitted += 1
        except RoundError as exc:
            member.refused += 1
            log(f"round {header.round}: submission refused ({exc}); going on")
        next_round = header.round + 1


__all__ = [
    "WorkerOutcome",
    "apply_scaler",
    "check_server_info",
    "model_size_limit",
    "outcome_error",
    "run_worker",
]
