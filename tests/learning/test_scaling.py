"""Federated standardisation: moments, the global scaler against numpy/sklearn, fixed point."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.preprocessing import StandardScaler

from homolr.crypto._slots import PackingSpec, pack_ints, unpack_ints
from homolr.crypto.encoding import fixed_to_float, to_fixed_point
from homolr.errors import ConfigError, DataError
from homolr.learning.scaling import (
    CANCELLATION_FACTOR,
    Moments,
    Scaler,
    combine_moments,
    feature_moments,
    global_scaler,
    moments_fixed_point,
    moments_from_vector,
    moments_vector,
    scaler_warnings,
    unstandardize,
)

EPS = float(np.finfo(np.float64).eps)


def wisconsin() -> np.ndarray:
    return np.asarray(load_breast_cancer().data, dtype=np.float64)


def split(X: np.ndarray, parts: int, seed: int = 0) -> list[np.ndarray]:
    rows = np.random.default_rng(seed).permutation(len(X))
    return [X[chunk] for chunk in np.array_split(rows, parts)]


def pooled_scaler(members: list[np.ndarray], shift: np.ndarray | None = None) -> Scaler:
    total = combine_moments([feature_moments(m, shift=shift) for m in members])
    return global_scaler(total.n, total.sums, total.sumsq, shift=shift)


# ------------------------------------------------------------------------------ moments


def test_feature_moments_against_numpy() -> None:
    X = np.random.default_rng(0).normal(size=(50, 4)) * [1, 10, 100, 1000]
    shift = np.array([0.5, -3.0, 100.0, 2.0])
    n, sums, sumsq = feature_moments(X, shift=shift)
    assert n == 50
    np.testing.assert_allclose(sums, (X - shift).sum(axis=0), rtol=1e-13)
    np.testing.assert_allclose(sumsq, ((X - shift) ** 2).sum(axis=0), rtol=1e-13)
    plain = feature_moments(X)
    np.testing.assert_array_equal(plain.sums, X.sum(axis=0))


def test_moments_vector_layout_and_inverse() -> None:
    moments = Moments(7, np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0, 6.0]))
    vector = moments_vector(*moments)
    np.testing.assert_array_equal(vector, [7, 1, 2, 3, 4, 5, 6])
    back = moments_from_vector(vector)
    assert back.n == 7 and isinstance(back.n, int)
    np.testing.assert_array_equal(back.sums, moments.sums)
    np.testing.assert_array_equal(back.sumsq, moments.sumsq)


@pytest.mark.parametrize(
    ("vector", "needle"),
    [
        ([1.0, 2.0], "1 \\+ 2"),
        ([1.0], "1 \\+ 2"),
        ([2.5, 1.0, 1.0], "integer"),
        ([-1, 0, 0], "non-negative"),
    ],
)
def test_moments_from_vector_refuses_bad_vectors(vector: list[float], needle: str) -> None:
    with pytest.raises(DataError, match=needle):
        moments_from_vector(vector)


# ------------------------------------------------------------------------------ global scaler


@pytest.mark.parametrize("members", [1, 2, 7])
def test_global_scaler_equals_standard_scaler_on_pooled_wisconsin(members: int) -> None:
    X = wisconsin()
    scaler = pooled_scaler(split(X, members))
    reference = StandardScaler().fit(X)
    np.testing.assert_allclose(scaler.mean, reference.mean_, rtol=1e-13)
    # Raw Wisconsin: (mean / std)**2 is at most ~3e2, so ~1e-13 relative is the float64 bound.
    np.testing.assert_allclose(scaler.scale, reference.scale_, rtol=1e-11)
    assert scaler.constant == ()
    np.testing.assert_allclose(scaler.transform(X), reference.transform(X), atol=1e-10)


def cancellation_bound(X: np.ndarray, shift: float) -> np.ndarray:
    """The documented absolute error bound of the variance (module docstring)."""
    return np.asarray(CANCELLATION_FACTOR * EPS * np.mean((X - shift) ** 2, axis=0))


def accurate_mean_var(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Correctly rounded sums (math.fsum), two-pass variance: the reference for large offsets."""
    mean = np.array([math.fsum(col) / len(col) for col in X.T])
    var = np.array([math.fsum((col - m) ** 2) / len(col) for col, m in zip(X.T, mean, strict=True)])
    return mean, var


def large_offset_data(n: int = 20_000) -> np.ndarray:
    rng = np.random.default_rng(3)
    # values ~4000 with standard deviations from 1e-1 down to 1e-2, four members' worth
    return 4000.0 + rng.normal(size=(n, 3)) * [1e-1, 3e-2, 1e-2] + [0.0, 250.0, -125.5]


def test_large_offsets_without_shift_stay_within_the_documented_bound() -> None:
    X = large_offset_data()
    scaler = pooled_scaler(split(X, 4))
    mean_ref, var_ref = accurate_mean_var(X)
    err = np.abs(scaler.scale**2 - var_ref)
    assert np.all(err <= cancellation_bound(X, 0.0)), (err, cancellation_bound(X, 0.0))
    # 1e-2 spread on 4000 without a shift: the bound says so (std 1e-1 is still fine).
    assert scaler.imprecise == (2,) and scaler.constant == ()
    np.testing.assert_allclose(scaler.mean, mean_ref, rtol=16 * EPS)
    # The bound is loose but meaningful: 1e-2 std on 4000 keeps better than 1e-2 relative.
    np.testing.assert_allclose(scaler.scale, np.sqrt(var_ref), rtol=1e-2)


def test_a_shift_near_the_mean_removes_the_cancellation() -> None:
    X = large_offset_data()
    shift = np.array([4000.0, 4250.0, 3874.5])  # public round numbers, not the data's means
    scaler = pooled_scaler(split(X, 4), shift=shift)
    mean_ref, var_ref = accurate_mean_var(X)
    np.testing.assert_allclose(scaler.scale, np.sqrt(var_ref), rtol=1e-12)
    np.testing.assert_allclose(scaler.mean, mean_ref, rtol=4 * EPS)
    assert scaler.imprecise == ()


def test_hopeless_cancellation_is_called_constant_never_garbage() -> None:
    rng = np.random.default_rng(4)
    X = 1e8 + rng.normal(size=(5_000, 2))
    unshifted = pooled_scaler(split(X, 3))
    # Q/n ~ 1e16: the bound (~1.4e2) swamps the unit variance, so it cannot be measured.
    assert unshifted.constant == (0, 1) and unshifted.imprecise == ()
    np.testing.assert_array_equal(unshifted.scale, [1.0, 1.0])
    shifted = pooled_scaler(split(X, 3), shift=np.full(2, 1e8))
    np.testing.assert_allclose(shifted.scale, X.std(axis=0), rtol=1e-12)
    assert shifted.constant == ()


def test_zero_variance_feature_gets_scale_one_and_is_listed() -> None:
    X = np.random.default_rng(5).normal(size=(30, 3))
    X[:, 1] = 4321.125
    scaler = pooled_scaler(split(X, 2))
    assert scaler.constant == (1,)
    assert scaler.scale[1] == 1.0 and scaler.mean[1] == 4321.125
    np.testing.assert_array_equal(scaler.transform(X)[:, 1], np.zeros(30))
    assert Scaler.fit(X).constant == (1,)
    assert scaler_warnings(scaler, ["a", "b", "c"]) == [
        "constant over all members (scale set to 1.0, no information): 'b'"
    ]


def test_inconsistent_totals_are_refused() -> None:
    with pytest.raises(DataError, match="negative variance"):
        global_scaler(10, [10.0, 0.0], [5.0, 1.0])  # mean 1, E[x^2] 0.5
    with pytest.raises(DataError, match="row count"):
        global_scaler(0, [0.0], [0.0])
    with pytest.raises(DataError, match=">= 0"):
        global_scaler(3, [0.0], [-1.0])


def test_scaler_validation_and_inverse() -> None:
    scaler = Scaler(np.array([1.0, 2.0]), np.array([2.0, 4.0]))
    X = np.array([[3.0, 6.0], [1.0, 2.0]])
    np.testing.assert_array_equal(scaler.transform(X), [[1.0, 1.0], [0.0, 0.0]])
    np.testing.assert_array_equal(scaler.inverse_transform(scaler.transform(X)), X)
    with pytest.raises(DataError, match="3 features"):
        scaler.transform(np.zeros((2, 3)))
    with pytest.raises(ConfigError, match="> 0"):
        Scaler(np.zeros(2), np.array([1.0, 0.0]))
    with pytest.raises(ConfigError, match="one length"):
        Scaler(np.zeros(2), np.ones(3))
    assert scaler == Scaler(np.array([1.0, 2.0]), np.array([2.0, 4.0]))
    assert scaler != Scaler(np.array([1.0, 2.0]), np.array([2.0, 5.0]))


def test_unstandardize_scores_raw_data_identically() -> None:
    X = wisconsin()
    y = load_breast_cancer().target
    scaler = pooled_scaler(split(X, 2))
    Z = scaler.transform(X)
    rng = np.random.default_rng(6)
    coef, intercept = rng.normal(size=30), 0.37
    coef_raw, intercept_raw = unstandardize(coef, intercept, scaler)
    z_scores = Z @ coef + intercept
    raw_scores = X @ coef_raw + intercept_raw
    assert np.max(np.abs(raw_scores - z_scores)) < 1e-12 * np.max(np.abs(z_scores)) * 1e2
    p_z = 1 / (1 + np.exp(-z_scores))
    p_raw = 1 / (1 + np.exp(-raw_scores))
    assert np.max(np.abs(p_z - p_raw)) < 1e-12
    np.testing.assert_array_equal(z_scores >= 0, raw_scores >= 0)
    assert y.shape == (569,)
    with pytest.raises(ConfigError, match="shape"):
        unstandardize(coef[:5], 0.0, scaler)


# ------------------------------------------------------------------------------ fixed point


def test_worst_case_plan_raw_wisconsin_scale_1e6_rows_1024_members() -> None:
    plan = moments_fixed_point(10**6, 4300.0, n_features=2, members_max=1024)
    assert plan.frac_bits == 33 and plan.exponents == (13, 13)
    assert plan.largest_total() <= 2**63 - 1
    # Worst member: 10**6 rows at the bound, both signs.
    X = np.empty((10**6, 2))
    X[:, 0] = 4300.0
    X[:, 1] = -4300.0
    member = to_fixed_point(plan.member_vector(X), plan.frac_bits)
    total = [1024 * v for v in member]  # 1,024 identical worst members
    assert all(-(2**63) <= v <= 2**63 - 1 for v in total)
    assert max(abs(v) for v in total) <= plan.largest_total()
    # One more fractional bit would overflow the signed 64-bit sum: the plan is tight.
    assert 1024 * to_fixed_point(plan.member_vector(X), plan.frac_bits + 1)[0] > 2**63 - 1
    # The real packing (64-bit values, 10 bits of headroom) sums 1,024 of them without a carry.
    spec = PackingSpec()
    packed = pack_ints(member, spec, 2048)
    summed = unpack_ints([1024 * p for p in packed], len(member), spec, 1024, 2048)
    assert summed == total
    decoded = fixed_to_float(summed, plan.frac_bits)
    scaler = plan.scaler(decoded, contributions=1024)
    np.testing.assert_allclose(scaler.mean, [4300.0, -4300.0], rtol=1e-12)
    assert scaler.constant == (0, 1)


def test_plan_bound_formula() -> None:
    for rows, members in [(1, 1), (569, 2), (10**6, 1024), (10**9, 1024)]:
        plan = moments_fixed_point(rows, 1.0, n_features=1, members_max=members)
        f = plan.frac_bits
        bound = members * (rows * 2**f * (1 + 2**-20) + 1)
        assert bound <= 2**63 - 1 < members * (rows * 2 ** (f + 1) * (1 + 2**-20) + 1) or f == 62
    with pytest.raises(ConfigError, match="cannot fit"):
        moments_fixed_point(2**62, 1.0, n_features=1, members_max=4)


def test_exponents_are_the_smallest_power_of_two_bound() -> None:
    plan = moments_fixed_point(100, [4300.0, 1.0, 0.5, 0.03, 4096.0, 4096.5])
    assert plan.exponents == (13, 0, -1, -5, 12, 13)
    assert plan.length == 13


def simulate(plan_bounds: np.ndarray, members: list[np.ndarray], rows_max: int) -> Scaler:
    """Members encode, the enclave sums the integers and decodes (crypto left out)."""
    plan = moments_fixed_point(rows_max, plan_bounds, members_max=1024)
    ints = [to_fixed_point(plan.member_vector(m), plan.frac_bits) for m in members]
    total = [sum(column) for column in zip(*ints, strict=True)]
    return plan.scaler(fixed_to_float(total, plan.frac_bits), contributions=len(members))


def test_fixed_point_round_trip_matches_sklearn_with_per_feature_bounds() -> None:
    X = wisconsin()
    members = split(X, 3)
    bounds = 4.0 * np.abs(X).max(axis=0)  # a public per-feature bound with room to spare
    scaler = simulate(bounds, members, rows_max=10**6)
    reference = StandardScaler().fit(X)
    np.testing.assert_allclose(scaler.mean, reference.mean_, rtol=1e-9)
    np.testing.assert_allclose(scaler.scale, reference.scale_, rtol=1e-8)
    assert scaler.constant == ()


def test_one_bound_for_all_features_flags_the_small_ones_never_misleads() -> None:
    X = wisconsin()
    scaler = simulate(np.full(30, 4300.0), split(X, 3), rows_max=10**6)
    reference = StandardScaler().fit(X)
    # 2**-34 resolution on values pre-scaled by 2**-13: features with a small spread are
    # flagged (constant when hopeless, imprecise when the bound is > 1e-3 of the scale) ...
    flagged = set(scaler.constant) | set(scaler.imprecise)
    assert flagged and all(reference.scale_[j] < 0.2 for j in flagged)
    assert not set(scaler.constant) & set(scaler.imprecise)
    # ... and every feature not flagged is as precise as promised.
    ok = [j for j in range(30) if j not in flagged]
    rel = np.abs(scaler.scale[ok] - reference.scale_[ok]) / reference.scale_[ok]
    assert len(ok) >= 10 and float(rel.max()) < 1e-3
    rel_flagged = [
        abs(scaler.scale[j] - reference.scale_[j]) / reference.scale_[j] for j in scaler.imprecise
    ]
    assert max(rel_flagged) > 1e-4  # the flag is not decorative: these really are off
    names = [f"x{j}" for j in range(30)]
    notes = scaler_warnings(scaler, names)
    assert any("tighter bound" in n and f"'x{scaler.imprecise[0]}'" in n for n in notes)


def test_member_vector_refuses_data_outside_the_plan() -> None:
    plan = moments_fixed_point(10, [100.0, 5.0])
    with pytest.raises(DataError, match=r"guest\.csv: row 2, feature 1: value 6\.5 .*<= 5"):
        plan.member_vector(np.array([[1.0, 2.0], [3.0, 6.5]]), source="guest.csv")
    with pytest.raises(DataError, match="11 rows, more than the plan's n_rows_max 10"):
        plan.member_vector(np.zeros((11, 2)))
    shifted = plan.member_vector(np.array([[1000.0, 2.0]]), shift=[950.0, 0.0])
    assert shifted[0] == 1.0
    with pytest.raises(DataError, match="3000 contributions"):
        plan.scaler(shifted, contributions=3000)
    assert math.isclose(plan.scaler(shifted, contributions=1, shift=[950.0, 0.0]).mean[0], 1000.0)
