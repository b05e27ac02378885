"""Reproducible in-process experiments whose numbers the documentation quotes.

:func:`standardisation_experiment` answers "what happens when members hold raw data?". On the
demo split of scikit-learn's Wisconsin copy with *raw* features (:func:`demo_split` with
``scaler_fit="none"``), it trains encrypted-mode models with the plaintext simulation of the
encrypted path (:func:`train_taylor` with 24-bit fixed point, the recommended plan) and reports
the test accuracy of:

* ``raw``: training on the raw features with the recommended plan (learning rate 0.3);
* ``raw_stable``: raw features with the largest learning rate that keeps the Taylor step stable
  on every member (half of the smallest :func:`max_stable_lr`), the best a plan can do there;
* ``federated``: the federated standardisation: every member encodes its moments vector with
  a :class:`MomentsFixedPoint` plan sized for 1,024 members of up to 10**6 rows, the integers
  are summed (what the enclave decrypts), and the global scaler standardises every member's
  data and the test set;
* ``federated_one_bound``: the same with one bound (4,300) for all features instead of
  per-feature bounds, to show what the pre-scaling buys;
* ``central``: the scaler fitted on the pooled training rows in one place.

Per-feature bounds of the ``federated`` run are public: four times the largest magnitude of the
PS's validation set, rounded up to a power of two.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from homolr.crypto.encoding import fixed_to_float, to_fixed_point
from homolr.learning.data import Dataset, add_bias, demo_split
from homolr.learning.metrics import evaluate
from homolr.learning.scaling import MomentsFixedPoint, Scaler, moments_fixed_point
from homolr.learning.steps import learning_rate, max_stable_lr, sufficient_stats
from homolr.learning.training import ENCRYPTED_DEFAULTS, average_weights, taylor_local

QUANTIZE_BITS = 24
ROWS_MAX = 10**6
MEMBERS_MAX = 1024
ONE_BOUND = 4300.0
#: Largest weight magnitude the encrypted path can carry (see homolr.crypto.encoding).
WEIGHT_RANGE = 2.0**15


@dataclass(frozen=True)
class StandardisationResult:
    """Test accuracies of :func:`standardisation_experiment` (see the module docstring).

    Attributes
    ----------
    raw, raw_stable, federated, federated_one_bound, central : float
        Test accuracies (nan when training diverged).
    raw_diverged_at : int or None
        Round at which the raw run's weights left the encrypted path's range.
    raw_stable_lr : float
        The learning rate of ``raw_stable``.
    max_scale_error : float
        Largest relative difference between the federated and the central scale.
    one_bound_flagged : int
        Features the one-bound plan flagged as constant or imprecise.
    """

    raw: float
    raw_diverged_at: int | None
    raw_stable: float
    federated: float
    federated_one_bound: float
    central: float
    raw_stable_lr: float
    max_scale_error: float
    one_bound_flagged: int


def _train(workers: list[Dataset], test: Dataset, lr: float) -> tuple[float, int | None]:
    """Encrypted-mode simulation with the recommended plan.

    Returns the test accuracy (nan when training diverged) and the first round whose global
    weights left the encrypted path's range (``|w| >= 2**15``: a weight at scale 24 times a
    matrix entry at scale 24 no longer fits a signed 64-bit slot), or None.
    """
    plan = ENCRYPTED_DEFAULTS
    stats = [sufficient_stats(add_bias(k.X), k.y) for k in workers]
    sizes = [k.n_samples for k in workers]
    w = np.full(workers[0].n_features + 1, float(plan["init_weight"]))
    for t in range(int(plan["iterations"])):
        step = learning_rate(str(plan["schedule"]), lr, t)
        with np.errstate(over="ignore", invalid="ignore"):
            local = [taylor_local(w, s, step, float(plan["alpha"]), QUANTIZE_BITS) for s in stats]
            w = average_weights(local, sizes, str(plan["weighting"]))
        if not np.all(np.abs(w) < WEIGHT_RANGE):
            return float("nan"), t
    return evaluate(w, add_bias(test.X), test.y).accuracy, None


def _scaled(data: Dataset, scaler: Scaler) -> Dataset:
    return Dataset(scaler.transform(data.X), data.y, data.ids, data.feature_names, data.source)


def simulate_enclave_sum(plan: MomentsFixedPoint, members: list[Dataset]) -> Scaler:
    """Members encode their moments at ``plan.frac_bits``; sum the integers; decode the scaler."""
    ints = [
        to_fixed_point(plan.member_vector(m.X, source=m.source), plan.frac_bits) for m in members
    ]
    total = [sum(column) for column in zip(*ints, strict=True)]
    return plan.scaler(fixed_to_float(total, plan.frac_bits), contributions=len(members))


def _power_of_two_bounds(validation: Dataset) -> np.ndarray:
    return np.asarray(2.0 ** np.ceil(np.log2(4 * np.abs(validation.X).max(axis=0))))


def standardisation_experiment(seed: int = 0) -> StandardisationResult:
    """Run the experiment on ``demo_split(seed, scaler_fit="none")``; see the module docstring."""
    guest, host, test = demo_split(seed, scaler_fit="none")
    members = [guest, host]
    lr = float(ENCRYPTED_DEFAULTS["learning_rate"])
    stable = 0.5 * min(max_stable_lr(sufficient_stats(add_bias(m.X), m.y), 0.01) for m in members)

    plan = moments_fixed_point(ROWS_MAX, _power_of_two_bounds(test), members_max=MEMBERS_MAX)
    federated = simulate_enclave_sum(plan, members)
    one_plan = moments_fixed_point(
        ROWS_MAX, ONE_BOUND, n_features=guest.n_features, members_max=MEMBERS_MAX
    )
    one_bound = simulate_enclave_sum(one_plan, members)
    central = Scaler.fit(np.vstack([m.X for m in members]))

    def accuracy(scaler: Scaler) -> float:
        return _train([_scaled(m, scaler) for m in members], _scaled(test, scaler), lr)[0]

    raw, diverged_at = _train(members, test, lr)
    return StandardisationResult(
        raw=raw,
        raw_diverged_at=diverged_at,
        raw_stable=_train(members, test, stable)[0],
        federated=accuracy(federated),
        federated_one_bound=accuracy(one_bound),
        central=accuracy(central),
        raw_stable_lr=stable,
        max_scale_error=float(np.max(np.abs(federated.scale / central.scale - 1.0))),
        one_bound_flagged=len(set(one_bound.constant) | set(one_bound.imprecise)),
    )


__all__ = ["StandardisationResult", "simulate_enclave_sum", "standardisation_experiment"]
