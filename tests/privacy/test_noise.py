"""The Gaussian sampler: exact values from known bytes, statistics, and its source of randomness."""

from __future__ import annotations

import ast
import math
import random
import time
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from homolr.errors import ConfigError
from homolr.privacy import (
    MAX_ABS_STANDARD_SAMPLE,
    ByteSource,
    add_noise_on_grid,
    deterministic_source,
    gaussian_noise,
    open_uniforms,
    snap_to_grid,
    standard_normal,
)


def _words_source(*blocks: list[int]) -> ByteSource:
    """A byte source that returns the given blocks of 64-bit little-endian words, in order."""
    queue = [b"".join(w.to_bytes(8, "little") for w in block) for block in blocks]

    def read(n: int) -> bytes:
        chunk = queue.pop(0)
        assert n == len(chunk)
        return chunk

    return read


def _reference_box_muller(source: ByteSource, count: int) -> list[float]:
    """Box–Muller in pure Python (ints, math) from the same byte blocks: an independent reference."""
    pairs = -(-count // 2)

    def top53(block: bytes) -> list[int]:
        return [int.from_bytes(block[8 * i : 8 * i + 8], "little") >> 11 for i in range(pairs)]

    binades, significands, angles = (top53(source(8 * pairs)) for _ in range(3))
    cos_part, sin_part = [], []
    for t, m, k in zip(binades, significands, angles, strict=True):
        assert t > 0  # (probability 1 - 2**-53 each; the fixed seeds below never hit 0)
        u1 = math.ldexp(1 + (m >> 1) / 2**52, -(53 - t.bit_length() + 1))
        r = math.sqrt(-2 * math.log(u1))
        cos_part.append(r * math.cos(2 * math.pi * k / 2**53))
        sin_part.append(r * math.sin(2 * math.pi * k / 2**53))
    return (cos_part + sin_part)[:count]


def test_known_words_give_known_samples() -> None:
    # binade word with its top bit set: u1 in [1/2, 1); significand 0: u1 = 1/2;
    # angle word 2**62: u2 = 1/4, angle pi / 2.
    z = standard_normal(2, source=_words_source([1 << 63], [0], [1 << 62]))
    r = math.sqrt(2 * math.log(2))
    assert z[0] == pytest.approx(0.0, abs=1e-15)  # r cos(pi/2)
    assert z[1] == pytest.approx(r, rel=1e-15)  # r sin(pi/2)


def test_small_uniforms_keep_full_precision_and_the_tail_is_not_cut() -> None:
    # 53 zero bits, then a word with 6 more leading zeros: u1 in [2**-60, 2**-59), far below
    # the 2**-53 floor of a k * 2**-53 uniform, so |z| goes past sqrt(106 ln 2) ~ 8.57.
    z = standard_normal(2, source=_words_source([0], [1 << 57], [0], [0]))
    assert z[0] == pytest.approx(math.sqrt(2 * 60 * math.log(2)), rel=1e-15)
    assert z[0] > 8.6
    u = open_uniforms(
        4, source=_words_source([1 << 63, 1 << 62, 1 << 11, 1 << 40], [2**64 - 1] * 4)
    )
    assert np.all(u < 2.0 ** np.array([0, -1, -52, -23]))
    assert np.all(u >= 2.0 ** np.array([-1, -2, -53, -24]))
    assert u[0] == 1 - 2.0**-53  # the largest double below 1 is reachable, 1 is not
    assert math.isclose(MAX_ABS_STANDARD_SAMPLE, 38.586, abs_tol=1e-3)


def test_open_uniforms_are_uniform_down_to_small_scales() -> None:
    u = open_uniforms(400_000, source=deterministic_source(b"uniform"))
    assert np.all((u > 0) & (u < 1))
    assert stats.kstest(u, "uniform").pvalue > 0.01
    for k in (1, 4, 8, 12):  # binade frequencies: P(u < 2**-k) = 2**-k
        assert np.mean(u < 2.0**-k) == pytest.approx(2.0**-k, rel=6 * 2 ** (k / 2) / 632)


@pytest.mark.parametrize("count", [1, 2, 7, 1000])
def test_matches_the_pure_python_reference_on_fixed_bytes(count: int) -> None:
    z = standard_normal(count, source=deterministic_source(b"reference"))
    expected = _reference_box_muller(deterministic_source(b"reference"), count)
    np.testing.assert_allclose(z, expected, rtol=1e-13, atol=1e-13)


def test_deterministic_source_reproduces_exactly() -> None:
    a = gaussian_noise((3, 5), 2.5, source=deterministic_source(b"seed"))
    b = gaussian_noise((3, 5), 2.5, source=deterministic_source(b"seed"))
    c = gaussian_noise((3, 5), 2.5, source=deterministic_source(b"other"))
    assert a.shape == (3, 5) and a.dtype == np.float64
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_fixed_sample_statistics() -> None:
    # Deterministic bytes, so the thresholds are checked once and cannot flake.
    x = gaussian_noise(200_001, 3.0, source=deterministic_source(b"stats"))
    assert abs(x.mean()) < 0.03  # 4.5 standard errors (3 / sqrt(2e5) = 0.0067)
    assert x.std() == pytest.approx(3.0, rel=0.01)
    assert stats.kstest(x, stats.norm(scale=3.0).cdf).pvalue > 0.01
    # the cos and sin halves are independent normals too
    n = len(x) // 2
    assert abs(np.corrcoef(x[:n], x[n : 2 * n])[0, 1]) < 0.01


def test_real_source_sanity_and_speed() -> None:
    start = time.perf_counter()
    x = gaussian_noise(100_001, 1.0)
    elapsed = time.perf_counter() - start
    assert elapsed < 0.5
    assert x.shape == (100_001,)
    # loose bounds: a failure has probability far below 1e-9
    assert abs(x.mean()) < 0.03
    assert 0.97 < x.std() < 1.03
    assert stats.kstest(x, stats.norm.cdf).pvalue > 1e-9
    assert np.max(np.abs(x)) <= MAX_ABS_STANDARD_SAMPLE


def test_never_uses_numpy_or_python_generators(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("the noise must not come from a non-cryptographic generator")

    for name in ("default_rng", "random", "normal", "standard_normal", "rand", "randn", "seed"):
        monkeypatch.setattr(np.random, name, forbidden)
    monkeypatch.setattr(np.random, "Generator", forbidden)
    for name in ("random", "gauss", "normalvariate", "getrandbits", "randbytes"):
        monkeypatch.setattr(random, name, forbidden)
    calls: list[int] = []

    def counting_urandom(n: int) -> bytes:
        calls.append(n)
        import os

        return os.urandom(n)

    x = gaussian_noise(1001, 1.0, source=counting_urandom)
    assert x.shape == (1001,)
    assert calls == [8 * 501] * 3  # all of the randomness came from the injected source
    assert gaussian_noise(10, 1.0).shape == (10,)  # the default (os.urandom) path too


def test_the_module_does_not_import_numpy_random() -> None:
    import homolr.privacy.noise as noise

    tree = ast.parse(Path(noise.__file__).read_text(encoding="utf-8"))
    imported = {
        alias.name for n in ast.walk(tree) if isinstance(n, ast.Import) for alias in n.names
    }
    imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not imported & {"random", "numpy.random"}
    attributes = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    assert "random" not in attributes  # no np.random.<anything>


def test_short_read_is_an_error() -> None:
    with pytest.raises(ConfigError, match="returned 3 bytes"):
        gaussian_noise(4, 1.0, source=lambda n: b"abc")


def test_sigma_zero_and_bad_sigma() -> None:
    assert np.array_equal(gaussian_noise(3, 0.0, source=lambda n: b""), np.zeros(3))
    for bad in (-1.0, math.inf, math.nan):
        with pytest.raises(ConfigError, match="sigma"):
            gaussian_noise(3, bad)


def test_snap_to_grid_nearest_and_toward_zero() -> None:
    x = np.array([0.3, -0.3, 1.75, -1.75, 0.125])
    np.testing.assert_array_equal(snap_to_grid(x, 2), [0.25, -0.25, 1.75, -1.75, 0.0])
    np.testing.assert_array_equal(
        snap_to_grid(x, 2, toward_zero=True), [0.25, -0.25, 1.75, -1.75, 0]
    )
    y = np.array([0.2, -0.2, 0.99])
    np.testing.assert_array_equal(snap_to_grid(y, 2), [0.25, -0.25, 1.0])
    np.testing.assert_array_equal(snap_to_grid(y, 2, toward_zero=True), [0.0, 0.0, 0.75])
    with pytest.raises(ConfigError, match="too large"):
        snap_to_grid([2.0**28], 24)
    with pytest.raises(ConfigError, match="frac_bits"):
        snap_to_grid([1.0], 53)


def test_add_noise_on_grid_is_noise_plus_total_on_the_grid() -> None:
    total = np.array([1.0, -2.5, 3.25, 0.0])
    out = add_noise_on_grid(total, 0.5, 24, source=deterministic_source(b"grid"))
    noise = gaussian_noise(4, 0.5, source=deterministic_source(b"grid"))
    np.testing.assert_array_equal(out * 2**24, np.rint(out * 2**24))  # on the grid
    np.testing.assert_allclose(out, total + noise, atol=2.0**-25)
    assert np.array_equal(out, snap_to_grid(total + noise, 24))
