"""The raw-data experiment quoted in the documentation cannot silently regress."""

from __future__ import annotations

import math

import numpy as np
import pytest

from homolr.learning.data import demo_split
from homolr.learning.experiments import simulate_enclave_sum, standardisation_experiment
from homolr.learning.scaling import Scaler, moments_fixed_point


def test_federated_standardisation_matches_central_and_raw_data_fails() -> None:
    result = standardisation_experiment(seed=0)
    # (a) raw data with the recommended plan leaves the encrypted path's range at once ...
    assert math.isnan(result.raw) and result.raw_diverged_at is not None
    assert result.raw_diverged_at < 5
    # ... and even a stable learning rate (~2e-6) learns little in 400 rounds.
    assert result.raw_stable_lr < 1e-5 and result.raw_stable < 0.90
    # (b) federated standardisation within 1 point of (c) central standardisation.
    assert abs(result.federated - result.central) <= 0.01
    assert result.central == pytest.approx(0.947, abs=0.002)  # 108 / 114 on seed 0
    assert result.max_scale_error < 1e-8
    assert result.federated_one_bound == pytest.approx(result.central, abs=0.01)
    assert result.one_bound_flagged > 0


def test_simulated_enclave_sum_is_the_central_scaler() -> None:
    guest, host, _ = demo_split(1, scaler_fit="none")
    plan = moments_fixed_point(10**6, 8192.0, n_features=30, members_max=2)
    federated = simulate_enclave_sum(plan, [guest, host])
    central = Scaler.fit(np.vstack([guest.X, host.X]))
    np.testing.assert_allclose(federated.mean, central.mean, rtol=1e-9)
    good = [j for j in range(30) if j not in federated.imprecise]
    np.testing.assert_allclose(federated.scale[good], central.scale[good], rtol=1e-3)
