"""DpMechanism: the noise it adds, where it adds it, and what it releases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from homolr.errors import ConfigError
from homolr.privacy import (
    DpMechanism,
    PrivacyConfig,
    admit_model,
    deterministic_source,
    gaussian_noise,
    record_sum_sensitivity,
    snap_to_grid,
)

MEMBER = PrivacyConfig(level="member", epsilon=1.0, delta=1e-5, clip=0.5)
RECORD = PrivacyConfig(
    level="record", epsilon=1.0, delta=1e-5, clip=3.0, model_bound=2.0, min_samples=100
)


def test_member_release_is_the_sum_plus_calibrated_noise_on_the_grid() -> None:
    mech = DpMechanism.for_member_round(
        MEMBER, 4.0, n_members=3, frac_bits=24, source=deterministic_source(b"m")
    )
    assert mech.sensitivity == 0.5 and mech.sigma == 2.0 and mech.radius is None
    total = np.linspace(-1, 1, 31)
    expected = snap_to_grid(total + gaussian_noise(31, 2.0, source=deterministic_source(b"m")), 24)
    assert np.array_equal(mech.release(total), expected)


def test_noise_has_the_advertised_std() -> None:
    mech = DpMechanism.for_member_round(
        MEMBER, 3.0, n_members=2, frac_bits=24, source=deterministic_source(b"std")
    )
    draws = np.concatenate([mech.release(np.zeros(1000)) for _ in range(20)])
    assert draws.std() == pytest.approx(1.5, rel=0.02)
    assert stats.kstest(draws, stats.norm(scale=1.5).cdf).pvalue > 0.01


def test_record_release_noises_then_projects_then_snaps() -> None:
    n, d, lr, alpha, f = 2, 31, 0.3, 0.01, 24
    mech = DpMechanism.for_record_round(
        RECORD,
        5.0,
        lr=lr,
        alpha=alpha,
        n_members=n,
        n_weights=d,
        frac_bits=f,
        source=deterministic_source(b"r"),
    )
    sens = record_sum_sensitivity(RECORD, lr=lr, alpha=alpha, n_members=n, n_weights=d, frac_bits=f)
    assert mech.sensitivity == sens and mech.sigma == 5.0 * sens
    assert mech.radius == n * 2.0
    total = np.full(d, 0.01)  # small: the noise decides whether the projection bites
    out = mech.release(total)
    noisy = total + gaussian_noise(d, 5.0 * sens, source=deterministic_source(b"r"))
    scaled = noisy * min(1.0, 4.0 / float(np.linalg.norm(noisy)))
    assert np.linalg.norm(out) <= 4.0
    np.testing.assert_allclose(out, scaled, atol=2.0 ** -(f - 1))
    assert np.array_equal(np.ldexp(out, f), np.trunc(np.ldexp(out, f)))
    # a large decrypted sum is pulled back onto the ball: the PS's average has norm <= B
    big = mech.release(np.full(d, 10.0))
    assert np.linalg.norm(big / n) <= 2.0
    assert np.linalg.norm(big / n) == pytest.approx(2.0, rel=1e-6)


def test_real_source_is_the_default() -> None:
    a = DpMechanism.for_member_round(MEMBER, 1.0, n_members=2, frac_bits=24)
    b = DpMechanism.for_member_round(MEMBER, 1.0, n_members=2, frac_bits=24)
    assert not np.array_equal(a.release(np.zeros(8)), b.release(np.zeros(8)))


def test_admit_model_bounds_whatever_the_operator_sends() -> None:
    w = np.full(31, 5.0)
    admitted = admit_model(RECORD, w, 24)
    assert np.linalg.norm(admitted) <= 2.0
    assert np.array_equal(np.ldexp(admitted, 24), np.trunc(np.ldexp(admitted, 24)))
    small = np.full(31, 0.25)
    assert np.array_equal(admit_model(RECORD, small, 24), small)
    assert np.array_equal(admit_model(MEMBER, w, 24), w)


def test_wrong_level_and_bad_inputs_are_refused() -> None:
    with pytest.raises(ConfigError, match="level 'member'"):
        DpMechanism.for_member_round(RECORD, 1.0, n_members=2, frac_bits=24)
    with pytest.raises(ConfigError, match="record-level"):
        DpMechanism.for_record_round(
            MEMBER, 1.0, lr=0.1, alpha=0.0, n_members=2, n_weights=3, frac_bits=24
        )
    with pytest.raises(ConfigError, match="exact integers"):
        DpMechanism.for_member_round(MEMBER, 1.0, n_members=2**30, frac_bits=24)
    mech = DpMechanism.for_member_round(MEMBER, 1.0, n_members=2, frac_bits=24)
    with pytest.raises(ConfigError, match="finite 1-D"):
        mech.release(np.array([np.inf, 0.0]))
    with pytest.raises(ConfigError, match="noise_multiplier"):
        DpMechanism(MEMBER, 0.5, 0.0, 24, 2)
