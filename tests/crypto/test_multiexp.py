"""Multi-exponentiation on residues with both base-n digits set, and its unit-digit tables."""

from __future__ import annotations

import gmpy2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from homolr.crypto._multiexp import (
    TABLE_BUDGET_BYTES,
    _batch_inverse,
    _unit_table,
    choose_group_size,
    choose_plan,
    entry_bytes,
    multi_products,
)
from tests.crypto._hyp import CRYPTO
from tests.crypto.conftest import KeyPair

P, Q = gmpy2.next_prime(1 << 95), gmpy2.next_prime(1 << 96)
N = P * Q
NSQUARE = N * N


def naive(bases: list[int], rows: list[list[int]], n: int = N) -> list[int]:
    """One ``powmod`` per entry mod ``n**2``: the definition multi_products must match."""
    modulus = n * n
    out = []
    for row in rows:
        acc = gmpy2.mpz(1)
        for b, e in zip(bases, row, strict=True):
            acc = acc * gmpy2.powmod(b, e, modulus) % modulus
        out.append(acc)
    return out


def unit(value: int) -> int:
    """A unit mod n**2 near ``value`` (ciphertext-like: both base-n digits random)."""
    value %= NSQUARE
    while gmpy2.gcd(value, N) != 1:
        value += 1
    return value


residues = st.integers(min_value=1, max_value=int(NSQUARE) - 1)


@CRYPTO
@given(st.data())
def test_matches_naive_powmods_on_ciphertext_like_bases(data: st.DataObject) -> None:
    cols = data.draw(st.integers(1, 19))
    rows = data.draw(st.integers(1, 5))
    bits = data.draw(st.sampled_from([1, 5, 26, 70]))
    signed = data.draw(st.booleans())
    low = -(2**bits) if signed else 0
    bases = [unit(data.draw(residues)) for _ in range(cols)]
    entries = st.integers(low, 2**bits)
    exps = data.draw(st.lists(st.lists(entries, min_size=cols, max_size=cols), min_size=rows))
    assert multi_products(bases, exps, N) == naive(bases, exps)


def test_rows_of_zeros_and_unsigned_rows_next_to_signed_ones() -> None:
    bases = [unit(7**k * 1_000_003**9) for k in range(1, 12)]
    exps = [[0] * 11, [3] * 11, [-1] + [0] * 10, list(range(-5, 6)), [2**40] * 11]
    assert multi_products(bases, exps, N) == naive(bases, exps)


@CRYPTO
@given(st.data())
def test_int64_matrices_give_the_same_residues_as_python_ints(data: st.DataObject) -> None:
    cols = data.draw(st.integers(1, 12))
    bits = data.draw(st.sampled_from([3, 26, 60, 61, 63]))  # 61+ takes the Python-int path
    bases = [unit(data.draw(residues)) for _ in range(cols)]
    entries = st.integers(-(2**bits) + 1, 2**bits - 1)
    exps = data.draw(st.lists(st.lists(entries, min_size=cols, max_size=cols), min_size=1))
    dtype = np.int64 if bits < 63 else object
    expected = naive(bases, exps)
    assert multi_products(bases, np.array(exps, dtype=dtype), N) == expected
    assert multi_products(bases, exps, N) == expected


def test_matrix_shape_is_checked() -> None:
    with pytest.raises(ValueError, match=r"shape \(2, 3\), expected \(rows, 2\)"):
        multi_products([unit(5), unit(7)], np.zeros((2, 3), dtype=np.int64), N)


def test_bases_that_are_not_units_work_with_non_negative_exponents_only() -> None:
    bases = [P * 12345 + N * 77, unit(987654321987654321), Q]
    exps = [[1, 2, 3], [0, 5, 0], [7, 0, 0]]
    assert multi_products(bases, exps, N) == naive(bases, exps)
    with pytest.raises(ValueError, match="units"):
        multi_products(bases, [[1, -1, 0]], N)


@CRYPTO
@given(st.lists(residues, min_size=1, max_size=6))
def test_unit_table_entries_are_the_subset_products(values: list[int]) -> None:
    units = [unit(v) for v in values]
    los = [gmpy2.mpz(u) % N for u in units]
    inverses = _batch_inverse(los, N)
    assert inverses is not None
    assert all(a * i % N == 1 for a, i in zip(los, inverses, strict=True))
    shifts = [(u // N) * i % N for u, i in zip(units, inverses, strict=True)]
    size = len(units)
    table_los, table_shifts = _unit_table(los, inverses, shifts, N, list(range(1 << size)))
    for idx, (c, s) in enumerate(zip(table_los, table_shifts, strict=True)):
        product = gmpy2.mpz(1)
        for k in range(size):
            if idx >> k & 1:
                product = product * units[k] % NSQUARE
        assert 0 <= c < N and 0 <= s < N
        assert c * (1 + s * N) % NSQUARE == product


def test_batch_inverse_reports_a_non_unit() -> None:
    assert _batch_inverse([gmpy2.mpz(3), P * 2, gmpy2.mpz(5)], N) is None


N_SMALL = gmpy2.next_prime(1 << 127) * gmpy2.next_prime(1 << 126)


@CRYPTO
@given(st.data())
def test_multi_products_match_naive_powmods(data: st.DataObject) -> None:
    cols = data.draw(st.integers(1, 20))
    rows = data.draw(st.integers(0, 4))
    bits = data.draw(st.sampled_from([1, 8, 30, 63, 64, 130]))  # > 62 exercises chunking
    bases = [gmpy2.next_prime(1000 + 17 * j) for j in range(cols)]
    exps = data.draw(
        st.lists(
            st.lists(st.integers(-(2**bits), 2**bits), min_size=cols, max_size=cols),
            min_size=rows,
            max_size=rows,
        )
    )
    assert multi_products(bases, exps, N_SMALL) == naive(bases, exps, N_SMALL)


def test_multi_products_rejects_ragged_rows_and_non_units() -> None:
    with pytest.raises(ValueError, match="row 1"):
        multi_products([2, 3], [[1, 2], [1]], N_SMALL)
    factor = gmpy2.next_prime(1 << 127)
    with pytest.raises(ValueError, match="units"):
        multi_products([factor], [[-1]], N_SMALL)


def test_group_size_grows_with_reuse() -> None:
    assert choose_group_size(31, 31 * 26) == 8  # the 31 x 31 training matrix
    assert choose_group_size(31, 26) < choose_group_size(31, 31 * 26)
    assert choose_group_size(1, 1000) == 1


# ---------------------------------------------------------------------------- bounded memory
UNCHUNKED = {"table_budget_bytes": 1 << 40, "chunk_lookups": 1 << 40}
TINY = {"table_budget_bytes": 1, "chunk_lookups": 1}  # one table per block, one row per chunk


@CRYPTO
@given(st.data())
def test_chunked_and_unchunked_give_the_same_residues(
    keypair: KeyPair, data: st.DataObject
) -> None:
    pk, _ = keypair
    cols = data.draw(st.integers(1, 14))
    rows = data.draw(st.integers(1, 6))
    bits = data.draw(st.sampled_from([2, 26, 61, 62, 90]))  # >= 2**61 takes the Python-int path
    budget = data.draw(st.sampled_from([1, 6_000, 20_000]))  # one table .. several per block
    chunk = data.draw(st.integers(1, 200))
    seed = data.draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    bases = pk.raw_encrypt_many(rng.integers(0, 1 << 30, cols).tolist())
    exps = [[int(e) for e in rng.integers(-(1 << 62), 1 << 62, cols)] for _ in range(rows)]
    exps = [[e >> (62 - bits) if bits < 62 else e << (bits - 62) for e in row] for row in exps]
    if data.draw(st.booleans()):
        exps[0] = [abs(e) for e in exps[0]]  # an unsigned row next to signed ones
    expected = naive(bases, exps, pk.n)
    chunked = multi_products(bases, exps, pk.n, table_budget_bytes=budget, chunk_lookups=chunk)
    assert chunked == multi_products(bases, exps, pk.n, **UNCHUNKED) == expected


def test_a_wide_matrix_runs_in_many_blocks_and_chunks(keypair: KeyPair) -> None:
    pk, _ = keypair
    rng = np.random.default_rng(11)
    bases = pk.raw_encrypt_many(rng.integers(0, 1 << 30, 40).tolist())
    exps = rng.integers(-(1 << 25), 1 << 25, (9, 40))
    exps[3, :] = np.abs(exps[3, :])
    plan = choose_plan(40, 9 * 26, 9, n_bits=pk.n_bits, table_budget_bytes=1)
    assert plan.block_groups == 1 and -(-40 // plan.group) > 1  # really blocked
    expected = naive(bases, exps.tolist(), pk.n)
    assert multi_products(bases, exps, pk.n, **TINY) == expected
    assert multi_products(bases, exps, pk.n) == expected
    big = exps.astype(object) << 40  # entries >= 2**61: the Python-int path, blocked too
    assert multi_products(bases, big.tolist(), pk.n, **TINY) == naive(bases, big.tolist(), pk.n)


def test_plans_respect_the_table_budget() -> None:
    for columns, rows in ((31, 31), (301, 301), (1001, 1001), (1001, 50), (50, 1001)):
        for budget in (1 << 20, 8 << 20, TABLE_BUDGET_BYTES):
            plan = choose_plan(columns, rows * 26, rows, table_budget_bytes=budget)
            table_bytes = plan.block_groups * entry_bytes(2048) << plan.group
            assert plan.block_groups == 1 or table_bytes <= budget
            assert 1 <= plan.group <= 12
    # unconstrained, a 1,001-column matrix wants bigger tables than the budget allows
    free = choose_plan(1001, 1001 * 26, 1001, table_budget_bytes=1 << 40)
    bounded = choose_plan(1001, 1001 * 26, 1001)
    assert free.block_groups * (1 << free.group) > bounded.block_groups * (1 << bounded.group)


def test_budgets_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        multi_products([unit(5)], [[1]], N, chunk_lookups=0)
