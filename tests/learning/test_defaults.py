"""The recommended plans reach the accuracies promised in the report on the reference data.

Goals (issue #3): encrypted mode >= 0.965 on breast_homo_test; aggregate mode within one point of
scikit-learn's LogisticRegression trained centrally on guest + host.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from sklearn.linear_model import LogisticRegression

from homolr.learning import (
    AGGREGATE_DEFAULTS,
    ENCRYPTED_DEFAULTS,
    Dataset,
    add_bias,
    evaluate,
    max_stable_lr,
    sufficient_stats,
    train_fedavg,
    train_taylor,
)
from homolr.protocol.messages import TrainingPlan

Sets = tuple[Dataset, Dataset, Dataset]


def central_sklearn_accuracy(guest: Dataset, host: Dataset, test: Dataset) -> float:
    X = np.vstack([guest.X, host.X])
    y = np.concatenate([guest.y, host.y])
    return float(LogisticRegression(max_iter=5000).fit(X, y).score(test.X, test.y))


def test_encrypted_defaults_reach_the_goal_in_24_bit_fixed_point(reference_sets: Sets) -> None:
    guest, host, test = reference_sets
    plan = ENCRYPTED_DEFAULTS
    result = train_taylor(
        [guest, host],
        iters=int(plan["iterations"]),
        lr0=float(plan["learning_rate"]),
        schedule=str(plan["schedule"]),
        alpha=float(plan["alpha"]),
        init_weight=float(plan["init_weight"]),
        tol=float(plan["tolerance"]),
        weighting=str(plan["weighting"]),
        quantize_bits=24,
        validation=test,
        eval_every=10,
    )
    # Printed with three decimals, as the PS does; and not a lucky last round: the accuracy has
    # held for the last 100 rounds.
    assert result.rounds == plan["iterations"]
    late = [m.accuracy for t, m in result.history if t >= result.rounds - 100]
    assert len(late) >= 10
    assert all(round(a, 3) >= 0.965 for a in late), late
    # The rate keeps a safety margin below divergence on every worker.
    for d in (guest, host):
        bound = max_stable_lr(sufficient_stats(add_bias(d.X), d.y), float(plan["alpha"]))
        assert float(plan["learning_rate"]) < 0.6 * bound


def test_aggregate_defaults_are_within_one_point_of_central_sklearn(reference_sets: Sets) -> None:
    guest, host, test = reference_sets
    plan = AGGREGATE_DEFAULTS
    target = central_sklearn_accuracy(guest, host, test) - 0.01
    for seed in (0, 1, 2):
        result = train_fedavg(
            [guest, host],
            rounds=int(plan["iterations"]),
            lr=float(plan["learning_rate"]),
            batch_size=int(plan["batch_size"]),
            local_epochs=int(plan["local_epochs"]),
            schedule=str(plan["schedule"]),
            alpha=float(plan["alpha"]),
            init_weight=float(plan["init_weight"]),
            weighting=str(plan["weighting"]),
            seed=seed,
        )
        assert evaluate(result.w, add_bias(test.X), test.y).accuracy >= target


def test_defaults_are_valid_training_plans() -> None:
    fields = {f.name for f in dataclasses.fields(TrainingPlan)}
    for mode, plan in (("encrypted", ENCRYPTED_DEFAULTS), ("aggregate", AGGREGATE_DEFAULTS)):
        assert set(plan) <= fields
        TrainingPlan(mode=mode, n_features=30, **plan).validate()  # type: ignore[arg-type]
