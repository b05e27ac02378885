"""Arithmetic mod n**2 on base-n digit pairs agrees with plain modular arithmetic."""

from __future__ import annotations

import gmpy2
from hypothesis import given
from hypothesis import strategies as st

from homolr.crypto._ring import PairRing
from tests.crypto._hyp import CRYPTO

N = gmpy2.next_prime(1 << 200) * gmpy2.next_prime(1 << 199)
N2 = N * N
RING = PairRing(N)
residues = st.integers(min_value=0, max_value=int(N2) - 1)


@CRYPTO
@given(residues, residues, st.integers(0, int(N) - 1), st.integers(0, 80))
def test_pair_operations_match_plain_arithmetic(x: int, y: int, m: int, k: int) -> None:
    px, py = RING.to_pair(x), RING.to_pair(y)
    assert all(0 <= d < N for d in px)
    assert RING.from_pair(px) == x
    assert RING.from_pair(RING.mul(px, py)) == x * y % N2
    assert RING.from_pair(RING.sqr(px)) == x * x % N2
    assert RING.from_pair(RING.sqr_times(px, k)) == gmpy2.powmod(x, 1 << k, N2)
    assert RING.from_pair(RING.mul_one_plus(px, m)) == x * (1 + m * N) % N2


def test_inputs_are_reduced_and_one_is_neutral() -> None:
    assert RING.from_pair(RING.to_pair(N2 + 5)) == 5
    assert RING.from_pair(RING.mul(RING.one, RING.to_pair(12345))) == 12345
