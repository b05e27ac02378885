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
from homolr.learning.scaling import MomentsFixedPoint, moments_fixed_point
from homolr.learning.steps import SCHEDULES

PROTOCOL_VERSION = "homolr.v2"

Mode = Literal["encrypted", "aggregate"]
Weighting = Literal["equal", "samples"]
Participation = Literal["all", "quorum"]
PrivacyLevel = Literal["none", "member", "record"]
RoundKind = Literal["train", "moments"]
Outcome = Literal["completed", "paused", "stopped", "failed"]
MODES: tuple[Mode, ...] = ("encrypted", "aggregate")
WEIGHTINGS: tuple[Weighting, ...] = ("equal", "samples")
PARTICIPATIONS: tuple[Participation, ...] = ("all", "quorum")
PRIVACY_LEVELS: tuple[PrivacyLevel, ...] = ("none", "member", "record")
#: Fewest members whose sum the key holder ever decrypts.
MIN_WORKERS_FLOOR = 2
#: Largest sample count a member may announce at Join.
MAX_SAMPLES = 1_000_000_000
#: Largest fixed-point scale in encrypted mode: updates at 2 x 28 bits leave |w| < 2**7 in a slot.
MAX_ENCRYPTED_FRAC_BITS = 28
#: Ciphertexts per SubmitUpdate data message.
DEFAULT_CHUNK_CIPHERTEXTS = 256
MAX_CHUNK_CIPHERTEXTS = 4096


@dataclass(frozen=True)
class TrainingPlan:
    """Everything that makes all members train identically; dictated by the PS.

    ``n_features`` excludes the bias; models carry ``n_features + 1`` weights, bias first. Field
    meanings, units and ranges are documented on ``homolr.v2.TrainingPlan`` in the .proto.
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
    participation: Participation = "all"
    first_round_timeout_s: float = 300.0
    key_bits: int = 2048
    chunk_ciphertexts: int = DEFAULT_CHUNK_CIPHERTEXTS
    standardize: bool = False
    privacy_level: PrivacyLevel = "none"
    dp_clip: float = 0.0
    dp_noise_multiplier: float = 0.0
    dp_epsilon: float = 0.0
    dp_delta: float = 0.0
    dp_model_bound: float = 0.0
    feature_bounds: tuple[float, ...] = ()
    dp_min_samples: int = 0

    @property
    def n_weights(self) -> int:
        """Number of model weights, bias included."""
        return self.n_features + 1

    @property
    def update_frac_bits(self) -> int:
        """Fixed-point scale of a member's training update.

        In encrypted mode a member multiplies ``Enc(w)`` (scale ``frac_bits``) by a plaintext matrix
        encoded at ``frac_bits``, so its update carries twice the scale; in aggregate mode it encodes
        its plaintext delta once.
        """
        return 2 * self.frac_bits if self.mode == "encrypted" else self.frac_bits

    @property
    def moments_length(self) -> int:
        """Values of one moments-round upload: row count, d sums, d sums of squares."""
        return 1 + 2 * self.n_features

    @property
    def moments_plan(self) -> MomentsFixedPoint:
        """How the moments round encodes its values (pre-scaling by the feature bounds and the
        fixed-point scale that keeps a sum of up to ``expected_workers`` members of up to
        :data:`MAX_SAMPLES` rows in a 64-bit slot)."""
        return moments_fixed_point(
            MAX_SAMPLES, self.feature_bounds, members_max=self.expected_workers
        )

    @property
    def required_members(self) -> int:
        """Fewest members whose sum the key holder decrypts under this plan."""
        return self.expected_workers if self.participation == "all" else self.min_workers

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
        _check(
            self.participation in PARTICIPATIONS,
            "participation",
            self.participation,
            f"one of {', '.join(PARTICIPATIONS)}",
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
            self.min_workers >= MIN_WORKERS_FLOOR,
            "min_workers",
            self.min_workers,
            f">= {MIN_WORKERS_FLOOR} (the key holder never decrypts a single member's contribution)",
        )
        _check(
            self.expected_workers >= self.min_workers,
            "expected_workers",
            self.expected_workers,
            f">= min_workers ({self.min_workers})",
        )
        for name in ("round_timeout_s", "first_round_timeout_s"):
            value = getattr(self, name)
            _check(_finite_positive(value), name, value, "> 0")
        _check(8 <= self.frac_bits <= 48, "frac_bits", self.frac_bits, "between 8 and 48")
        _check(
            self.mode != "encrypted" or self.frac_bits <= MAX_ENCRYPTED_FRAC_BITS,
            "frac_bits",
            self.frac_bits,
            f"at most {MAX_ENCRYPTED_FRAC_BITS} in encrypted mode (a member's update is at scale "
            "2 x frac_bits in a 64-bit slot, which must leave room for the weights)",
        )
        _check(self.value_bits == 64, "value_bits", self.value_bits, "64")
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
        _check(
            self.key_bits >= 512 and self.key_bits % 8 == 0,
            "key_bits",
            self.key_bits,
            "a multiple of 8, >= 2048 outside unit tests",
        )
        _check(
            1 <= self.chunk_ciphertexts <= MAX_CHUNK_CIPHERTEXTS,
            "chunk_ciphertexts",
            self.chunk_ciphertexts,
            f"between 1 and {MAX_CHUNK_CIPHERTEXTS}",
        )
        _check(0 <= self.seed < 2**63, "seed", self.seed, "between 0 and 2**63 - 1")
        _check(
            len(self.feature_bounds) == (self.n_features if self.standardize else 0)
            and all(_finite_positive(b) for b in self.feature_bounds),
            "feature_bounds",
            self.feature_bounds,
            "one finite bound > 0 per feature when standardize is on, none otherwise",
        )
        self._validate_privacy()
        return self

    def _validate_privacy(self) -> None:
        level = self.privacy_level
        _check(
            level in PRIVACY_LEVELS,
            "privacy_level",
            level,
            f"one of {', '.join(PRIVACY_LEVELS)}",
        )
        if level == "none":
            return
        needed_mode = "aggregate" if level == "member" else "encrypted"
        _check(self.mode == needed_mode, "privacy_level", level, f"used with mode {needed_mode}")
        _check(_finite_positive(self.dp_clip), "dp_clip", self.dp_clip, "> 0")
        _check(
            _finite_positive(self.dp_noise_multiplier),
            "dp_noise_multiplier",
            self.dp_noise_multiplier,
            "> 0 (calibrated before the plan is published)",
        )
        _check(0 < self.dp_delta < 1, "dp_delta", self.dp_delta, "in (0, 1)")
        _check(
            math.isfinite(self.dp_epsilon) and self.dp_epsilon >= 0,
            "dp_epsilon",
            self.dp_epsilon,
            ">= 0 (0 = no budget)",
        )
        _check(self.weighting == "equal", "weighting", self.weighting, "equal with privacy")
        _check(not self.standardize, "standardize", self.standardize, "false with privacy")
        if level == "record":
            _check(
                _finite_positive(self.dp_model_bound),
                "dp_model_bound",
                self.dp_model_bound,
                "> 0 for record-level privacy",
            )
            _check(self.dp_min_samples >= 2, "dp_min_samples", self.dp_min_samples, ">= 2")


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
    federation: bytes = b""


@dataclass(frozen=True)
class JoinRequest:
    worker_id: str
    run_id: str
    n_features: int
    n_samples: int
    protocol_version: str = PROTOCOL_VERSION


@dataclass(frozen=True)
class Scaler:
    """Global per-feature mean and scale (standardisation), ``n_features`` values each."""

    mean: tuple[float, ...]
    scale: tuple[float, ...]


@dataclass(frozen=True)
class ModelHeader:
    """Describes one published global model, a 'pending' answer, or the end of training."""

    round: int
    finished: bool = False
    reason: str = ""
    encrypted: bool = False
    length: int = 0
    frac_bits: int = 0
    pending: bool = False
    step: int = 0
    kind: RoundKind = "train"
    weight: float = 1.0
    scaler: Scaler | None = None
    outcome: Outcome | None = None


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
    "DEFAULT_CHUNK_CIPHERTEXTS",
    "MAX_CHUNK_CIPHERTEXTS",
    "MAX_ENCRYPTED_FRAC_BITS",
    "MAX_SAMPLES",
    "MIN_WORKERS_FLOOR",
    "MODES",
    "PARTICIPATIONS",
    "PRIVACY_LEVELS",
    "PROTOCOL_VERSION",
    "WEIGHTINGS",
    "GlobalModel",
    "JoinRequest",
    "Mode",
    "ModelHeader",
    "Outcome",
    "Participation",
    "PrivacyLevel",
    "RoundKind",
    "Scaler",
    "ServerInfo",
    "TrainingPlan",
    "Update",
    "UpdateHeader",
    "Weighting",
]
