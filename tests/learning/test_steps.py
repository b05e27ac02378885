"""Local steps: the Taylor step as an affine map, schedules, quantisation, exact-sigmoid SGD."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from homolr.errors import ConfigError
from homolr.learning import (
    SCHEDULES,
    add_bias,
    learning_rate,
    linear_update,
    logistic_gradient,
    max_stable_lr,
    quantize,
    sgd_epochs,
    sufficient_stats,
    taylor_gradient,
)


def random_problem(seed: int, m: int = 40, n: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return add_bias(rng.normal(size=(m, n))), rng.integers(0, 2, m)


def test_taylor_gradient_matches_a_per_row_loop() -> None:
    Xb, y = random_problem(0)
    w = np.random.default_rng(1).normal(size=Xb.shape[1])
    expected = np.zeros_like(w)
    for row, label in zip(Xb, y, strict=True):
        z = sum(wi * xi for wi, xi in zip(w, row, strict=True))
        expected += (0.5 + 0.25 * z - label) * row
    expected = expected / len(y) + 0.01 * w
    np.testing.assert_allclose(taylor_gradient(w, Xb, y, 0.01), expected, rtol=1e-12)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    lr=st.floats(1e-4, 2.0),
    alpha=st.floats(0.0, 1.0),
    m=st.integers(1, 60),
)
def test_linear_update_equals_a_gradient_step_for_every_w(
    seed: int, lr: float, alpha: float, m: int
) -> None:
    Xb, y = random_problem(seed, m=m)
    M, b = linear_update(sufficient_stats(Xb, y), lr, alpha)
    rng = np.random.default_rng(seed + 1)
    for _ in range(3):
        w = rng.normal(size=Xb.shape[1]) * 3
        direct = w - lr * taylor_gradient(w, Xb, y, alpha)
        np.testing.assert_allclose(
            M @ w + b, direct, rtol=0, atol=1e-12 * max(1.0, np.abs(w).max())
        )


def test_sufficient_stats_shapes_and_values() -> None:
    Xb, y = random_problem(2, m=10, n=3)
    stats = sufficient_stats(Xb, y)
    assert stats.xtx.shape == (4, 4) and stats.xt_half_minus_y.shape == (4,)
    assert stats.n_samples == 10 and stats.dim == 4
    np.testing.assert_allclose(stats.xtx, stats.xtx.T)
    np.testing.assert_allclose(stats.xt_half_minus_y[0], 10 * 0.5 - y.sum())


def test_schedules() -> None:
    assert learning_rate("invsqrt", 0.15, 0) == 0.15
    assert learning_rate("invsqrt", 0.15, 3) == pytest.approx(0.075)
    assert learning_rate("constant", 0.3, 1000) == 0.3
    assert learning_rate("inverse", 1.0, 4, decay=0.5) == pytest.approx(1 / 3)
    assert set(SCHEDULES) == {"constant", "inverse", "invsqrt"}


def test_unknown_schedule_lists_allowed_values() -> None:
    with pytest.raises(ConfigError) as info:
        learning_rate("cosine", 0.1, 0)
    for name in SCHEDULES:
        assert name in str(info.value)
    assert "'cosine'" in str(info.value)


@pytest.mark.parametrize(
    ("lr0", "t", "decay"), [(0.0, 0, 1.0), (-1.0, 0, 1.0), (math.inf, 0, 1.0), (0.1, -1, 1.0)]
)
def test_schedule_rejects_bad_arguments(lr0: float, t: int, decay: float) -> None:
    with pytest.raises(ConfigError):
        learning_rate("invsqrt", lr0, t, decay=decay)
    with pytest.raises(ConfigError, match="decay"):
        learning_rate("inverse", 0.1, 1, decay=-1.0)


def test_quantize() -> None:
    x = np.array([0.1, -0.1, 1 / 3, 2.0**-30])
    q = quantize(x, 8)
    np.testing.assert_array_equal(q * 256, np.rint(x * 256))
    assert np.abs(q - x).max() <= 2.0**-9
    np.testing.assert_array_equal(quantize(x, 60), x)
    with pytest.raises(ConfigError):
        quantize(x, -1)


def test_logistic_gradient_matches_finite_differences() -> None:
    Xb, y = random_problem(3, m=30, n=4)
    yf = y.astype(float)
    w = np.random.default_rng(4).normal(size=Xb.shape[1])
    alpha = 0.05

    def objective(v: np.ndarray) -> float:
        z = Xb @ v
        return float(np.mean(np.logaddexp(0, z) - yf * z) + alpha / 2 * v @ v)

    eps = 1e-6
    numeric = np.array(
        [(objective(w + eps * e) - objective(w - eps * e)) / (2 * eps) for e in np.eye(len(w))]
    )
    np.testing.assert_allclose(logistic_gradient(w, Xb, yf, alpha), numeric, atol=1e-7)


def test_sgd_full_batch_is_plain_gradient_descent_and_ignores_rng() -> None:
    Xb, y = random_problem(5)
    w0 = np.zeros(Xb.shape[1])
    expected = w0.copy()
    for _ in range(3):
        expected = expected - 0.5 * logistic_gradient(expected, Xb, y.astype(float), 0.1)
    rng = np.random.default_rng(0)
    for batch in (0, -1, len(y), len(y) + 7):
        got = sgd_epochs(w0, Xb, y, lr=0.5, alpha=0.1, batch_size=batch, epochs=3, rng=rng)
        np.testing.assert_allclose(got, expected, rtol=1e-13)
    assert rng.integers(0, 1 << 30) == np.random.default_rng(0).integers(0, 1 << 30)
    np.testing.assert_array_equal(w0, 0.0)  # input not modified


def test_sgd_minibatch_depends_on_the_shuffle_and_reduces_the_loss() -> None:
    Xb, y = random_problem(6, m=200)
    w0 = np.zeros(Xb.shape[1])
    a = sgd_epochs(
        w0, Xb, y, lr=0.1, alpha=0.0, batch_size=16, epochs=5, rng=np.random.default_rng(1)
    )
    b = sgd_epochs(
        w0, Xb, y, lr=0.1, alpha=0.0, batch_size=16, epochs=5, rng=np.random.default_rng(1)
    )
    c = sgd_epochs(
        w0, Xb, y, lr=0.1, alpha=0.0, batch_size=16, epochs=5, rng=np.random.default_rng(2)
    )
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)

    def loss(v: np.ndarray) -> float:
        z = Xb @ v
        return float(np.mean(np.logaddexp(0, z) - y * z))

    assert loss(a) < loss(w0)
    assert np.array_equal(
        sgd_epochs(
            w0, Xb, y, lr=0.1, alpha=0.0, batch_size=16, epochs=0, rng=np.random.default_rng(1)
        ),
        w0,
    )
    with pytest.raises(ConfigError):
        sgd_epochs(
            w0, Xb, y, lr=0.1, alpha=0.0, batch_size=16, epochs=-1, rng=np.random.default_rng(1)
        )


def test_sgd_is_stable_for_huge_logits() -> None:
    Xb = add_bias(np.array([[1e4], [-1e4]]))
    y = np.array([0, 1])
    w = sgd_epochs(
        np.array([0.0, 10.0]),
        Xb,
        y,
        lr=1.0,
        alpha=0.0,
        batch_size=0,
        epochs=1,
        rng=np.random.default_rng(0),
    )
    assert np.all(np.isfinite(w))


def test_max_stable_lr_separates_convergence_from_divergence() -> None:
    Xb, y = random_problem(7, m=80, n=6)
    stats = sufficient_stats(Xb, y)
    bound = max_stable_lr(stats, 0.01)

    def final_norm(lr: float) -> float:
        M, b = linear_update(stats, lr, 0.01)
        w = np.zeros(Xb.shape[1])
        for _ in range(3000):
            w = M @ w + b
        return float(np.abs(w).max())

    assert np.isfinite(final_norm(0.95 * bound)) and final_norm(0.95 * bound) < 1e3
    assert not final_norm(1.05 * bound) < 1e6
