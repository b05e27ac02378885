"""Arithmetic modulo n**2 on base-n digit pairs, the inner loop of every hot path.

A residue ``x`` mod n**2 is held as ``(lo, hi)`` with ``x = lo + hi*n`` and ``0 <= lo, hi < n``.
Because ``n**2 = 0`` in the ring::

    (a + b n)(c + d n) = a c + (a d + b c) n            (mod n**2),   a c = q n + r
                       = r + ((q + a d + b c) mod n) n

a product costs three n-sized multiplications, one division of a 2n-bit number by n and one
reduction mod n, instead of a 2n x 2n multiplication and the division of a 4n-bit number by
n**2. With the gmpy2 build used here (2048-bit n, one core) that is 3.6 us instead of 4.5 us
per multiplication and 3.1 us instead of 4.0 us per squaring, ~20% off encryption, matvec and
packing. Adding a plaintext is almost free in this form:
``(a + b n)(1 + m n) = a + ((b + a m) mod n) n``.
"""

from __future__ import annotations

import gmpy2
from gmpy2 import mpz

__all__ = ["Pair", "PairRing"]

Pair = tuple[mpz, mpz]
_f_divmod = gmpy2.f_divmod


class PairRing:
    """The ring Z / n**2 with elements as base-n digit pairs ``(lo, hi)``.

    Parameters
    ----------
    n : int
        The modulus whose square is the ring's modulus.
    """

    __slots__ = ("n", "nsquare", "one")

    def __init__(self, n: int) -> None:
        self.n = mpz(n)
        self.nsquare = self.n * self.n
        self.one: Pair = (mpz(1), mpz(0))

    def to_pair(self, x: int) -> Pair:
        """Split a residue (reduced mod n**2 first) into ``(lo, hi)``."""
        q, r = _f_divmod(mpz(x) % self.nsquare, self.n)
        return r, q

    def from_pair(self, x: Pair) -> mpz:
        """The residue ``lo + hi*n``."""
        return x[0] + x[1] * self.n

    def mul(self, x: Pair, y: Pair) -> Pair:
        """``x * y`` mod n**2."""
        a, b = x
        c, d = y
        q, r = _f_divmod(a * c, self.n)
        return r, (q + a * d + c * b) % self.n

    def sqr(self, x: Pair) -> Pair:
        """``x * x`` mod n**2."""
        a, b = x
        q, r = _f_divmod(a * a, self.n)
        return r, (q + ((a * b) << 1)) % self.n

    def sqr_times(self, x: Pair, count: int) -> Pair:
        """``x ** (2**count)`` mod n**2 by ``count`` squarings."""
        n = self.n
        a, b = x
        for _ in range(count):
            q, r = _f_divmod(a * a, n)
            a, b = r, (q + ((a * b) << 1)) % n
        return a, b

    def mul_one_plus(self, x: Pair, m: int) -> Pair:
        """``x * (1 + m*n)`` mod n**2, i.e. add the plaintext ``m`` to a ciphertext."""
        a, b = x
        return a, (b + a * m) % self.n
