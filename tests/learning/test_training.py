"""Plaintext simulations of both modes: averaging, tolerance stop, convergence to the optimum."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from homolr.errors import ConfigError
from homolr.learning import (
    Dataset,
    add_bias,
    average_weights,
    sgd_epochs,
    sufficient_stats,
    taylor_gradient,
    taylor_local,
    train_fedavg,
    train_taylor,
)


def synthetic(seed: int, m: int, n: int = 4) -> Dataset:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(m, n))
    truth = np.linspace(-1.5, 1.5, n)
    y = (rng.random(m) < 1 / (1 + np.exp(-(X @ truth + 0.3)))).astype(np.int64)
    return Dataset(X, y, None, tuple(f"f{i}" for i in range(n)), f"synthetic {seed}")


WORKERS = [synthetic(1, 150), synthetic(2, 90)]
VALID = synthetic(3, 200)


def test_average_weights() -> None:
    local = [np.array([1.0, 2.0]), np.array([3.0, 6.0])]
    np.testing.assert_allclose(average_weights(local, [1, 3], "equal"), [2.0, 4.0])
    np.testing.assert_allclose(average_weights(local, [1, 3], "samples"), [2.5, 5.0])
    with pytest.raises(ConfigError, match="equal, samples"):
        average_weights(local, [1, 3], "median")


def test_taylor_local_is_the_gradient_step_and_quantises() -> None:
    Xb, y = add_bias(WORKERS[0].X), WORKERS[0].y
    w = np.random.default_rng(0).normal(size=Xb.shape[1])
    stats = sufficient_stats(Xb, y)
    exact = taylor_local(w, stats, 0.1, 0.01, None)
    np.testing.assert_allclose(exact, w - 0.1 * taylor_gradient(w, Xb, y, 0.01), atol=1e-12)
    coarse = taylor_local(w, stats, 0.1, 0.01, 6)
    assert 0 < np.abs(coarse - exact).max() < 2**-6 * (Xb.shape[1] * 4 + 2)


def test_train_taylor_matches_a_manual_loop_with_sample_weighting() -> None:
    result = train_taylor(
        WORKERS, iters=7, lr0=0.3, schedule="constant", init_weight=0.5, weighting="samples"
    )
    w = np.full(5, 0.5)
    for _ in range(7):
        local = [w - 0.3 * taylor_gradient(w, add_bias(d.X), d.y, 0.01) for d in WORKERS]
        w = (150 * local[0] + 90 * local[1]) / 240
    np.testing.assert_allclose(result.w, w, atol=1e-12)
    assert result.rounds == 7 and not result.converged and result.history == []


def test_train_taylor_tolerance_stops_early_and_history_ends_with_the_last_round() -> None:
    result = train_taylor(
        WORKERS, iters=5000, lr0=1.0, schedule="constant", tol=1e-6, validation=VALID, eval_every=50
    )
    assert result.converged and result.rounds < 5000
    assert result.history[-1][0] == result.rounds - 1
    assert [t for t, _ in result.history[:-1]] == list(range(0, result.rounds - 1, 50))[
        : len(result.history) - 1
    ]
    # At the fixed point the (averaged) Taylor gradient vanishes.
    grads = [taylor_gradient(result.w, add_bias(d.X), d.y, 0.01) for d in WORKERS]
    assert np.abs(np.mean(grads, axis=0)).max() < 1e-5


def test_fedavg_full_batch_reaches_the_centralised_optimum() -> None:
    result = train_fedavg(
        WORKERS, rounds=400, lr=1.0, batch_size=0, local_epochs=1, alpha=0.0, tol=1e-9
    )
    X = np.vstack([d.X for d in WORKERS])
    y = np.concatenate([d.y for d in WORKERS])
    central = LogisticRegression(C=np.inf, tol=1e-10, max_iter=1000).fit(X, y)
    np.testing.assert_allclose(result.w[1:], central.coef_[0], atol=1e-4)
    np.testing.assert_allclose(result.w[0], central.intercept_[0], atol=1e-4)


def test_fedavg_minibatch_is_seeded() -> None:
    kwargs = {"rounds": 3, "lr": 0.1, "batch_size": 16, "local_epochs": 2, "alpha": 0.01}
    a = train_fedavg(WORKERS, seed=1, **kwargs)  # type: ignore[arg-type]
    b = train_fedavg(WORKERS, seed=1, **kwargs)  # type: ignore[arg-type]
    c = train_fedavg(WORKERS, seed=2, **kwargs)  # type: ignore[arg-type]
    np.testing.assert_array_equal(a.w, b.w)
    assert not np.array_equal(a.w, c.w)


def test_worker_sets_are_checked() -> None:
    with pytest.raises(ConfigError, match="at least one worker"):
        train_taylor([], iters=1, lr0=0.1)
    odd = synthetic(4, 10, n=3)
    with pytest.raises(ConfigError, match="number of features"):
        train_fedavg([WORKERS[0], odd], rounds=1, lr=0.1, batch_size=0, local_epochs=1)


def test_fedavg_rng_factory_replays_per_round_generators() -> None:
    kwargs = {"rounds": 3, "lr": 0.1, "batch_size": 16, "local_epochs": 1, "alpha": 0.0}
    calls: list[tuple[int, int]] = []

    def factory(t: int, k: int) -> np.random.Generator:
        calls.append((t, k))
        return np.random.default_rng([7, t, k])

    a = train_fedavg(WORKERS, rng_factory=factory, **kwargs)  # type: ignore[arg-type]
    assert calls == [(t, k) for t in range(3) for k in range(2)]
    # Manual replay with the same per-round generators.
    w = np.zeros(5)
    for t in range(3):
        local = [
            sgd_epochs(
                w,
                add_bias(d.X),
                d.y,
                lr=0.1,
                alpha=0.0,
                batch_size=16,
                epochs=1,
                rng=np.random.default_rng([7, t, k]),
            )
            for k, d in enumerate(WORKERS)
        ]
        w = (150 * local[0] + 90 * local[1]) / 240
    np.testing.assert_allclose(a.w, w, rtol=1e-13)
