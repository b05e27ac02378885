"""Encrypted vectors of fixed-point reals and the plaintext-matrix x encrypted-vector product.

An :class:`EncryptedVector` is a tuple of ciphertexts under one public key plus the scale
(``frac_bits``) its plaintexts are at. Arithmetic follows numpy habits: ``+``/``-`` with
another encrypted vector (same key, same length; scales aligned automatically) or with
plaintext scalars/arrays; ``*`` with plaintext scalars or arrays only, which adds scales
(floats are encoded at ``DEFAULT_FRAC_BITS``, integers at scale 0). ``numpy`` operands work
on either side (``__array_ufunc__ = None`` makes numpy defer to these methods).

Results of homomorphic operations are deterministic functions of their inputs (no fresh
randomness); call :meth:`EncryptedVector.rerandomize` before handing one to a party that
knows the inputs' randomness.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Real
from typing import cast

import gmpy2
import numpy as np
import numpy.typing as npt
from gmpy2 import mpz

from homolr.crypto._multiexp import largest_magnitude, multi_products
from homolr.crypto._public import PublicKey, check_same_key, require_public_key
from homolr.crypto.encoding import (
    DEFAULT_FRAC_BITS,
    check_frac_bits,
    encode,
    fixed_point_int64,
    to_fixed_point,
)
from homolr.errors import EncodingOverflowError

__all__ = ["EncryptedVector", "matvec", "matvec_factored"]

_PLAIN_TYPES = (Real, np.number, np.bool_, list, tuple)


def _is_plain(value: object) -> bool:
    if isinstance(value, np.ndarray):
        return value.dtype.kind in "biufO"
    return isinstance(value, _PLAIN_TYPES)


def _default_scale(plain: object) -> int:
    """Scale a plaintext multiplier is encoded at: 0 for integers, DEFAULT_FRAC_BITS else."""
    return 0 if np.asarray(plain).dtype.kind in "biu" else DEFAULT_FRAC_BITS


def _check_exponents(ks: Sequence[int], public_key: PublicKey) -> None:
    bound = public_key.max_int
    for index, k in enumerate(ks):
        if k > bound or -k > bound:
            raise EncodingOverflowError(
                f"plaintext multiplier at index {index} exceeds max_int = n // 3 - 1 in magnitude"
            )


class EncryptedVector:
    """A vector of Paillier ciphertexts of fixed-point reals at scale ``frac_bits``.

    Parameters
    ----------
    public_key : PublicKey
    ciphertexts : sequence of int, length n_values
        Validated on construction (``0 < c < n**2``, ``gcd(c, n) = 1``).
    frac_bits : int
        Scale of the plaintexts (a plaintext ``v`` stands for ``v / 2**frac_bits``).
    """

    __array_ufunc__ = None
    __slots__ = ("ciphertexts", "frac_bits", "public_key")

    public_key: PublicKey
    ciphertexts: tuple[mpz, ...]
    frac_bits: int

    def __init__(self, public_key: PublicKey, ciphertexts: Sequence[int], frac_bits: int) -> None:
        self.public_key = require_public_key(public_key)
        self.frac_bits = check_frac_bits(frac_bits)
        self.ciphertexts = tuple(public_key.validate_ciphertexts(ciphertexts))

    @classmethod
    def _trusted(
        cls, public_key: PublicKey, ciphertexts: Sequence[mpz], frac_bits: int
    ) -> EncryptedVector:
        """Build from ciphertexts this package computed (skips validation)."""
        vector = cls.__new__(cls)
        vector.public_key = public_key
        vector.ciphertexts = tuple(ciphertexts)
        vector.frac_bits = frac_bits
        return vector

    @classmethod
    def encrypt(
        cls, public_key: PublicKey, values: npt.ArrayLike, frac_bits: int = DEFAULT_FRAC_BITS
    ) -> EncryptedVector:
        """Encode ``values`` (shape (n_values,)) at ``frac_bits`` and encrypt them.

        Large vectors are encrypted on the process pool.
        """
        require_public_key(public_key)
        plaintexts = encode(values, frac_bits, public_key.n)
        return cls._trusted(public_key, public_key.raw_encrypt_many(plaintexts), frac_bits)

    # ------------------------------------------------------------------ container protocol
    def __len__(self) -> int:
        return len(self.ciphertexts)

    def __getitem__(self, key: int | slice) -> EncryptedVector:
        """An element (as a length-1 vector) or a slice, keeping key and scale."""
        if isinstance(key, slice):
            return self._like(self.ciphertexts[key])
        if isinstance(key, bool) or not isinstance(key, int | np.integer):
            raise TypeError(f"indices must be int or slice, got {type(key).__name__}")
        return self._like([self.ciphertexts[int(key)]])

    def __repr__(self) -> str:
        return (
            f"EncryptedVector(len={len(self)}, frac_bits={self.frac_bits}, "
            f"key={self.public_key.fingerprint()[:16]})"
        )

    def _like(self, ciphertexts: Sequence[mpz], frac_bits: int | None = None) -> EncryptedVector:
        scale = self.frac_bits if frac_bits is None else frac_bits
        return EncryptedVector._trusted(self.public_key, ciphertexts, scale)

    def _plain_values(self, plain: object, frac_bits: int) -> list[int]:
        """Encode a plaintext addend (scalar or shape (n_values,)) mod n, broadcast."""
        array = np.asarray(plain)
        if array.ndim > 1:
            raise ValueError(f"plaintext operand must be a scalar or 1-D, got shape {array.shape}")
        ks = encode(array.reshape(-1), frac_bits, self.public_key.n)
        if array.ndim == 0:
            return ks * len(self)
        self._check_length(len(ks))
        return ks

    def _check_length(self, length: int) -> None:
        if length != len(self):
            raise ValueError(
                f"length mismatch: encrypted vector has {len(self)} values, "
                f"the other operand has {length}"
            )

    # ------------------------------------------------------------------ arithmetic
    def rescaled(self, frac_bits: int) -> EncryptedVector:
        """The same values at the higher scale ``frac_bits`` (plaintexts times a power of 2)."""
        shift = frac_bits - self.frac_bits
        if shift < 0:
            raise ValueError(
                f"cannot lower the scale from {self.frac_bits} to {frac_bits} homomorphically"
            )
        if shift == 0:
            return self
        factor = mpz(1) << shift
        powers = gmpy2.powmod_base_list(list(self.ciphertexts), factor, self.public_key.nsquare)
        return self._like(powers, frac_bits)

    def __add__(self, other: object) -> EncryptedVector:
        if isinstance(other, EncryptedVector):
            return self._add_encrypted(other)
        if not _is_plain(other):
            return NotImplemented
        return self._add_plain(other)

    __radd__ = __add__

    def _add_plain(self, plain: object) -> EncryptedVector:
        ks = self._plain_values(plain, self.frac_bits)
        add = self.public_key.raw_add_plain
        return self._like([add(c, k) for c, k in zip(self.ciphertexts, ks, strict=True)])

    def _add_encrypted(self, other: EncryptedVector) -> EncryptedVector:
        check_same_key(self.public_key, other.public_key)
        self._check_length(len(other))
        scale = max(self.frac_bits, other.frac_bits)
        a, b = self.rescaled(scale), other.rescaled(scale)
        nsquare = self.public_key.nsquare
        summed = [x * y % nsquare for x, y in zip(a.ciphertexts, b.ciphertexts, strict=True)]
        return self._like(summed, scale)

    def __neg__(self) -> EncryptedVector:
        if not self.ciphertexts:
            return self
        nsquare = self.public_key.nsquare
        return self._like(gmpy2.powmod_base_list(list(self.ciphertexts), -1, nsquare))

    def __sub__(self, other: object) -> EncryptedVector:
        if isinstance(other, EncryptedVector):
            return self._add_encrypted(-other)
        if not _is_plain(other):
            return NotImplemented
        return self._add_plain(np.negative(np.asarray(other)))

    def __rsub__(self, other: object) -> EncryptedVector:
        if not _is_plain(other):
            return NotImplemented
        return (-self)._add_plain(other)

    def mul(self, plain: npt.ArrayLike, frac_bits: int = DEFAULT_FRAC_BITS) -> EncryptedVector:
        """Multiply by plaintext scalar or vector (shape (n_values,)) encoded at ``frac_bits``.

        Unlike ``*``, integers are scaled too. The result is at scale
        ``self.frac_bits + frac_bits``. Negative multipliers use the
        ciphertext inverse, not an exponent near n.
        """
        if isinstance(plain, EncryptedVector) or not _is_plain(plain):
            raise TypeError(
                f"can only multiply an EncryptedVector by plaintext numbers, got "
                f"{type(plain).__name__}"
            )
        array = np.asarray(plain)
        if array.ndim > 1:
            raise ValueError(f"plaintext multiplier must be a scalar or 1-D, got {array.shape}")
        ks = to_fixed_point(array.reshape(-1), frac_bits)
        _check_exponents(ks, self.public_key)
        nsquare = self.public_key.nsquare
        cs = list(self.ciphertexts)
        if array.ndim == 0:
            products = gmpy2.powmod_base_list(cs, ks[0], nsquare) if cs else []
        else:
            self._check_length(len(ks))
            products = [gmpy2.powmod(c, k, nsquare) for c, k in zip(cs, ks, strict=True)]
        return self._like(products, self.frac_bits + frac_bits)

    def __mul__(self, other: object) -> EncryptedVector:
        if isinstance(other, EncryptedVector):
            raise TypeError("Paillier cannot multiply two ciphertexts; one operand must be plain")
        if not _is_plain(other):
            return NotImplemented
        plain = cast("npt.ArrayLike", other)
        return self.mul(plain, _default_scale(plain))

    __rmul__ = __mul__

    def rerandomize(self) -> EncryptedVector:
        """Same plaintexts under fresh randomness (one mask per element)."""
        return self._like(self.public_key.rerandomize_many(self.ciphertexts))

    # ------------------------------------------------------------------ wire form
    def to_bytes(self) -> bytes:
        """Ciphertexts as concatenated fixed-width big-endian fields (scale not included)."""
        return self.public_key.ciphertexts_to_bytes(self.ciphertexts)

    @classmethod
    def from_bytes(cls, public_key: PublicKey, data: bytes, frac_bits: int) -> EncryptedVector:
        """Parse :meth:`to_bytes` output; every ciphertext is validated (InvalidCiphertextError)."""
        require_public_key(public_key)
        scale = check_frac_bits(frac_bits)
        return cls._trusted(public_key, public_key.ciphertexts_from_bytes(data), scale)


def matvec(
    matrix: npt.ArrayLike, x: EncryptedVector, *, frac_bits: int = DEFAULT_FRAC_BITS
) -> EncryptedVector:
    """Plaintext matrix times encrypted vector: ``result[i] = sum_j matrix[i, j] * x[j]``.

    Parameters
    ----------
    matrix : array_like, shape (n_rows, n_cols)
        Real (encoded at ``frac_bits``) or integer (scale 0, exact) entries.
    x : EncryptedVector, length n_cols
    frac_bits : int
        Scale for a real matrix.

    Returns
    -------
    EncryptedVector, length n_rows
        At scale ``x.frac_bits + frac_bits`` (``x.frac_bits`` for an integer matrix).

    Notes
    -----
    Uses the shared-table simultaneous multi-exponentiation of
    :mod:`homolr.crypto._multiexp`: ~16.5 ms for 31 x 31 at 2048 bits on one core, against
    ~330 ms for a per-element python-paillier loop. Memory beyond the int64 copy of the
    encoded matrix is bounded whatever the shape (column blocks and row chunks): a
    1,001 x 1,001 product at 2048 bits peaks at ~105 MB RSS for the whole process, against
    ~610 MB before the blocking (2026-12-03). :func:`matvec_cost` predicts the time.
    """
    if not isinstance(x, EncryptedVector):
        raise TypeError(f"x must be an EncryptedVector, got {type(x).__name__}")
    array = np.asarray(matrix)
    if array.dtype.kind not in "biufO":
        raise TypeError(f"matrix must be numeric, got dtype {array.dtype}")
    if array.ndim != 2:
        raise ValueError(f"matrix must be 2-D (n_rows, n_cols), got shape {array.shape}")
    cols = array.shape[1]
    if cols != len(x):
        raise ValueError(f"matrix has {cols} columns but the encrypted vector has {len(x)} values")
    scale = 0 if array.dtype.kind in "biu" else frac_bits
    products = multi_products(
        x.ciphertexts, _matrix_exponents(array, scale, x.public_key), x.public_key.n
    )
    return x._like(products, x.frac_bits + scale)


def _matrix_exponents(
    array: npt.NDArray[np.generic], scale: int, public_key: PublicKey
) -> npt.NDArray[np.int64] | list[list[int]]:
    """The fixed-point matrix as int64 (entries below 2**62) or else rows of Python ints.

    Raises
    ------
    EncodingOverflowError
        An entry exceeds ``max_int`` in magnitude.
    """
    small = fixed_point_int64(array, scale)
    if small is not None and largest_magnitude(small) <= public_key.max_int:
        return small
    rows, cols = array.shape
    flat = to_fixed_point(array.reshape(-1), scale)
    _check_exponents(flat, public_key)
    return [flat[i * cols : (i + 1) * cols] for i in range(rows)]


def _matrix(value: npt.ArrayLike, name: str) -> npt.NDArray[np.generic]:
    array = np.asarray(value)
    if array.dtype.kind not in "biufO":
        raise TypeError(f"{name} must be numeric, got dtype {array.dtype}")
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {array.shape}")
    return array


def matvec_factored(
    outer: npt.ArrayLike,
    inner: npt.ArrayLike,
    x: EncryptedVector,
    *,
    diagonal: npt.ArrayLike | None = None,
    inner_frac_bits: int = DEFAULT_FRAC_BITS,
    outer_frac_bits: int = DEFAULT_FRAC_BITS,
) -> EncryptedVector:
    """``(diag(diagonal) + outer @ inner) @ x`` as two thin products, ``outer @ (inner @ x)``.

    The "per-row" form of an affine step (:mod:`homolr.crypto.cost`): for ``k`` rows much
    fewer than ``n_cols`` it costs ~``2 k n_cols`` table lookups instead of the
    ``n_cols**2`` of :func:`matvec` on the product matrix, and never forms that matrix.

    Parameters
    ----------
    outer : array_like, shape (n_rows, k)
        Encoded at ``outer_frac_bits`` (real) or scale 0 (integer), as in :func:`matvec`.
    inner : array_like, shape (k, n_cols)
        Encoded at ``inner_frac_bits`` (real) or scale 0 (integer).
    x : EncryptedVector, length n_cols
    diagonal : scalar or array_like of shape (n_rows,), optional
        Adds ``diagonal * x`` (needs ``n_rows == n_cols``), encoded at the scale the two
        products add (``s_inner + s_outer``) so that the terms line up; it is rounded to
        that scale.
    inner_frac_bits, outer_frac_bits : int
        Scales of real ``inner`` / ``outer``.

    Returns
    -------
    EncryptedVector, length n_rows
        At scale ``x.frac_bits + s_inner + s_outer``. When ``inner``, ``outer`` and
        ``diagonal`` are exact at their scales, its plaintexts equal those of
        ``matvec(diag(diagonal) + outer @ inner, x)`` at the same total scale.

    Raises
    ------
    ValueError
        Shapes do not chain, or ``diagonal`` is given for a non-square product.
    """
    if not isinstance(x, EncryptedVector):
        raise TypeError(f"x must be an EncryptedVector, got {type(x).__name__}")
    outer_array, inner_array = _matrix(outer, "outer"), _matrix(inner, "inner")
    if outer_array.shape[1] != inner_array.shape[0]:
        raise ValueError(
            f"outer has shape {outer_array.shape} and inner {inner_array.shape}: "
            "outer's columns must equal inner's rows"
        )
    projected = matvec(inner_array, x, frac_bits=inner_frac_bits)
    result = matvec(outer_array, projected, frac_bits=outer_frac_bits)
    if diagonal is None:
        return result
    if outer_array.shape[0] != len(x):
        raise ValueError(
            f"a diagonal needs a square product, got {outer_array.shape[0]} x {len(x)}"
        )
    return result + x.mul(diagonal, frac_bits=result.frac_bits - x.frac_bits)
