"""The matvec cost model, the Gram-or-per-row choice, and the per-row primitive."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from homolr.crypto import (
    EncryptedVector,
    choose_step_path,
    exponent_bits,
    matvec,
    matvec_cost,
    matvec_factored,
    step_costs,
)
from homolr.crypto._multiexp import choose_plan, operation_counts
from tests.crypto._hyp import CRYPTO
from tests.crypto.conftest import KeyPair


# ---------------------------------------------------------------------------- cost model
def test_cost_follows_the_operation_counts() -> None:
    assert matvec_cost(0, 31, 25) == matvec_cost(31, 0, 25) == matvec_cost(31, 31, 0) == 0.0
    small, large = matvec_cost(31, 31, 25), matvec_cost(1001, 1001, 25)
    assert 0 < small < matvec_cost(101, 101, 25) < matvec_cost(301, 301, 25) < large
    assert matvec_cost(301, 301, 14) < matvec_cost(301, 301, 25) < matvec_cost(301, 301, 50)
    assert matvec_cost(31, 31, 25, signed=False) < small
    # rows share the tables: doubling them less than doubles the cost, but nearly for many
    assert matvec_cost(2000, 301, 25) < 2 * matvec_cost(1000, 301, 25)
    assert matvec_cost(2000, 301, 25) > 1.8 * matvec_cost(1000, 301, 25)
    # the 1,001 x 1,001 product measured 8.5-8.7 s on the calibration day; the model is fitted
    assert 7.0 < large < 10.5
    # ~d**2 growth between 301 and 1,001 (the encrypted-mode step grows as d**1.9)
    assert 8 < large / matvec_cost(301, 301, 25) < 13
    plan = choose_plan(301, 301 * 26, 301)
    entries, lookups, squarings = operation_counts(301, 301, 26, plan)
    groups = -(-301 // plan.group)
    assert lookups >= 301 * 26 * groups and squarings == 301 * 25 * -(-groups // plan.block_groups)
    assert entries == sum(
        (1 << s) - s - 1 for s in [plan.group] * (301 // plan.group) + [301 % plan.group]
    )


def test_cost_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="rows"):
        matvec_cost(-1, 3, 4)
    with pytest.raises(ValueError, match="bits"):
        matvec_cost(1, 3, 2.5)  # type: ignore[arg-type]
    assert matvec_cost(np.int64(5), 4, 10) == matvec_cost(5, 4, 10)  # type: ignore[arg-type]


def test_per_row_wins_below_about_half_the_dimension() -> None:
    d = 1001
    bits = {"gram_bits": 25, "inner_bits": 27, "outer_bits": 24, "diagonal_bits": 25}
    assert choose_step_path(50, d, **bits) == "per_row"
    assert choose_step_path(int(0.35 * d), d, **bits) == "per_row"
    assert choose_step_path(int(0.65 * d), d, **bits) == "gram"
    assert choose_step_path(2000, d, **bits) == "gram"
    costs = step_costs(100, d, **bits)
    assert costs["per_row"] < costs["gram"] / 3
    # a few rows at 31 weights: the thin products still win, but not by much
    few = step_costs(5, 31, **bits)
    assert few["per_row"] < few["gram"]
    # exponent sizes count: huge per-row exponents make the Gram form win again
    assert choose_step_path(300, d, gram_bits=25, inner_bits=90, outer_bits=90) == "gram"


@given(
    st.lists(st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False), min_size=1, max_size=12),
    st.integers(0, 40),
)
def test_exponent_bits_matches_the_encoding(values: list[float], frac_bits: int) -> None:
    matrix = np.array(values).reshape(1, -1)
    expected = max(abs(round(v * 2**frac_bits)) for v in values).bit_length()
    assert exponent_bits(matrix, frac_bits) == expected


def test_exponent_bits_of_integer_and_huge_matrices() -> None:
    assert exponent_bits(np.array([[3, -9], [0, 2]]), 24) == 4  # integers: scale 0
    assert exponent_bits(np.array([[2.0**70, 1.0]]), 8) == 79  # beyond int64
    assert exponent_bits(np.zeros((0, 3)), 24) == 0


# ---------------------------------------------------------------------------- per-row form
def dyadic(rng: np.random.Generator, shape: tuple[int, ...], frac: int, span: int) -> np.ndarray:
    """Reals exactly representable with ``frac`` fractional bits, in (-span, span)."""
    return rng.integers(-span << frac, span << frac, shape) / 2.0**frac


@CRYPTO
@given(st.data())
def test_factored_equals_the_product_matrix_exactly(keypair: KeyPair, data: st.DataObject) -> None:
    pk, sk = keypair
    rows, k = data.draw(st.integers(1, 6)), data.draw(st.integers(0, 5))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    outer, inner = dyadic(rng, (rows, k), 5, 8), dyadic(rng, (k, rows), 3, 8)
    diagonal = dyadic(rng, (rows,), 8, 2) if data.draw(st.booleans()) else None
    x = EncryptedVector.encrypt(pk, dyadic(rng, (rows,), 10, 100), frac_bits=10)
    factored = matvec_factored(
        outer, inner, x, diagonal=diagonal, inner_frac_bits=3, outer_frac_bits=5
    )
    product = outer @ inner + (np.diag(diagonal) if diagonal is not None else 0.0)
    dense = matvec(product, x, frac_bits=8)
    assert factored.frac_bits == dense.frac_bits == 18
    assert sk.raw_decrypt_many(factored.ciphertexts) == sk.raw_decrypt_many(dense.ciphertexts)


@CRYPTO
@given(st.data())
def test_taylor_step_gram_and_per_row_decrypt_identically(
    keypair: KeyPair, data: st.DataObject
) -> None:
    """``w <- (1 - lr a) w - lr/m X^T (X w / 4 + 1/2 - y)``, both ways, on exact inputs."""
    pk, sk = keypair
    m, d = data.draw(st.sampled_from([1, 2, 4])), data.draw(st.integers(1, 8))  # lr / m dyadic
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    X = dyadic(rng, (m, d), 3, 4)
    y = rng.integers(0, 2, m).astype(np.float64)
    lr, alpha = 2.0**-2, 2.0**-3
    c = 0.25 * lr / m
    w = EncryptedVector.encrypt(pk, dyadic(rng, (d,), 12, 4), frac_bits=12)
    b = -lr / m * (X.T @ (0.5 - y))
    M = (1 - lr * alpha) * np.eye(d) - c * (X.T @ X)
    gram = matvec(M, w, frac_bits=14) + b
    per_row = (
        matvec_factored(
            -c * X.T, X, w, diagonal=1 - lr * alpha, inner_frac_bits=3, outer_frac_bits=11
        )
        + b
    )
    assert gram.frac_bits == per_row.frac_bits == 26
    assert sk.raw_decrypt_many(gram.ciphertexts) == sk.raw_decrypt_many(per_row.ciphertexts)
    np.testing.assert_array_equal(sk.decrypt_vector(gram), sk.decrypt_vector(per_row))


def test_factored_on_real_data_matches_numpy(keypair: KeyPair) -> None:
    pk, sk = keypair
    rng = np.random.default_rng(3)
    X, w = rng.standard_normal((3, 9)), rng.uniform(-1, 1, 9)
    ew = EncryptedVector.encrypt(pk, w)
    out = matvec_factored(-0.01 * X.T, X, ew, diagonal=0.99)
    assert out.frac_bits == 3 * 24
    expected = 0.99 * w - 0.01 * X.T @ (X @ w)
    np.testing.assert_allclose(sk.decrypt_vector(out), expected, atol=1e-5)


def test_factored_checks_shapes(keypair: KeyPair) -> None:
    pk, _ = keypair
    x = EncryptedVector.encrypt(pk, [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="outer's columns"):
        matvec_factored(np.ones((3, 2)), np.ones((3, 3)), x)
    with pytest.raises(ValueError, match="square"):
        matvec_factored(np.ones((2, 2)), np.ones((2, 3)), x, diagonal=1.0)
    with pytest.raises(ValueError, match="3 values"):
        matvec_factored(np.ones((3, 2)), np.ones((2, 4)), x)
    with pytest.raises(ValueError, match="2-D"):
        matvec_factored(np.ones(3), np.ones((3, 3)), x)
    with pytest.raises(TypeError):
        matvec_factored(np.ones((3, 3)), np.ones((3, 3)), [1, 2, 3])  # type: ignore[arg-type]
