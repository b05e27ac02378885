"""The accountant against dp_accounting called directly, and its own invariants."""

from __future__ import annotations

import itertools
import math

import dp_accounting
import pytest
from dp_accounting.pld import PLDAccountant
from dp_accounting.rdp import RdpAccountant

from homolr.errors import ConfigError, PolicyError
from homolr.privacy import (
    CALIBRATION_RTOL,
    PrivacyConfig,
    PrivacyLedger,
    calibrate_noise_multiplier,
    epsilon_spent,
    resolve_noise_multiplier,
    rounds_within_budget,
)

CASES = [(1.0, 1, 1e-5), (5.0, 100, 1e-5), (20.0, 400, 1e-6), (50.0, 400, 1e-5), (2.0, 10, 1e-3)]


@pytest.mark.parametrize(("z", "rounds", "delta"), CASES)
def test_epsilon_equals_dp_accounting_analytic_gaussian(
    z: float, rounds: int, delta: float
) -> None:
    direct = dp_accounting.get_epsilon_gaussian(z / math.sqrt(rounds), delta)
    assert epsilon_spent(z, rounds, delta) == pytest.approx(direct, rel=1e-12)


@pytest.mark.parametrize(("z", "rounds", "delta"), CASES[:3])
def test_epsilon_matches_pld_composition_and_beats_rdp(z: float, rounds: int, delta: float) -> None:
    # The composition identity (T Gaussians of multiplier z = one of z / sqrt(T)) checked
    # against dp_accounting's accountants composing the T events themselves.
    pld = PLDAccountant(value_discretization_interval=1e-4)
    pld.compose(dp_accounting.GaussianDpEvent(z), rounds)
    rdp = RdpAccountant()
    rdp.compose(dp_accounting.GaussianDpEvent(z), rounds)
    ours = epsilon_spent(z, rounds, delta)
    assert ours == pytest.approx(pld.get_epsilon(delta), rel=1e-3)
    assert ours < rdp.get_epsilon(delta)


def test_epsilon_is_monotone() -> None:
    by_rounds = [epsilon_spent(10.0, t, 1e-5) for t in (0, 1, 2, 10, 100, 1000)]
    assert by_rounds[0] == 0.0
    assert all(a < b for a, b in itertools.pairwise(by_rounds))
    by_noise = [epsilon_spent(z, 50, 1e-5) for z in (1.0, 2.0, 5.0, 20.0, 80.0)]
    assert all(a > b for a, b in itertools.pairwise(by_noise))
    by_delta = [epsilon_spent(5.0, 50, d) for d in (1e-8, 1e-6, 1e-4, 1e-2)]
    assert all(a > b for a, b in itertools.pairwise(by_delta))


@pytest.mark.parametrize(
    ("eps", "delta", "rounds"), [(0.5, 1e-5, 30), (1.0, 1e-5, 400), (8, 1e-6, 5)]
)
def test_calibration_round_trip(eps: float, delta: float, rounds: int) -> None:
    z = calibrate_noise_multiplier(eps, delta, rounds)
    assert epsilon_spent(z, rounds, delta) <= eps
    assert epsilon_spent(z * (1 - 10 * CALIBRATION_RTOL), rounds, delta) > eps
    # and the closed form: the single Gaussian of std z / sqrt(T) that meets (eps, delta)
    sigma = dp_accounting.get_sigma_gaussian(eps, delta)
    assert z == pytest.approx(sigma * math.sqrt(rounds), rel=1e-7)


def test_calibration_refuses_the_unreachable() -> None:
    with pytest.raises(ConfigError, match="unreachable"):
        calibrate_noise_multiplier(1e-12, 1e-12, 10**6)
    with pytest.raises(ConfigError, match="target_epsilon"):
        calibrate_noise_multiplier(0.0, 1e-5, 10)


def test_rounds_within_budget_is_the_last_round_that_fits() -> None:
    z, eps, delta = 30.0, 1.0, 1e-5
    k = rounds_within_budget(z, eps, delta, 10_000)
    assert 0 < k < 10_000
    assert epsilon_spent(z, k, delta) <= eps < epsilon_spent(z, k + 1, delta)
    assert rounds_within_budget(z, eps, delta, k // 2) == k // 2
    assert rounds_within_budget(0.1, 0.01, delta, 100) == 0


def test_ledger_spends_and_refuses_past_the_budget() -> None:
    z, delta, budget = 30.0, 1e-5, 1.0
    fit = rounds_within_budget(z, budget, delta, 10_000)
    ledger = PrivacyLedger(z, delta, budget=budget)
    assert ledger.epsilon == 0.0
    for r in range(fit):
        assert not ledger.exhausted_after(r)
        ledger.spend(r)
    assert ledger.releases == fit
    assert ledger.epsilon == pytest.approx(epsilon_spent(z, fit, delta))
    assert ledger.exhausted_after(fit)
    with pytest.raises(PolicyError, match="budget exhausted"):
        ledger.spend(fit)
    assert ledger.releases == fit  # a refused release is not recorded


def test_ledger_counts_every_release_even_in_the_same_round() -> None:
    ledger = PrivacyLedger(10.0, 1e-5)
    ledger.spend(0)
    ledger.spend(0)
    assert ledger.rounds == (0, 0)
    assert ledger.epsilon == pytest.approx(epsilon_spent(10.0, 2, 1e-5))
    assert not ledger.exhausted_after(10**6)  # no budget: records only


def test_ledger_from_config_calibrates_or_uses_the_multiplier() -> None:
    by_eps = PrivacyConfig(level="member", epsilon=2.0, delta=1e-5, clip=1.0)
    ledger = PrivacyLedger.from_config(by_eps, 50)
    assert ledger.noise_multiplier == calibrate_noise_multiplier(2.0, 1e-5, 50)
    assert ledger.budget == 2.0
    by_z = PrivacyConfig(level="member", noise_multiplier=3.0, delta=1e-5, clip=1.0)
    assert resolve_noise_multiplier(by_z, 50) == 3.0
    assert PrivacyLedger.from_config(by_z, 50).budget is None
