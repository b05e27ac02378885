"""Fixed-base tables in unit-digit form agree with powmod for every window count."""

from __future__ import annotations

import secrets

import gmpy2
import pytest

from homolr.crypto._fixedbase import FixedBaseTable
from homolr.crypto._ring import PairRing

P, Q = gmpy2.next_prime(1 << 160), gmpy2.next_prime(1 << 161)
N = P * Q
NSQUARE = N * N


@pytest.mark.parametrize("windows", [1, 2, 3, 4])
def test_powers_match_powmod_for_odd_and_even_window_counts(windows: int) -> None:
    base = gmpy2.mpz(secrets.randbits(640)) % NSQUARE
    while gmpy2.gcd(base, N) != 1:
        base += 1
    table = FixedBaseTable(base, PairRing(N), windows)
    exponents = [bytes(windows), b"\xff" * windows, b"\x01" * windows]
    exponents += [secrets.token_bytes(windows) for _ in range(5)]
    for exponent in exponents:
        expected = gmpy2.powmod(base, int.from_bytes(exponent, "little"), NSQUARE)
        assert table.power(exponent) == expected
        lo, hi = table.power_pair(exponent)
        assert 0 <= lo < N and 0 <= hi < N


def test_a_base_that_is_not_a_unit_is_refused() -> None:
    with pytest.raises(ValueError, match="unit"):
        FixedBaseTable(P * 3 + N * 5, PairRing(N), 2)
