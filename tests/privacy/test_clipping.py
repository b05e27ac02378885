"""Clipping and projection keep their bounds exactly, and leave small vectors alone."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from homolr.errors import ConfigError
from homolr.learning import add_bias
from homolr.privacy import clip_rows, clip_update, project
from homolr.privacy.clipping import MARGIN


def _exact_sq_norm(v: np.ndarray) -> Fraction:
    """The real squared norm of a float64 vector, with no rounding at all."""
    return sum((Fraction(float(x)) ** 2 for x in v), Fraction(0))


def test_project_scales_large_vectors_onto_the_ball() -> None:
    rng = np.random.default_rng(1)
    for _ in range(200):
        w = rng.normal(size=31) * rng.uniform(0.1, 10)
        bound = float(rng.uniform(0.1, 5))
        got = project(w, bound)
        assert _exact_sq_norm(got) <= Fraction(bound) ** 2
        if np.linalg.norm(w) <= bound * (1 - MARGIN):
            assert np.array_equal(got, w)
        else:  # same direction, norm at the bound
            assert np.linalg.norm(got) == pytest.approx(bound, rel=1e-11)
            np.testing.assert_allclose(got / np.linalg.norm(got), w / np.linalg.norm(w))


def test_clip_update_returns_the_scale() -> None:
    clipped, scale = clip_update(np.array([3.0, 4.0]), 1.0)
    assert scale == pytest.approx(0.2)
    np.testing.assert_allclose(clipped, [0.6, 0.8])
    small, one = clip_update(np.array([0.3, 0.4]), 1.0)
    assert one == 1.0 and np.array_equal(small, [0.3, 0.4])


def test_clip_update_on_the_grid_rounds_toward_zero_and_keeps_the_bound() -> None:
    rng = np.random.default_rng(2)
    f = 8
    for _ in range(300):
        u = rng.normal(size=31) * rng.uniform(0.01, 3)
        clip = float(rng.uniform(0.05, 1))
        clipped, _ = clip_update(u, clip, frac_bits=f)
        ints = np.ldexp(clipped, f)
        assert np.array_equal(ints, np.trunc(ints))  # exactly on the grid: the encoding is exact
        # the encoded integers' exact squared norm is within (clip 2**f)**2
        assert sum(int(k) ** 2 for k in ints) <= Fraction(clip) ** 2 * 4**f


def test_rounding_to_nearest_would_break_the_bound() -> None:
    # Why clip_update rounds toward zero: a vector inside the ball, encoded to the nearest grid
    # point, can leave it (by up to sqrt(d) 2**-(f+1)).
    f, clip, d = 4, 0.999, 16
    v = np.full(d, 0.2495)  # ||v|| = 0.998 <= clip
    nearest = np.rint(np.ldexp(v, f)) / 2**f  # every coordinate 0.25: norm 1.0 > clip
    assert np.linalg.norm(v) <= clip < np.linalg.norm(nearest)
    clipped, scale = clip_update(v, clip, frac_bits=f)
    assert scale == 1.0
    assert np.linalg.norm(clipped) <= clip
    np.testing.assert_array_equal(clipped, np.full(d, 0.1875))


def test_clip_rows_bounds_the_row_with_its_bias_entry() -> None:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(500, 30)) * rng.uniform(0.1, 3, size=(500, 1))
    clip = 4.0
    Xc = clip_rows(X, clip)
    Xb = add_bias(Xc)
    assert np.all(Xb[:, 0] == 1.0)  # the bias entry stays 1
    for row in Xb:
        assert _exact_sq_norm(row) <= Fraction(clip) ** 2
    inside = np.linalg.norm(add_bias(X), axis=1) <= clip * (1 - 2 * MARGIN)
    assert inside.any() and (~inside).any()
    assert np.array_equal(Xc[inside], X[inside])  # rows already inside are untouched
    # clipped rows keep their direction and land on the sphere
    norms = np.linalg.norm(Xb[~inside], axis=1)
    np.testing.assert_allclose(norms, clip, rtol=1e-10)
    cos = np.sum(Xc[~inside] * X[~inside], axis=1) / (
        np.linalg.norm(Xc[~inside], axis=1) * np.linalg.norm(X[~inside], axis=1)
    )
    np.testing.assert_allclose(cos, 1.0)


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ConfigError, match="clip must be > 1"):
        clip_rows(np.ones((2, 2)), 1.0)
    with pytest.raises(ConfigError, match="2-D"):
        clip_rows(np.ones(3), 2.0)
    with pytest.raises(ConfigError, match="non-finite"):
        clip_update(np.array([np.nan, 1.0]), 1.0)
    with pytest.raises(ConfigError, match="bound"):
        project(np.ones(3), 0.0)
