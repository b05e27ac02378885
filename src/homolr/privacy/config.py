"""What a federation asks of differential privacy: :class:`PrivacyConfig`.

Two guarantees, one per training mode (see ``docs/privacy.md``):

* ``"member"`` (secure-aggregation mode, DP-FedAvg): one member's whole contribution is hidden.
  Members clip their update (trained model minus received global model) to L2 norm ``clip``; the
  key holder adds Gaussian noise of std ``noise_multiplier * clip`` to the decrypted sum.
* ``"record"`` (encrypted mode, Taylor step): one row of one member is hidden. Members scale each
  row (bias entry included) to L2 norm ``clip``; the key holder keeps the global model in the L2
  ball of radius ``model_bound`` and adds noise calibrated to the per-round sensitivity, which
  also depends on the attested floor ``min_samples`` on every member's row count.

The budget is ``(epsilon, delta)`` over the whole training. Give ``epsilon`` (the multiplier is
then calibrated to the plan's number of rounds), ``noise_multiplier`` (epsilon is then only
reported), or both (the multiplier is used and ``epsilon`` caps the rounds the key holder runs).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from homolr.errors import ConfigError

Level = Literal["member", "record"]
LEVELS: tuple[Level, ...] = ("member", "record")
#: The training mode each level protects, and the only weighting it supports (docs/privacy.md,
#: sections 4.4 and 5.6, explain why sample weighting is refused).
MODE_OF_LEVEL: Mapping[Level, str] = MappingProxyType(
    {"member": "aggregate", "record": "encrypted"}
)
DP_WEIGHTING = "equal"


@dataclass(frozen=True)
class PrivacyConfig:
    """Differential-privacy settings of one training run; validated on construction.

    Attributes
    ----------
    level : {"member", "record"}
        Unit of privacy: a whole member (secure-aggregation mode) or one row (encrypted mode).
    epsilon : float or None
        Target epsilon for the whole training, > 0.
    delta : float
        Target delta, ``0 < delta < 1`` (take it well below ``1 / n`` for ``n`` protected units).
    clip : float
        L2 clipping norm: of a member's update (member level), of a row with its bias entry
        (record level, so > 1: the bias entry alone has norm 1).
    noise_multiplier : float or None
        Noise std divided by the L2 sensitivity, > 0.
    model_bound : float or None
        Record level: radius of the L2 ball the global model is kept in, > 0.
    min_samples : int or None
        Record level: attested floor on every member's row count, >= 2 (members with fewer rows
        must refuse to train). The sensitivity depends on it, so it cannot come from the operator.
    """

    level: Level
    epsilon: float | None = None
    delta: float = 1e-5
    clip: float = 1.0
    noise_multiplier: float | None = None
    model_bound: float | None = None
    min_samples: int | None = None

    def __post_init__(self) -> None:
        _check(self.level in LEVELS, "level", self.level, f"one of {', '.join(LEVELS)}")
        _check(
            self.epsilon is not None or self.noise_multiplier is not None,
            "epsilon",
            self.epsilon,
            "a number > 0 when noise_multiplier is not set (one of the two is required)",
        )
        if self.epsilon is not None:
            _check(_positive(self.epsilon), "epsilon", self.epsilon, "finite and > 0")
        _check(_is_number(self.delta) and 0 < self.delta < 1, "delta", self.delta, "0 < delta < 1")
        _check(_positive(self.clip), "clip", self.clip, "finite and > 0")
        if self.noise_multiplier is not None:
            _check(
                _positive(self.noise_multiplier),
                "noise_multiplier",
                self.noise_multiplier,
                "finite and > 0",
            )
        if self.model_bound is not None:
            _check(_positive(self.model_bound), "model_bound", self.model_bound, "finite and > 0")
        if self.min_samples is not None:
            _check(
                isinstance(self.min_samples, int) and self.min_samples >= 2,
                "min_samples",
                self.min_samples,
                "an integer >= 2",
            )
        if self.level == "record":
            self._check_record()

    def _check_record(self) -> None:
        _check(
            self.clip > 1,
            "clip",
            self.clip,
            "> 1 at record level (rows are clipped with their bias entry 1 included)",
        )
        _check(
            self.model_bound is not None,
            "model_bound",
            self.model_bound,
            "a number > 0 at record level (the sensitivity grows with the model norm)",
        )
        _check(
            self.min_samples is not None,
            "min_samples",
            self.min_samples,
            "an integer >= 2 at record level (the sensitivity shrinks with the row count)",
        )


def require_compatible(config: PrivacyConfig, *, mode: str, weighting: str) -> None:
    """Check that a training plan's mode and weighting fit the privacy level.

    Raises
    ------
    ConfigError
        ``"member"`` needs mode ``"aggregate"``, ``"record"`` needs mode ``"encrypted"``; both
        need ``weighting="equal"`` (with sample weighting the sensitivity depends on counts the
        enclave can only learn from the operator, see docs/privacy.md).
    """
    expected_mode = MODE_OF_LEVEL[config.level]
    if mode != expected_mode:
        raise ConfigError(
            f"training plan field 'mode' is {mode!r}; {config.level}-level differential privacy "
            f"needs mode {expected_mode!r}"
        )
    if weighting != DP_WEIGHTING:
        raise ConfigError(
            f"training plan field 'weighting' is {weighting!r}; differential privacy needs "
            f"weighting {DP_WEIGHTING!r} (see docs/privacy.md)"
        )


def _is_number(value: object) -> bool:
    """A finite int or float (bool excluded)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _positive(value: object) -> bool:
    """A finite number > 0."""
    return _is_number(value) and isinstance(value, int | float) and value > 0


def _check(ok: bool, name: str, value: object, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"privacy field '{name}' is {value!r}; allowed: {allowed}")


__all__ = [
    "DP_WEIGHTING",
    "LEVELS",
    "MODE_OF_LEVEL",
    "Level",
    "PrivacyConfig",
    "require_compatible",
]
