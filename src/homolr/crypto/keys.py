"""Paillier key generation and the private key (CRT decryption).

:func:`generate_keypair` draws two distinct primes of ``n_bits / 2`` bits each from
:mod:`secrets` (top two bits set so ``n`` has exactly ``n_bits`` bits), checks
``gcd(n, (p-1)(q-1)) = 1``, and draws the DJN base ``hs`` (see
:mod:`homolr.crypto._public` for the scheme and its security assumption). Moduli below
2048 bits need ``insecure_small_key=True`` (unit tests only).

:class:`PrivateKey` decrypts with the Chinese remainder theorem: two exponentiations with
``n_bits/2``-bit exponents modulo ``p**2`` and ``q**2`` instead of one ``n_bits``-bit
exponentiation modulo ``n**2`` (~4x faster). It has no plain serialisation (sealing belongs
to the enclave), refuses pickling, and its ``repr`` shows no secret.

**Constant time.** With ``constant_time=True`` (or, when the argument is left out, the
environment variable ``HOMOLR_CONSTANT_TIME=1``, read once per process) the two CRT
exponentiations, whose exponents ``p - 1`` and ``q - 1`` are the secret, use
``gmpy2.powmod_sec`` (GMP's ``mpz_powm_sec``: no exponent-dependent branches or memory
accesses), here and in the pool workers, and so do the inversions made when the key is
built (Fermat's ``x**(p-2) mod p``; ``h_p = (-q)**-1 mod p`` needs no exponentiation at
all). A decryption costs 1.2-1.5x as much (1.20-1.29x measured on 2026-12-03 at 2048
bits, on one core and on the pool; ``powmod_sec`` alone 1.27-1.30x). What stays variable-time: the reductions and products
around the exponentiations (``L(x) = (x - 1) // p``, the CRT recombination) use GMP's
ordinary mpz operations, which promise nothing about timing (their time mostly follows
operand lengths). The aim is to keep the factors' bits out of timing; the plaintexts are
not protected.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, SupportsIndex

import gmpy2
import numpy as np
import numpy.typing as npt
from gmpy2 import mpz

from homolr.crypto import parallel
from homolr.crypto._public import (
    MIN_SECURE_BITS,
    PublicKey,
    as_mpz,
    check_same_key,
    make_hs,
    require_public_key,
)
from homolr.crypto.encoding import decode, fixed_to_float
from homolr.crypto.packing import PackedVector, unpack_ints
from homolr.crypto.vectors import EncryptedVector
from homolr.errors import ConfigError

__all__ = [
    "CONSTANT_TIME_ENV",
    "MIN_INSECURE_BITS",
    "MIN_SECURE_BITS",
    "PrivateKey",
    "PublicKey",
    "constant_time_default",
    "generate_keypair",
]

MIN_INSECURE_BITS = 256
"""Smallest modulus :func:`generate_keypair` makes even with ``insecure_small_key=True``."""

CONSTANT_TIME_ENV = "HOMOLR_CONSTANT_TIME"
"""``1`` makes private keys use constant-time exponentiation unless told otherwise."""

_PRIMALITY_REPS = 40
_MAX_PRIME_GAP_BITS = 100  # |p - q| must exceed 2**(half_bits - 100) (Fermat factoring)


class PrivateKey:
    """Paillier private key ``(p, q)`` with CRT decryption.

    Parameters
    ----------
    public_key : PublicKey
    p, q : int
        The distinct prime factors of ``public_key.n``.
    constant_time : bool, optional
        Use ``gmpy2.powmod_sec`` for the secret-exponent exponentiations (see the module
        notes). Default: :func:`constant_time_default` (``HOMOLR_CONSTANT_TIME``).

    Raises
    ------
    ValueError
        ``p * q != n`` or ``p == q``.
    """

    __slots__ = (
        "_hp",
        "_hq",
        "_p_minus_1",
        "_psquare",
        "_q_inv",
        "_q_minus_1",
        "_qsquare",
        "constant_time",
        "p",
        "public_key",
        "q",
    )

    def __init__(
        self, public_key: PublicKey, p: int, q: int, *, constant_time: bool | None = None
    ) -> None:
        require_public_key(public_key)
        p_, q_ = as_mpz(p, "p"), as_mpz(q, "q")
        if p_ == q_:
            raise ValueError("p and q must be distinct")
        if p_ * q_ != public_key.n:
            raise ValueError("p * q does not equal the public modulus n")
        self.constant_time = constant_time_default() if constant_time is None else constant_time
        if not isinstance(self.constant_time, bool):
            raise TypeError(f"constant_time must be a bool, got {type(constant_time).__name__}")
        invert = _invert_prime_sec if self.constant_time else _invert_prime
        self.public_key = public_key
        self.p, self.q = p_, q_
        self._psquare, self._qsquare = p_ * p_, q_ * q_
        self._p_minus_1, self._q_minus_1 = p_ - 1, q_ - 1
        # h_p = L_p((n + 1)**(p - 1) mod p**2)**-1 = ((p - 1) q)**-1 = (-q)**-1 mod p
        self._hp = invert(-q_ % p_, p_)
        self._hq = invert(-p_ % q_, q_)
        self._q_inv = invert(q_ % p_, p_)

    def __repr__(self) -> str:
        return f"PrivateKey(public_key={self.public_key!r}, constant_time={self.constant_time})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PrivateKey):
            return NotImplemented
        return bool(self.public_key == other.public_key and {self.p, self.q} == {other.p, other.q})

    def __hash__(self) -> int:
        return hash(self.public_key)

    def __reduce_ex__(self, protocol: SupportsIndex) -> str | tuple[Any, ...]:
        raise TypeError("a PrivateKey is never pickled or copied; seal it instead")

    # ------------------------------------------------------------------ raw layer
    def _decrypt_unit(self, value: mpz, powmod: Callable[[mpz, mpz, mpz], mpz]) -> mpz:
        """CRT decryption of a range-checked ciphertext with the given exponentiation."""
        mp = _l_function(powmod(value, self._p_minus_1, self._psquare), self.p)
        mq = _l_function(powmod(value, self._q_minus_1, self._qsquare), self.q)
        mp = mp * self._hp % self.p
        mq = mq * self._hq % self.q
        return mq + (mp - mq) * self._q_inv % self.p * self.q

    def _powmod(self, constant_time: bool | None) -> Callable[[mpz, mpz, mpz], mpz]:
        use_sec = self.constant_time if constant_time is None else constant_time
        powmod: Callable[[mpz, mpz, mpz], mpz] = gmpy2.powmod_sec if use_sec else gmpy2.powmod
        return powmod

    def raw_decrypt(self, c: int) -> mpz:
        """Decrypt a ciphertext integer to its plaintext in ``[0, n)`` (CRT)."""
        return self._decrypt_unit(self.public_key.check_range(c), self._powmod(None))

    def decrypt_in_process(
        self, cs: Sequence[int], *, constant_time: bool | None = None
    ) -> list[mpz]:
        """Decrypt here, never on the pool (``constant_time`` None: the key's own mode)."""
        powmod = self._powmod(constant_time)
        check = self.public_key.check_range
        return [self._decrypt_unit(check(c, index), powmod) for index, c in enumerate(cs)]

    def raw_decrypt_many(self, cs: Sequence[int]) -> list[mpz]:
        """Decrypt many ciphertexts; batches of at least ``PARALLEL_THRESHOLD`` use the pool.

        Thread-safe: several threads may decrypt at once and share the pool's workers.
        """
        if not parallel.should_parallelize(len(cs)):
            return self.decrypt_in_process(cs)
        return self._submit(cs).result()

    def decrypt_async(self, cs: Sequence[int]) -> Future[list[mpz]]:
        """Start decrypting ``cs`` on the process pool and return at once.

        For streaming: decrypt one chunk while the next is still being received. Batches
        from any number of calls and threads share the workers (FIFO), so submitting each
        chunk as soon as it is complete keeps every core busy. The ciphertexts are
        range-checked before this returns (:class:`~homolr.errors.InvalidCiphertextError`).
        When the pool is off (``HOMOLR_CRYPTO_WORKERS`` 0 or 1), the batch is decrypted in
        the calling thread and the future is already done.

        Returns
        -------
        Future of list of mpz
            The plaintexts in input order, or the pool's :class:`~homolr.errors.CryptoError`.
        """
        if not parallel.pool_enabled():
            done: Future[list[mpz]] = Future()
            done.set_result(self.decrypt_in_process(cs))
            return done
        return self._submit(cs)

    def _submit(self, cs: Sequence[int]) -> Future[list[mpz]]:
        key = self.public_key
        checked = [key.check_range(c, index) for index, c in enumerate(cs)]
        return parallel.submit_decrypt(
            key.to_bytes(),
            key.key_id(),
            self.p,
            self.q,
            checked,
            key.plaintext_bytes,
            key.ciphertext_bytes,
            constant_time=self.constant_time,
        )

    # ------------------------------------------------------------------ vectors
    def decrypt_vector(self, ev: EncryptedVector) -> npt.NDArray[np.float64]:
        """Decrypt and decode an encrypted vector to float64, shape (n_values,).

        Raises
        ------
        KeyMismatchError
            ``ev`` is under another key.
        EncodingOverflowError
            A plaintext lies in the guard band.
        """
        if not isinstance(ev, EncryptedVector):
            raise TypeError(f"decrypt_vector expects an EncryptedVector, got {type(ev).__name__}")
        check_same_key(self.public_key, ev.public_key)
        return decode(self.raw_decrypt_many(ev.ciphertexts), ev.frac_bits, self.public_key.n)

    def decrypt_packed_ints(self, pv: PackedVector) -> list[int]:
        """Exact signed fixed-point sums (over ``pv.contributions``) of a packed vector.

        Raises
        ------
        EncodingOverflowError
            A slot overflowed (names the slot).
        """
        if not isinstance(pv, PackedVector):
            raise TypeError(f"expected a PackedVector, got {type(pv).__name__}")
        check_same_key(self.public_key, pv.public_key)
        plaintexts = self.raw_decrypt_many(pv.ciphertexts)
        return unpack_ints(plaintexts, pv.length, pv.spec, pv.contributions, self.public_key.n_bits)

    def decrypt_packed(self, pv: PackedVector) -> npt.NDArray[np.float64]:
        """Decoded float64 sums (over ``pv.contributions``) of a packed vector, shape (length,)."""
        return fixed_to_float(self.decrypt_packed_ints(pv), pv.frac_bits)


_constant_time_default: bool | None = None


def parse_constant_time(value: str) -> bool:
    """``HOMOLR_CONSTANT_TIME`` semantics: ``1`` on; ``0`` or empty off; else ConfigError."""
    text = value.strip()
    if text in ("", "0"):
        return False
    if text == "1":
        return True
    raise ConfigError(f"{CONSTANT_TIME_ENV} must be 0 or 1, got {value!r}")


def constant_time_default() -> bool:
    """Whether private keys use ``gmpy2.powmod_sec`` by default.

    Read once from ``HOMOLR_CONSTANT_TIME`` on first use and fixed for the process, so the
    mode cannot change between two decryptions of one run.
    """
    global _constant_time_default
    if _constant_time_default is None:
        _constant_time_default = parse_constant_time(os.environ.get(CONSTANT_TIME_ENV, ""))
    return _constant_time_default


def _l_function(x: mpz, p: mpz) -> mpz:
    return (x - 1) // p


def _invert_prime(x: mpz, p: mpz) -> mpz:
    """``x**-1 mod p`` (extended Euclid: time depends on the operands)."""
    return gmpy2.invert(x, p)


def _invert_prime_sec(x: mpz, p: mpz) -> mpz:
    """``x**-1 mod p`` for a prime ``p`` as ``x**(p-2)``, with ``powmod_sec``."""
    return gmpy2.powmod_sec(x, p - 2, p)


def _random_prime(bits: int) -> mpz:
    """A prime of exactly ``bits`` bits with its top two bits set, from :mod:`secrets`."""
    while True:
        candidate = mpz(secrets.randbits(bits)) | (mpz(3) << (bits - 2)) | 1
        prime = gmpy2.next_prime(candidate)
        if prime.bit_length() == bits and gmpy2.is_prime(prime, _PRIMALITY_REPS):
            return prime


def check_key_size(n_bits: int, insecure_small_key: bool) -> None:
    """Validate a requested modulus size (ValueError naming the bound)."""
    if isinstance(n_bits, bool) or not isinstance(n_bits, int):
        raise TypeError(f"n_bits must be an int, got {type(n_bits).__name__}")
    if n_bits % 8:
        raise ValueError(f"n_bits must be a multiple of 8, got {n_bits}")
    if n_bits < MIN_SECURE_BITS and not insecure_small_key:
        raise ValueError(
            f"n_bits={n_bits} is below the minimum of {MIN_SECURE_BITS} bits "
            "(insecure_small_key=True is for unit tests only)"
        )
    if n_bits < MIN_INSECURE_BITS:
        raise ValueError(f"n_bits={n_bits} is below the absolute minimum of {MIN_INSECURE_BITS}")


def generate_keypair(
    n_bits: int = 2048, *, insecure_small_key: bool = False
) -> tuple[PublicKey, PrivateKey]:
    """Generate a Paillier key pair with an ``n_bits``-bit modulus (2048, 3072, 4096...).

    Parameters
    ----------
    n_bits : int
        Modulus size, a multiple of 8; at least 2048 unless ``insecure_small_key``.
    insecure_small_key : bool
        Allow 256 <= n_bits < 2048 (unit tests only; the CLI never sets it).

    Returns
    -------
    (PublicKey, PrivateKey)
    """
    check_key_size(n_bits, insecure_small_key)
    half = n_bits // 2
    while True:
        p, q = _random_prime(half), _random_prime(half)
        n = p * q
        far_apart = abs(p - q) >> max(half - _MAX_PRIME_GAP_BITS, 0) > 0
        if (
            p != q
            and far_apart
            and n.bit_length() == n_bits
            and gmpy2.gcd(n, (p - 1) * (q - 1)) == 1
        ):
            break
    public_key = PublicKey(n, make_hs(n))
    return public_key, PrivateKey(public_key, p, q)
