"""PrivacyConfig validation: every bad field is refused with its name in the message."""

from __future__ import annotations

import math
from typing import Any

import pytest

from homolr.errors import ConfigError
from homolr.privacy import PrivacyConfig, require_compatible

RECORD: dict[str, Any] = {
    "level": "record",
    "epsilon": 1.0,
    "delta": 1e-5,
    "clip": 3.0,
    "model_bound": 2.0,
    "min_samples": 100,
}
MEMBER: dict[str, Any] = {"level": "member", "epsilon": 1.0, "delta": 1e-5, "clip": 0.5}


def test_valid_configs_are_accepted() -> None:
    assert PrivacyConfig(**RECORD).level == "record"
    assert PrivacyConfig(**MEMBER).model_bound is None
    assert PrivacyConfig(level="member", noise_multiplier=2.0).epsilon is None


@pytest.mark.parametrize(
    ("base", "field", "value"),
    [
        (MEMBER, "level", "row"),
        (MEMBER, "epsilon", 0.0),
        (MEMBER, "epsilon", -1.0),
        (MEMBER, "epsilon", math.inf),
        (MEMBER, "delta", 0.0),
        (MEMBER, "delta", 1.0),
        (MEMBER, "delta", math.nan),
        (MEMBER, "clip", 0.0),
        (MEMBER, "clip", math.nan),
        (MEMBER, "noise_multiplier", -0.5),
        (MEMBER, "model_bound", 0.0),
        (MEMBER, "min_samples", 1),
        (RECORD, "clip", 1.0),
        (RECORD, "model_bound", None),
        (RECORD, "min_samples", None),
        (RECORD, "min_samples", 2.5),
    ],
)
def test_bad_field_is_named(base: dict[str, Any], field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"privacy field '{field}'"):
        PrivacyConfig(**{**base, field: value})


def test_epsilon_or_noise_multiplier_is_required() -> None:
    with pytest.raises(ConfigError, match=r"'epsilon'.*noise_multiplier"):
        PrivacyConfig(level="member", clip=1.0)


def test_levels_fit_their_mode_and_equal_weighting_only() -> None:
    require_compatible(PrivacyConfig(**RECORD), mode="encrypted", weighting="equal")
    require_compatible(PrivacyConfig(**MEMBER), mode="aggregate", weighting="equal")
    with pytest.raises(ConfigError, match="'mode'"):
        require_compatible(PrivacyConfig(**RECORD), mode="aggregate", weighting="equal")
    with pytest.raises(ConfigError, match="'mode'"):
        require_compatible(PrivacyConfig(**MEMBER), mode="encrypted", weighting="equal")
    with pytest.raises(ConfigError, match="'weighting'"):
        require_compatible(PrivacyConfig(**MEMBER), mode="aggregate", weighting="samples")
