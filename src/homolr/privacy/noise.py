"""Gaussian noise from the operating system's cryptographic generator, and the grid it lands on.

Source
    :func:`gaussian_noise` reads bytes from ``os.urandom`` (the kernel CSPRNG; inside Gramine the
    ``getrandom`` call is served within the enclave from the CPU's RDRAND, not by the untrusted
    host). Never numpy's generators and never :mod:`random`: their state can be predicted from
    their output, and a predictable noise is no noise. Any callable ``n -> n bytes`` can be
    injected (tests, simulations: :func:`deterministic_source`).

Transformation
    Box–Muller on 53-bit uniforms: from two 64-bit words keep the top 53 bits, ``k1, k2``;
    ``u1 = (k1 + 1) 2**-53`` in ``(0, 1]`` and ``u2 = k2 2**-53`` in ``[0, 1)``, both exact
    float64 values; ``r = sqrt(-2 ln u1)``; the pair ``(r cos 2 pi u2, r sin 2 pi u2)`` is two
    independent standard normals. Vectorised: 100,001 draws take a few milliseconds.

The floating-point caveat
    A sampler that computes a continuous distribution in floating point is not the distribution.
    Mironov (2012, "On significance of the least significant bits for differential privacy",
    CCS) showed that the Laplace mechanism implemented as ``x - b ln(u)`` leaks ``x`` through
    which doubles the output can be: the set of reachable outputs depends on ``x``, so a single
    output can rule out a neighbouring input. Jin, McMurtry, Rubinstein & Ohrimenko (2022, "Are
    we there yet? Timing and floating-point attacks on differential privacy systems", IEEE S&P)
    showed precision-based attacks of the same kind on the Gaussian samplers of DP libraries
    (Box–Muller and polar method included). This sampler has these properties too: its outputs
    are a discrete set, not a density, and ``|noise| <= sqrt(106 ln 2) sigma ~ 8.57 sigma``
    (``u1 >= 2**-53``).

What we do about it
    The key holder never releases ``total + noise`` as computed: :func:`add_noise_on_grid` snaps
    it to the multiples of ``2**-frac_bits`` that the plan's fixed-point encoding uses. For
    ``|value| < 2**(52 - frac_bits)`` (2**28 at 24 bits; :func:`snap_to_grid` refuses larger
    values) a grid cell spans at least ``2**(52 - frac_bits - e)`` doubles where ``2**e`` bounds
    the value, so every grid point is reachable from every input and the output carries no bit
    below the grid: the attacks above, which read the low-order bits, have nothing to read. This
    is Mironov's snapping idea. What it does *not* give:

    * an exact Gaussian: the released distribution is the sampler's mass on each grid cell, which
      differs from the true Gaussian's by the sampler's own imperfections (53-bit uniforms,
      libm's ``log``/``cos`` accurate to about one ulp). Away from the tails this is a relative
      error of order 1e-15 per cell, far below any epsilon we account for, but it is an argument,
      not a proof;
    * the tails: beyond ``8.57 sigma`` the sampler has no mass. Against a neighbour ``Delta =
      sigma / z`` away, outputs the neighbour reaches and the input cannot have probability
      below ``2 Phi(-(8.57 - 1/z))`` per coordinate and release, an additive delta that
      ``docs/privacy.md`` bounds (about 1e-17 per coordinate at ``z = 1``; it grows quickly for
      ``z < 0.5``);
    * protection against timing side channels (the transformation runs in data-independent
      time, but numpy's ``log``/``cos`` are not constant-time).

    The exact alternative is a discrete Gaussian on the grid itself, sampled with integer
    arithmetic only (Canonne, Kamath & Steinke 2020, "The discrete Gaussian for differential
    privacy"); it is the next step if the guarantee must not rest on the argument above.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from homolr.errors import ConfigError

FloatArray = npt.NDArray[np.float64]
ByteSource = Callable[[int], bytes]

#: Bits of every uniform (a float64 has 53 significant bits).
UNIFORM_BITS = 53
#: Largest |sample| / sigma the sampler can produce: ``sqrt(-2 ln 2**-53)``.
MAX_ABS_STANDARD_SAMPLE = math.sqrt(2 * UNIFORM_BITS * math.log(2))
_TWO_PI = 2 * math.pi


def _read(source: ByteSource, n_bytes: int) -> bytes:
    """Exactly ``n_bytes`` from ``source`` (a short read is an error, never a silent zero pad)."""
    raw = source(n_bytes)
    if not isinstance(raw, bytes | bytearray) or len(raw) != n_bytes:
        got = len(raw) if isinstance(raw, bytes | bytearray) else type(raw).__name__
        raise ConfigError(f"noise byte source returned {got} bytes; {n_bytes} were requested")
    return bytes(raw)


def uniform_integers(count: int, *, source: ByteSource = os.urandom) -> npt.NDArray[np.uint64]:
    """``count`` independent uniform integers in ``[0, 2**53)``: top 53 bits of 64-bit words."""
    words = np.frombuffer(_read(source, 8 * count), dtype="<u8")
    return np.asarray(words >> np.uint64(64 - UNIFORM_BITS), dtype=np.uint64)


def standard_normal(count: int, *, source: ByteSource = os.urandom) -> FloatArray:
    """``count`` standard normal samples by Box–Muller on 53-bit uniforms (see module docstring).

    Pairs are laid out as ``[r cos(t) for each pair] + [r sin(t) for each pair]``, truncated to
    ``count``; the uniforms of pair ``i`` are words ``i`` (radius) and ``pairs + i`` (angle) of
    the ``16 * pairs`` bytes read.
    """
    if count < 0:
        raise ConfigError(f"number of noise samples must be >= 0, got {count}")
    pairs = -(-count // 2)
    k = uniform_integers(2 * pairs, source=source)
    scale = 2.0**-UNIFORM_BITS
    u1 = (k[:pairs] + np.uint64(1)).astype(np.float64) * scale
    u2 = k[pairs:].astype(np.float64) * scale
    radius = np.sqrt(-2.0 * np.log(u1))
    angle = _TWO_PI * u2
    return np.concatenate([radius * np.cos(angle), radius * np.sin(angle)])[:count]


def gaussian_noise(
    shape: int | tuple[int, ...], sigma: float, *, source: ByteSource = os.urandom
) -> FloatArray:
    """Independent ``N(0, sigma**2)`` noise of the given shape, from a cryptographic source.

    Parameters
    ----------
    shape : int or tuple of int
    sigma : float
        Standard deviation, finite and >= 0 (0 gives zeros without reading the source).
    source : callable int -> bytes
        Byte source; the default ``os.urandom`` is the only one for production.

    Returns
    -------
    ndarray of float64 of shape ``shape``
    """
    if not (isinstance(sigma, int | float) and math.isfinite(sigma) and sigma >= 0):
        raise ConfigError(f"noise sigma must be finite and >= 0, got {sigma!r}")
    dims = (shape,) if isinstance(shape, int) else tuple(shape)
    count = math.prod(dims)
    if sigma == 0:
        return np.zeros(dims, dtype=np.float64)
    return np.asarray(sigma * standard_normal(count, source=source), dtype=np.float64).reshape(dims)


def snap_to_grid(values: npt.ArrayLike, frac_bits: int, *, toward_zero: bool = False) -> FloatArray:
    """Round to multiples of ``2**-frac_bits``: to nearest (ties to even), or toward zero.

    Rounding toward zero never increases ``|value|`` coordinate-wise, hence never an L2 norm.

    Raises
    ------
    ConfigError
        ``frac_bits`` outside ``[0, 52]``, a non-finite value, or ``|value| >= 2**(52 -
        frac_bits)`` (the grid would be no coarser than the doubles there).
    """
    if isinstance(frac_bits, bool) or not isinstance(frac_bits, int) or not 0 <= frac_bits <= 52:
        raise ConfigError(f"frac_bits must be an integer in [0, 52], got {frac_bits!r}")
    x = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ConfigError("cannot snap a non-finite value to the fixed-point grid")
    limit = 2.0 ** (52 - frac_bits)
    if x.size and float(np.max(np.abs(x))) >= limit:
        raise ConfigError(
            f"value {float(np.max(np.abs(x))):.6g} is too large for a grid of 2**-{frac_bits}: "
            f"|value| must stay below 2**{52 - frac_bits}"
        )
    scaled = np.ldexp(x, frac_bits)
    integral = np.trunc(scaled) if toward_zero else np.rint(scaled)
    return np.asarray(np.ldexp(integral, -frac_bits), dtype=np.float64)


def add_noise_on_grid(
    total: npt.ArrayLike, sigma: float, frac_bits: int, *, source: ByteSource = os.urandom
) -> FloatArray:
    """``total + N(0, sigma**2 I)``, snapped to the nearest multiple of ``2**-frac_bits``.

    What the snapping protects and what it does not: see the module docstring.

    Parameters
    ----------
    total : array-like of shape (n,)
        The decrypted sum.
    sigma : float
        Noise std, >= 0.
    frac_bits : int
        The plan's fixed-point fractional bits.
    source : callable int -> bytes
        Byte source of the noise.
    """
    x = np.asarray(total, dtype=np.float64)
    return snap_to_grid(x + gaussian_noise(x.shape, sigma, source=source), frac_bits)


def deterministic_source(seed: bytes) -> ByteSource:
    """A reproducible byte stream (SHAKE-256 of ``seed`` and a call counter): tests and simulations.

    Never for a real run: anyone who knows the seed knows the noise.
    """
    counter = 0

    def read(n_bytes: int) -> bytes:
        nonlocal counter
        counter += 1
        return hashlib.shake_256(seed + counter.to_bytes(8, "big")).digest(n_bytes)

    return read


__all__ = [
    "MAX_ABS_STANDARD_SAMPLE",
    "UNIFORM_BITS",
    "ByteSource",
    "add_noise_on_grid",
    "deterministic_source",
    "gaussian_noise",
    "snap_to_grid",
    "standard_normal",
    "uniform_integers",
]
