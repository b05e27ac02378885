"""Signed fixed-point encoding of reals as Paillier plaintexts (integers mod n).

A real ``x`` is encoded at scale ``f`` (``frac_bits``) as the integer ``round(x * 2**f)``;
negative integers wrap to ``n - |v|``. The plaintext space is split in three::

    0 ........ max_int ........ n - max_int ........ n
    | positive  |     guard band     |    negative    |

with ``max_int = n // 3 - 1`` (as python-paillier). A sum of up to two in-range values lands
in the guard band rather than silently wrapping to the other sign, so decoding a value that
lies in the guard band raises :class:`~homolr.errors.EncodingOverflowError` naming the bound.

Scales are tracked by the caller (:class:`~homolr.crypto.vectors.EncryptedVector`): the
product of a value at scale ``a`` with a plaintext at scale ``b`` is at scale ``a + b``.

Why ``DEFAULT_FRAC_BITS = 24``: replaying the reference training with its linear update
quantised to 20 or more fractional bits reproduces every printed evaluation line (16 bits
flips one), so 24 bits leave a 16x margin on the resolution (2**-24 ~ 6e-8). A weight at
scale 24 times a matrix entry at scale 24 is at scale 48; inside a 64-bit signed packing slot
that leaves magnitudes below 2**15 = 32768, far above any weight logistic regression
produces on standardised data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from numbers import Integral

import numpy as np
import numpy.typing as npt

from homolr.errors import EncodingOverflowError

__all__ = [
    "DEFAULT_FRAC_BITS",
    "check_frac_bits",
    "decode",
    "decode_signed_ints",
    "encode",
    "encode_scalar",
    "fixed_point_int64",
    "fixed_to_float",
    "max_int",
    "to_fixed_point",
]

DEFAULT_FRAC_BITS: int = 24
"""Fractional bits of the fixed-point encoding (resolution 2**-24, see module docstring)."""


def max_int(n: int) -> int:
    """Largest magnitude a signed plaintext may have under modulus ``n``: ``n // 3 - 1``."""
    return int(n) // 3 - 1


def check_frac_bits(frac_bits: object) -> int:
    """Return ``frac_bits`` if it is an int >= 0 (TypeError / ValueError otherwise)."""
    if isinstance(frac_bits, bool) or not isinstance(frac_bits, Integral):
        raise TypeError(f"frac_bits must be an int, got {type(frac_bits).__name__}")
    if frac_bits < 0:
        raise ValueError(f"frac_bits must be >= 0, got {frac_bits}")
    return int(frac_bits)


def _exact_fixed(x: float, frac_bits: int) -> int:
    """``round(x * 2**frac_bits)`` in exact integer arithmetic, half to even (any finite x)."""
    numerator, denominator = x.as_integer_ratio()
    return round(Fraction(numerator << frac_bits, denominator))


def _scalar_to_fixed(value: object, frac_bits: int, index: int) -> int:
    if isinstance(value, bool | np.bool_):
        return int(value) << frac_bits
    if isinstance(value, Integral):
        return int(value) << frac_bits
    if isinstance(value, float | np.floating):
        x = float(value)
        if not math.isfinite(x):
            raise ValueError(f"cannot encode non-finite value {x} at index {index}")
        return _exact_fixed(x, frac_bits)
    raise TypeError(
        f"cannot encode value of type {type(value).__name__} at index {index}: "
        "expected a real number (int or float)"
    )


def to_fixed_point(values: npt.ArrayLike, frac_bits: int) -> list[int]:
    """Scale reals to signed integers ``round(x * 2**frac_bits)`` (no reduction mod n).

    Parameters
    ----------
    values : array_like, shape (n_values,) or scalar
        Reals to encode. Integer dtypes and Python ints are scaled exactly (so they can be
        encoded with ``frac_bits=0`` without loss); floats are rounded half to even.
    frac_bits : int
        Fractional bits, >= 0.

    Returns
    -------
    list of int, length n_values
        Signed fixed-point integers (a scalar input gives a list of length 1).

    Raises
    ------
    ValueError
        A value is NaN or infinite.
    TypeError
        A value is not a real number.
    """
    frac_bits = check_frac_bits(frac_bits)
    array = np.asarray(values)
    if array.ndim > 1:
        raise ValueError(f"expected a scalar or a 1-D array, got shape {array.shape}")
    flat = array.reshape(-1)
    if flat.dtype.kind in "iub":
        return [int(v) << frac_bits for v in flat.tolist()]
    small = fixed_point_int64(flat, frac_bits)
    if small is not None:
        return [int(v) for v in small.tolist()]
    if flat.dtype.kind == "f":
        return [_exact_fixed(x, frac_bits) for x in flat.astype(np.float64).tolist()]
    return [_scalar_to_fixed(v, frac_bits, i) for i, v in enumerate(flat.tolist())]


def fixed_point_int64(values: npt.ArrayLike, frac_bits: int) -> npt.NDArray[np.int64] | None:
    """``round(x * 2**frac_bits)`` for a float or integer array, as int64 of the same shape.

    None when the array is neither float nor integer, or when some scaled value reaches
    2**62 (the caller falls back to Python integers, :func:`to_fixed_point`).

    Raises
    ------
    ValueError
        A value is NaN or infinite (the message gives its flat index).
    """
    frac_bits = check_frac_bits(frac_bits)
    array = np.asarray(values)
    if array.dtype.kind in "iub":
        bound = 1 << max(62 - frac_bits, 0)
        if array.size and (int(array.max()) >= bound or int(array.min()) <= -bound):
            return None
        return array.astype(np.int64) << frac_bits
    if array.dtype.kind != "f":
        return None
    if not np.all(np.isfinite(array)):
        flat = array.reshape(-1)
        bad = int(np.flatnonzero(~np.isfinite(flat))[0])
        raise ValueError(f"cannot encode non-finite value {flat[bad]} at index {bad}")
    with np.errstate(over="ignore"):  # one temporary the size of the input, rounded in place
        scaled = np.ldexp(array.astype(np.float64, copy=False), frac_bits)
    np.rint(scaled, out=scaled)
    if scaled.size and max(float(scaled.max()), -float(scaled.min())) >= 2.0**62:
        return None
    return scaled.astype(np.int64)


def _wrap(signed: Sequence[int], n: int) -> list[int]:
    bound = max_int(n)
    out: list[int] = []
    for index, v in enumerate(signed):
        if v > bound or -v > bound:
            raise EncodingOverflowError(
                f"value at index {index} does not fit the plaintext space: "
                f"|encoded| = {abs(v)} exceeds max_int = n // 3 - 1 "
                f"(~2**{math.log2(bound):.1f} for a {int(n).bit_length()}-bit n)"
            )
        out.append(v % n)
    return out


def encode(values: npt.ArrayLike | float, frac_bits: int, n: int) -> list[int]:
    """Encode reals as plaintexts in ``[0, n)`` at scale ``frac_bits``.

    Parameters
    ----------
    values : array_like, shape (n_values,) or scalar
        Reals (floats are rounded to the nearest multiple of ``2**-frac_bits``).
    frac_bits : int
        Fractional bits (scale) of the encoding.
    n : int
        Paillier modulus.

    Returns
    -------
    list of int, length n_values
        Plaintexts; negative values wrap to ``n - |v|``.

    Raises
    ------
    EncodingOverflowError
        ``|round(x * 2**frac_bits)| > max_int(n)``.
    ValueError
        A value is NaN or infinite.
    """
    return _wrap(to_fixed_point(values, frac_bits), n)


def encode_scalar(x: float | int, frac_bits: int, n: int) -> int:
    """Encode one real as a plaintext in ``[0, n)`` (see :func:`encode`)."""
    if isinstance(x, np.ndarray) and x.ndim > 0:
        raise TypeError(f"encode_scalar expects a scalar, got an array of shape {x.shape}")
    return encode(x, frac_bits, n)[0]


def decode_signed_ints(ints: Sequence[int], n: int) -> list[int]:
    """Map plaintexts in ``[0, n)`` back to signed integers.

    Raises
    ------
    EncodingOverflowError
        A plaintext lies in the guard band ``(max_int, n - max_int)``; the message names the
        index and the bound.
    ValueError
        A plaintext is outside ``[0, n)``.
    """
    n = int(n)
    bound = max_int(n)
    out: list[int] = []
    for index, raw in enumerate(ints):
        v = int(raw)
        if v < 0 or v >= n:
            raise ValueError(f"plaintext at index {index} is outside [0, n): {v}")
        if v <= bound:
            out.append(v)
        elif v >= n - bound:
            out.append(v - n)
        else:
            raise EncodingOverflowError(
                f"plaintext at index {index} lies in the guard band: it is neither <= max_int "
                f"nor >= n - max_int, with max_int = n // 3 - 1 "
                f"(~2**{math.log2(bound):.1f}); the computation overflowed"
            )
    return out


def fixed_to_float(signed: Sequence[int], frac_bits: int) -> npt.NDArray[np.float64]:
    """Correctly rounded ``v / 2**frac_bits`` for signed integers, as float64.

    Raises
    ------
    EncodingOverflowError
        A value exceeds the float64 range.
    """
    frac_bits = check_frac_bits(frac_bits)
    scale = 1 << frac_bits
    out = np.empty(len(signed), dtype=np.float64)
    for index, v in enumerate(signed):
        try:
            out[index] = int(v) / scale
        except OverflowError:
            raise EncodingOverflowError(
                f"decoded value at index {index} exceeds the float64 range "
                f"(|v| / 2**{frac_bits} > {np.finfo(np.float64).max})"
            ) from None
    return out


def decode(ints: Sequence[int], frac_bits: int, n: int) -> npt.NDArray[np.float64]:
    """Decode plaintexts in ``[0, n)`` at scale ``frac_bits`` to float64.

    Parameters
    ----------
    ints : sequence of int, length n_values
        Plaintexts (decryptions).
    frac_bits : int
        Scale the plaintexts were produced at.
    n : int
        Paillier modulus.

    Returns
    -------
    ndarray of float64, shape (n_values,)

    Raises
    ------
    EncodingOverflowError
        A plaintext lies in the guard band (the message names the bound ``max_int``).
    """
    return fixed_to_float(decode_signed_ints(ints, n), frac_bits)
