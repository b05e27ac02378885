"""The record-level sensitivity bound against the real Taylor step on neighbouring data sets.

One round's released quantity is the global model after the round: every member's ``M_i w +
b_i`` (homolr.learning's ``sufficient_stats`` + ``linear_update``), averaged as the PS does
(homolr.server.aggregation's ``global_weights``). Neighbours differ by one row added to or
removed from one member. The bound must hold for every observation; an adversarial
construction (docs/privacy.md, section 5.9) shows it is not loose.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pytest

from homolr.crypto.encoding import fixed_to_float
from homolr.errors import ConfigError
from homolr.learning import add_bias, linear_update, sufficient_stats
from homolr.privacy import (
    PrivacyConfig,
    clip_rows,
    project,
    record_sensitivity,
    record_sum_sensitivity,
    row_term_diameter,
)
from homolr.server.aggregation import global_weights

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Member:
    X: FloatArray  # features without the bias column, rows already clipped
    y: FloatArray


def _member_step_exact(member: Member, w: FloatArray, lr: float, alpha: float) -> FloatArray:
    M, b = linear_update(sufficient_stats(add_bias(member.X), member.y), lr, alpha)
    return np.asarray(M @ w + b)


def _rint_int(x: FloatArray, bits: int) -> list[int]:
    return [int(v) for v in np.rint(np.ldexp(x, bits)).reshape(-1)]


def _member_step_ints(member: Member, w: FloatArray, lr: float, alpha: float, f: int) -> list[int]:
    """What the worker computes on plaintexts: Q_f(M) Q_f(w) + Q_2f(b), exact integers at 2f."""
    M, b = linear_update(sufficient_stats(add_bias(member.X), member.y), lr, alpha)
    d = len(w)
    m_int = _rint_int(M, f)
    w_int = _rint_int(w, f)
    b_int = _rint_int(b, 2 * f)
    return [sum(m_int[i * d + j] * w_int[j] for j in range(d)) + b_int[i] for i in range(d)]


def _global_model(
    members: list[Member],
    w: FloatArray,
    lr: float,
    alpha: float,
    weighting: str,
    frac_bits: int | None,
) -> FloatArray:
    names = tuple(f"m{k}" for k in range(len(members)))
    samples = {name: len(m.y) for name, m in zip(names, members, strict=True)}
    factor = [samples[n] if weighting == "samples" else 1 for n in names]
    if frac_bits is None:
        total = sum(
            (c * _member_step_exact(m, w, lr, alpha) for c, m in zip(factor, members, strict=True)),
            np.zeros(len(w)),
        )
    else:  # the homomorphic sum is exact on integers; the key holder decodes it to float64
        ints = [
            [c * v for v in _member_step_ints(m, w, lr, alpha, frac_bits)]
            for c, m in zip(factor, members, strict=True)
        ]
        total = fixed_to_float([sum(col) for col in zip(*ints, strict=True)], 2 * frac_bits)
    return global_weights(np.asarray(total), names, weighting, samples)  # type: ignore[arg-type]


def _random_rows(rng: np.random.Generator, m: int, p: int, clip: float) -> Member:
    X = rng.normal(size=(m, p)) * rng.uniform(0.2, 2.0)
    X[rng.random(m) < 0.3] *= 10  # some rows far outside the ball, clipped to its surface
    return Member(clip_rows(X, clip), rng.integers(0, 2, size=m).astype(np.float64))


def _random_model(rng: np.random.Generator, d: int, bound: float) -> FloatArray:
    w = rng.normal(size=d)
    radius = bound if rng.random() < 0.5 else bound * rng.random() ** (1 / d)
    return project(w / np.linalg.norm(w) * radius, bound)


def _neighbours(
    rng: np.random.Generator, members: list[Member], clip: float
) -> tuple[list[Member], list[Member]]:
    """(larger, smaller): the data sets with and without one row at one member."""
    k = int(rng.integers(len(members)))
    larger = list(members)
    if rng.random() < 0.5:  # add a fresh row to member k
        extra = _random_rows(rng, 1, members[k].X.shape[1], clip)
        larger[k] = Member(np.vstack([members[k].X, extra.X]), np.append(members[k].y, extra.y))
        return larger, list(members)
    drop = int(rng.integers(len(members[k].y)))  # remove one of member k's rows
    smaller = list(members)
    smaller[k] = Member(np.delete(members[k].X, drop, axis=0), np.delete(members[k].y, drop))
    return larger, smaller


SETTINGS = [
    # lr, alpha, clip, bound, member sizes, features, weighting, frac_bits
    (0.3, 0.01, 3.0, 2.0, (5, 8), 4, "equal", None),
    (0.5, 0.0, 2.0, 5.0, (3, 3, 9), 6, "samples", None),
    (1.2, 0.1, 1.5, 0.5, (12, 4), 3, "equal", 16),
    (0.05, 0.01, 4.0, 1.0, (6, 20, 2), 5, "samples", 12),
    (0.8, 0.2, 6.0, 3.0, (2, 2), 2, "equal", 10),
]


@pytest.mark.parametrize(
    ("lr", "alpha", "clip", "bound", "sizes", "p", "weighting", "frac_bits"), SETTINGS
)
def test_no_neighbour_moves_the_global_model_more_than_the_bound(
    lr: float,
    alpha: float,
    clip: float,
    bound: float,
    sizes: tuple[int, ...],
    p: int,
    weighting: str,
    frac_bits: int | None,
) -> None:
    rng = np.random.default_rng([len(sizes), p, int(lr * 100)])
    d = p + 1
    worst = 0.0
    for _ in range(150):
        members = [_random_rows(rng, int(m + rng.integers(0, 3)), p, clip) for m in sizes]
        w = _random_model(rng, d, bound)
        larger, smaller = _neighbours(rng, members, clip)
        counts = [len(m.y) for m in larger]
        bits = {} if frac_bits is None else {"frac_bits": frac_bits, "n_weights": d}
        limit = record_sensitivity(lr, clip, bound, alpha, counts, weighting, **bits)
        a = _global_model(larger, w, lr, alpha, weighting, frac_bits)
        b = _global_model(smaller, w, lr, alpha, weighting, frac_bits)
        observed = float(np.linalg.norm(a - b))
        assert observed <= limit, (observed, limit, counts)
        worst = max(worst, observed / limit)
    assert worst > 0.01  # the comparison is not vacuous


def _adversarial_pair(
    clip: float, bound: float, m: int, p: int
) -> tuple[Member, Member, FloatArray]:
    """Rows ``C (cos t w^ + sin t e)`` (all of the member's ``m``) and the added ``C (cos t w^ -
    sin t e)``, ``y = 0``, ``w = B w^``; ``t`` maximises ``2 sin t (a cos t + 1/2)``. Their ``phi``
    differ only along ``e``, by ``2 C sin t (a cos t + 1/2)`` with ``a = C B / 4``: the ratio to the
    bound's ``K = C (a + 1)`` tends to 1 for large ``a``. ``w^`` carries the bias direction so
    that both rows keep a bias entry of exactly 1, which caps ``t`` at ``acos(1 / C)`` (for
    small ``C`` the ratio drops towards ~0.7 for that reason).
    """
    c = clip * (1 - 1e-12)
    a = 0.25 * c * bound
    grid = np.linspace(1e-3, math.acos(1 / c) - 1e-6, 20001)
    t = float(grid[np.argmax(np.sin(grid) * (a * np.cos(grid) + 0.5))])
    w_hat = np.zeros(p + 1)
    w_hat[0] = 1 / (c * math.cos(t))
    w_hat[1] = math.sqrt(1 - w_hat[0] ** 2)
    e = np.zeros(p + 1)
    e[2] = 1.0
    row_plus = c * (math.cos(t) * w_hat + math.sin(t) * e)
    row_minus = c * (math.cos(t) * w_hat - math.sin(t) * e)
    assert row_plus[0] == pytest.approx(1.0) and row_minus[0] == pytest.approx(1.0)
    base = Member(np.tile(row_plus[1:], (m, 1)), np.zeros(m))
    grown = Member(np.vstack([base.X, row_minus[1:]]), np.zeros(m + 1))
    return base, grown, bound * w_hat


@pytest.mark.parametrize(
    ("clip", "bound", "lr", "m", "n", "weighting"),
    [
        (3.0, 2.0, 0.3, 10, 2, "equal"),
        (2.0, 0.5, 1.0, 4, 3, "equal"),
        (8.0, 4.0, 0.1, 50, 2, "equal"),
        (3.0, 2.0, 0.3, 10, 2, "samples"),
        (1.5, 1.0, 0.7, 7, 4, "samples"),
    ],
)
def test_adversarial_neighbours_come_close_to_the_bound(
    clip: float, bound: float, lr: float, m: int, n: int, weighting: str
) -> None:
    p = 4
    base, grown, w = _adversarial_pair(clip, bound, m, p)
    # The other members hold the same rows, so that with sample weighting the pooled mean of phi
    # is also phi(row_plus).
    smaller = [base] * n
    larger = [grown, *[base] * (n - 1)]
    observed = float(
        np.linalg.norm(
            _global_model(larger, w, lr, 0.01, weighting, None)
            - _global_model(smaller, w, lr, 0.01, weighting, None)
        )
    )
    limit = record_sensitivity(lr, clip, bound, 0.01, [len(x.y) for x in larger], weighting)
    assert observed <= limit
    print(f"adversarial/bound = {observed / limit:.3f}")
    assert observed >= 0.5 * limit, observed / limit


def test_the_bound_is_tighter_than_twice_the_row_term() -> None:
    # K = 0.25 C^2 B + C (the diameter of the set of row terms) vs the naive 2 L.
    assert row_term_diameter(3.0, 2.0) == 0.25 * 9 * 2 + 3
    naive = 2 * (0.25 * 9 * 2 + 0.5 * 3)
    assert row_term_diameter(3.0, 2.0) < naive


def test_formula_and_scaling() -> None:
    k = row_term_diameter(3.0, 2.0)
    assert record_sensitivity(0.3, 3.0, 2.0, 0.01, [100, 50], "equal") == pytest.approx(
        0.3 * k / (2 * 50)
    )
    assert record_sensitivity(0.3, 3.0, 2.0, 0.01, [100, 50], "samples") == pytest.approx(
        0.3 * k / 150
    )
    exact = record_sensitivity(0.3, 3.0, 2.0, 0.01, [100, 50], "equal")
    fixed = record_sensitivity(0.3, 3.0, 2.0, 0.01, [100, 50], "equal", frac_bits=24, n_weights=31)
    assert exact < fixed < exact * 1.001  # 24-bit rounding adds little
    coarse = record_sensitivity(0.3, 3.0, 2.0, 0.01, [100, 50], "equal", frac_bits=8, n_weights=31)
    assert coarse > exact * 1.05


def test_sum_sensitivity_uses_the_attested_floor() -> None:
    config = PrivacyConfig(level="record", epsilon=1.0, clip=3.0, model_bound=2.0, min_samples=100)
    got = record_sum_sensitivity(
        config, lr=0.3, alpha=0.01, n_members=3, n_weights=31, frac_bits=24
    )
    per_model = record_sensitivity(
        0.3, 3.0, 2.0, 0.01, [100] * 3, "equal", frac_bits=24, n_weights=31
    )
    assert got == pytest.approx(3 * per_model)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lr": 0.0},
        {"clip": -1.0},
        {"model_bound": math.inf},
        {"alpha": -0.1},
        {"sample_counts": [5, 1]},
        {"sample_counts": []},
        {"weighting": "rows"},
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {
        "lr": 0.3,
        "clip": 3.0,
        "model_bound": 2.0,
        "alpha": 0.01,
        "sample_counts": [10, 10],
        "weighting": "equal",
        **kwargs,
    }
    with pytest.raises(ConfigError):
        record_sensitivity(**args)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="together"):
        record_sensitivity(0.3, 3.0, 2.0, 0.01, [10, 10], "equal", frac_bits=24)


def test_fixed_point_rounding_is_needed_in_the_bound() -> None:
    # With a coarse grid and a small learning rate the rounding of M, b and w dominates: some
    # neighbours move the model more than the exact-arithmetic bound, none more than the bound
    # with the rounding terms.
    rng = np.random.default_rng(7)
    lr, alpha, clip, bound, f, p = 0.01, 0.01, 3.0, 2.0, 6, 4
    over_exact = 0
    for _ in range(100):
        members = [_random_rows(rng, 6, p, clip) for _ in range(2)]
        w = _random_model(rng, p + 1, bound)
        larger, smaller = _neighbours(rng, members, clip)
        counts = [len(m.y) for m in larger]
        observed = float(
            np.linalg.norm(
                _global_model(larger, w, lr, alpha, "equal", f)
                - _global_model(smaller, w, lr, alpha, "equal", f)
            )
        )
        exact = record_sensitivity(lr, clip, bound, alpha, counts, "equal")
        full = record_sensitivity(
            lr, clip, bound, alpha, counts, "equal", frac_bits=f, n_weights=p + 1
        )
        assert observed <= full
        over_exact += observed > exact
    assert over_exact > 0
