"""From a federation file to the training plan both sides use.

The PS builds its :class:`~homolr.protocol.messages.TrainingPlan` with :func:`plan_from_federation`;
a member builds the same plan from its own copy of the file and refuses a PS whose plan differs.
Everything derived here (the noise multiplier calibrated from a privacy target, the moments round's
scale) is a pure function of the file, so both sides get the same bytes.
"""

from __future__ import annotations

import decimal
from collections.abc import Mapping
from typing import Any

from homolr.errors import ConfigError
from homolr.federation.schema import Federation, federation_from_document
from homolr.protocol.messages import TrainingPlan

#: ``homolr ps`` option -> (federation section, key) for development overrides.
OVERRIDES: Mapping[str, tuple[str, str]] = {
    "mode": ("plan", "mode"),
    "key_bits": ("plan", "key_bits"),
    "iterations": ("plan", "iterations"),
    "learning_rate": ("plan", "learning_rate"),
    "schedule": ("plan", "schedule"),
    "alpha": ("plan", "alpha"),
    "init_weight": ("plan", "init_weight"),
    "eval_every": ("plan", "eval_every"),
    "weighting": ("plan", "weighting"),
    "frac_bits": ("plan", "frac_bits"),
    "batch_size": ("plan", "batch_size"),
    "local_epochs": ("plan", "local_epochs"),
    "tolerance": ("plan", "tolerance"),
    "seed": ("plan", "seed"),
    "standardize": ("plan", "standardize"),
    "round_timeout": ("deadlines", "round_s"),
    "first_round_timeout": ("deadlines", "first_round_s"),
    "participation": ("participation", "policy"),
    "min_workers": ("participation", "min_workers"),
}


def plan_from_federation(federation: Federation) -> TrainingPlan:
    """The training plan a federation file dictates (validated)."""
    plan = federation.plan
    participation = federation.participation
    deadlines = federation.deadlines
    features = federation.validation.features
    return TrainingPlan(
        mode=plan.mode,
        iterations=plan.iterations,
        learning_rate=plan.learning_rate,
        schedule=plan.schedule,
        alpha=plan.alpha,
        init_weight=plan.init_weight,
        eval_every=plan.eval_every,
        min_workers=participation.min_workers,
        expected_workers=len(federation.members),
        round_timeout_s=deadlines.round_s,
        first_round_timeout_s=deadlines.first_round_s,
        weighting=plan.weighting,
        frac_bits=plan.frac_bits,
        batch_size=plan.batch_size,
        local_epochs=plan.local_epochs,
        tolerance=plan.tolerance,
        n_features=len(features),
        feature_names=tuple(features),
        seed=plan.seed,
        participation=participation.policy,
        key_bits=plan.key_bits,
        standardize=plan.standardize,
        feature_bounds=federation.validation.bounds if plan.standardize else (),
        **_privacy_settings(federation),
    ).validate()


def _privacy_settings(federation: Federation) -> dict[str, Any]:
    privacy = federation.privacy
    if privacy is None:
        return {}
    from homolr.privacy import calibrate_noise_multiplier

    multiplier = privacy.noise_multiplier
    if multiplier is None:
        assert privacy.epsilon is not None  # the schema requires one of the two
        multiplier = _round_up(
            calibrate_noise_multiplier(privacy.epsilon, privacy.delta, federation.plan.iterations)
        )
    return {
        "privacy_level": privacy.level,
        "dp_clip": privacy.clip,
        "dp_noise_multiplier": multiplier,
        "dp_epsilon": privacy.epsilon or 0.0,
        "dp_delta": privacy.delta,
        "dp_model_bound": privacy.model_bound or 0.0,
        "dp_min_samples": privacy.min_samples or 0,
    }


def _round_up(value: float, digits: int = 12) -> float:
    """``value`` rounded up to ``digits`` significant decimal digits, as the double nearest that
    decimal (exact decimal arithmetic): a member recomputing the plan gets the same float even if
    its bisection ends a few ulps away, and rounding up keeps the privacy target."""
    context = decimal.Context(prec=digits, rounding=decimal.ROUND_CEILING)
    return float(context.plus(decimal.Decimal(value)))


def override_plan(federation: Federation, values: Mapping[str, object]) -> Federation:
    """``federation`` with development overrides (``homolr ps`` option name -> value) applied and
    validated again like a file.

    Raises
    ------
    ConfigError
        For ``workers`` (the members are the file's) or an override the schema refuses.
    """
    if "workers" in values:
        raise ConfigError(
            "--workers: with a federation file the members are the file's [[members]]"
        )
    document = federation.to_document()
    for option, value in values.items():
        section, key = OVERRIDES[option]
        document[section] = {**document[section], key: value}
    if document["privacy"] is None:
        del document["privacy"]
    return federation_from_document(document, "the federation file with command-line overrides")


__all__ = ["OVERRIDES", "override_plan", "plan_from_federation"]
