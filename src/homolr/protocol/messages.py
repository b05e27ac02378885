"""Messages exchanged by the PS and its workers, as plain dataclasses.

The program works with these; protobuf appears only in :mod:`homolr.protocol.serde`, which converts
them to and from the wire. Validation of values that a peer controls happens when a message is
decoded (serde) or checked against the plan (:meth:`TrainingPlan.validate`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from homolr.errors import ConfigError
from homolr.learning.steps import SCHEDULES

PROTOCOL_VERSION = "homolr.v1"
#: ``ModelHeader.reason`` of a long-poll answer that carries no model yet: ask again.
PENDING_REASON = "pending"

Mode = Literal["encrypted", "aggregate"]
Weighting = Literal["equal", "samples"]
MODES: tuple[Mode, ...] = ("encrypted", "aggregate")
WEIGHTINGS: tuple[Weighting, ...] = ("equal", "samples")


@dataclass(frozen=True)
class TrainingPlan:
    """Everything that makes all workers train identically; dictated by the PS.

    ``n_features`` excludes the bias; models carry ``n_features + 1`` weights, bias first.
    """

    mode: Mode = "encrypted"
    iterations: int = 100
    learning_rate: float = 0.15
    schedule: str = "invsqrt"
    alpha: float = 0.01
    init_weight: float = 0.0
    eval_every: int = 10
    min_workers: int = 2
    expected_workers: int = 2
    round_timeout_s: float = 60.0
    weighting: Weighting = "equal"
    frac_bits: int = 24
    value_bits: int = 64
    headroom_bits: int = 10
    batch_size: int = 32
    local_epochs: int = 1
    tolerance: float = 0.0
    n_features: int = 0
    feature_names: tuple[str, ...] = field(default_factory=tuple)
    seed: int = 0

    @property
    def n_weights(self) -> int:
        """Number of model weights, bias included."""
        return self.n_features + 1

    @property
    def update_frac_bits(self) -> int:
        """Fixed-point scale of a worker's update.

        In encrypted mode a worker multiplies ``Enc(w)`` (scale ``frac_bits``) by a plaintext matrix
        encoded at ``frac_bits``, so its update carries twice the scale; in aggregate mode it encodes
        its plaintext model once.
        """
        return 2 * self.frac_bits if self.mode == "encrypted" else self.frac_bits

    def validate(self) -> TrainingPlan:
        """Return ``self`` if every field is in range, else raise :class:`ConfigError` naming it."""
        _check(self.mode in MODES, "mode", self.mode, f"one of {', '.join(MODES)}")
        _check(
            self.weighting in WEIGHTINGS,
            "weighting",
            self.weighting,
            f"one of {', '.join(WEIGHTINGS)}",
        )
        _check(
            self.schedule in SCHEDULES, "schedule", self.schedule, f"one of {', '.join(SCHEDULES)}"
        )
        _check(self.iterations >= 1, "iterations", self.iterations, ">= 1")
        _check(
            _finite_positive(self.learning_rate),
            "learning_rate",
            self.learning_rate,
            "finite and > 0",
        )
        _check(
            math.isfinite(self.alpha) and self.alpha >= 0, "alpha", self.alpha, "finite and >= 0"
        )
        _check(math.isfinite(self.init_weight), "init_weight", self.init_weight, "finite")
        _check(self.eval_every >= 1, "eval_every", self.eval_every, ">= 1")
        _check(
            self.min_workers >= 2,
            "min_workers",
            self.min_workers,
            ">= 2 (the key holder never decrypts a single worker's contribution)",
        )
        _check(
            self.expected_workers >= self.min_workers,
            "expected_workers",
            self.expected_workers,
            f">= min_workers ({self.min_workers})",
        )
        _check(
            _finite_positive(self.round_timeout_s), "round_timeout_s", self.round_timeout_s, "> 0"
        )
        _check(8 <= self.frac_bits <= 48, "frac_bits", self.frac_bits, "between 8 and 48")
        _check(16 <= self.value_bits <= 256, "value_bits", self.value_bits, "between 16 and 256")
        _check(
            1 <= self.headroom_bits <= 20, "headroom_bits", self.headroom_bits, "between 1 and 20"
        )
        _check(
            self.expected_workers <= 2**self.headroom_bits,
            "expected_workers",
            self.expected_workers,
            f"<= 2**headroom_bits ({2**self.headroom_bits})",
        )
        _check(self.batch_size >= 0, "batch_size", self.batch_size, ">= 0 (0 = full batch)")
        _check(self.local_epochs >= 1, "local_epochs", self.local_epochs, ">= 1")
        _check(
            math.isfinite(self.tolerance) and self.tolerance >= 0,
            "tolerance",
            self.tolerance,
            ">= 0",
        )
        _check(self.n_features >= 1, "n_features", self.n_features, ">= 1")
        _check(
            len(self.feature_names) in (0, self.n_features),
            "feature_names",
            len(self.feature_names),
            f"{self.n_features} names",
        )
        return self


def _finite_positive(value: float) -> bool:
    return math.isfinite(value) and value > 0


def _check(ok: bool, name: str, value: object, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"training plan field '{name}' is {value!r}; allowed: {allowed}")


@dataclass(frozen=True)
class ServerInfo:
    """What a worker learns before it joins: key, plan and the attestation evidence binding them."""

    protocol_version: str
    run_id: str
    public_key: bytes
    plan: TrainingPlan
    attestation_type: str
    quote: bytes = b""
    tls_certificate: bytes = b""


@dataclass(frozen=True)
class JoinRequest:
    worker_id: str
    run_id: str
    n_features: int
    n_samples: int


@dataclass(frozen=True)
class ModelHeader:
    """Describes one published global model (or the end of training)."""

    round: int
    finished: bool = False
    reason: str = ""
    encrypted: bool = False
    length: int = 0
    frac_bits: int = 0


@dataclass(frozen=True)
class GlobalModel:
    """A published global model: header plus payload (ciphertexts or float64 bytes)."""

    header: ModelHeader
    payload: bytes = b""


@dataclass(frozen=True)
class UpdateHeader:
    """Describes one worker's packed, encrypted update for one round."""

    worker_id: str
    run_id: str
    round: int
    length: int
    frac_bits: int
    value_bits: int
    headroom_bits: int
    n_ciphertexts: int


@dataclass(frozen=True)
class Update:
    header: UpdateHeader
    payload: bytes


__all__ = [
    "MODES",
    "PENDING_REASON",
    "PROTOCOL_VERSION",
    "WEIGHTINGS",
    "GlobalModel",
    "JoinRequest",
    "Mode",
    "ModelHeader",
    "ServerInfo",
    "TrainingPlan",
    "Update",
    "UpdateHeader",
    "Weighting",
]
