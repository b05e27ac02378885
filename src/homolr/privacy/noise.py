"""Gaussian noise from the operating system's cryptographic generator, and the grid it lands on.

Source
    :func:`gaussian_noise` reads bytes from ``os.urandom`` (the kernel CSPRNG; inside Gramine the
    ``getrandom`` call is served within the enclave from the CPU's RDRAND, not by the untrusted
    host). Never numpy's generators and never :mod:`random`: their state can be predicted from
    their output, and a predictable noise is no noise. Any callable ``n -> n bytes`` can be
    injected (tests, simulations: :func:`deterministic_source`).

Transformation
    Box–Muller: ``r = sqrt(-2 ln u1)``, ``t = 2 pi u2``; the pair ``(r cos t, r sin t)`` is two
    independent standard normals. ``u2`` is a 53-bit uniform ``k 2**-53`` in ``[0, 1)`` (exact
    doubles). ``u1`` is a uniform on ``(0, 1)`` *with full relative precision*
    (:func:`open_uniforms`: a uniform real rounded down to the doubles, 53 significant bits even
    near 0). The usual ``u1 = k 2**-53`` would be coarse exactly where ``ln u1`` is steep: it
    caps ``|noise|`` at ``sqrt(106 ln 2) ~ 8.57`` sigma and, on a 2**-24 grid with sigma of
    order 1, spaces the attainable radii further apart than the grid beyond ~6.5 sigma (Gaussian
    mass ~1e-10 per coordinate, which a careful account would have to charge to delta). With full precision the radii
    are spaced ``~2**-52 / r`` sigma apart everywhere and ``|noise| <= 38.6`` sigma. Vectorised:
    100,001 draws take about 10 ms.

The floating-point caveat
    A sampler that computes a continuous distribution in floating point is not the distribution.
    Mironov (2012, "On significance of the least significant bits for differential privacy",
    CCS) showed that the Laplace mechanism implemented as ``x - b ln(u)`` leaks ``x`` through
    which doubles the output can be: the set of reachable outputs depends on ``x``, so a single
    output can rule out a neighbouring input. Jin, McMurtry, Rubinstein & Ohrimenko (2022, "Are
    we there yet? Timing and floating-point attacks on differential privacy systems", IEEE S&P)
    showed precision-based attacks of the same kind on the Gaussian samplers of DP libraries
    (Box–Muller and polar method included). ``x + noise`` computed here has the same flaw: its
    outputs are a discrete set of doubles that depends on ``x``.

What we do about it
    The key holder never releases ``total + noise`` as computed: :func:`add_noise_on_grid` snaps
    it to the multiples of ``2**-frac_bits`` that the plan's fixed-point encoding uses (Mironov's
    snapping idea). For ``|value| < 2**(52 - frac_bits)`` (2**28 at 24 bits; :func:`snap_to_grid`
    refuses larger values) a grid cell holds at least ``2**(52 - frac_bits - e)`` doubles where
    ``2**e`` bounds the value, and the attainable noise values are ~1e-15 sigma apart, so every
    grid cell within the sampler's range is reachable from every input and the output carries no
    bit below the grid: the attacks above, which read the low-order bits, have nothing to read.
    What it does *not* give:

    * an exact Gaussian. Box–Muller maps equal-probability cells of the ``(u1, u2)`` square onto
      equal-probability regions of the plane; the sampler puts each region's mass on one point
      (up to libm's ~1 ulp errors in ``log``/``cos``/``sin``). A grid cell's probability then
      differs from the Gaussian's only through regions that straddle its edge, a relative error
      of order (region diameter / cell width) ~ ``1e-15 sigma / 2**-frac_bits`` (``~2e-8 sigma``
      at 24 bits, sigma in model units): an epsilon increase of that order per coordinate and
      release, negligible next to the accounted epsilon. This is an argument, not a proof
      (docs/privacy.md, section 3);
    * protection against timing side channels (the transformation runs in data-independent
      time, but numpy's ``log``/``cos`` are not constant-time).

    The exact alternative is a discrete Gaussian on the grid itself, sampled with integer
    arithmetic only (Canonne, Kamath & Steinke 2020, "The discrete Gaussian for differential
    privacy"); it is the next step if the guarantee must not rest on the argument above.
"""

from __future__ import annotations

import hashlib
import hmac
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
#: Leading zeros at which :func:`open_uniforms` stops: its smallest value is 2**-1075 -> 2**-1074.
_MAX_ZEROS = 1073
#: Largest |sample| / sigma the sampler can produce: ``sqrt(-2 ln 2**-1074)`` (about 38.6).
MAX_ABS_STANDARD_SAMPLE = math.sqrt(2 * 1074 * math.log(2))
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


def _leading_zeros(count: int, source: ByteSource) -> npt.NDArray[np.int64]:
    """Leading zeros of ``count`` independent infinite random bit strings (P(k) = 2**-(k+1)).

    The first 53 bits of a word decide unless all are zero (probability 2**-53), in which case
    the count goes on in fresh words; it stops at 1074, where doubles end.
    """
    top = uniform_integers(count, source=source)
    zeros = (UNIFORM_BITS - np.frexp(top.astype(np.float64))[1]).astype(np.int64)
    for i in np.flatnonzero(top == 0):
        total = UNIFORM_BITS
        while total < _MAX_ZEROS:
            word = int(uniform_integers(1, source=source)[0])
            if word:
                total += UNIFORM_BITS - word.bit_length()
                break
            total += UNIFORM_BITS
        zeros[i] = min(total, _MAX_ZEROS)
    return zeros


def open_uniforms(count: int, *, source: ByteSource = os.urandom) -> FloatArray:
    """``count`` uniforms on ``(0, 1)`` with full relative precision: a uniform real rounded down
    to the doubles.

    The binade ``[2**-(k+1), 2**-k)`` is chosen with probability ``2**-(k+1)`` (``k`` leading
    zeros of a random bit string) and the 52-bit significand uniformly, so every double in
    ``(0, 1)`` is reachable and small values keep 53 significant bits. Two 64-bit words per
    value (rarely more).
    """
    zeros = _leading_zeros(count, source)
    fraction = uniform_integers(count, source=source) >> np.uint64(1)  # 52 bits
    significand = 1.0 + fraction.astype(np.float64) * 2.0**-52
    return np.asarray(np.ldexp(significand, -(zeros + 1)), dtype=np.float64)


def standard_normal(count: int, *, source: ByteSource = os.urandom) -> FloatArray:
    """``count`` standard normal samples by Box–Muller (see the module docstring).

    Pairs are laid out as ``[r cos(t) for each pair] + [r sin(t) for each pair]``, truncated to
    ``count``. The bytes are read in three blocks of ``8 * pairs``: the radius uniforms' binades
    (:func:`open_uniforms`), their significands, then the angle uniforms.
    """
    if count < 0:
        raise ConfigError(f"number of noise samples must be >= 0, got {count}")
    pairs = -(-count // 2)
    u1 = open_uniforms(pairs, source=source)
    u2 = uniform_integers(pairs, source=source).astype(np.float64) * 2.0**-UNIFORM_BITS
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


def keyed_source(secret: bytes, label: bytes) -> ByteSource:
    """The noise bytes of one release, from a secret only the enclave holds.

    ``SHAKE-256(HMAC-SHA256(secret, label) || counter)``: a keyed generator, as unpredictable as
    ``os.urandom`` to anyone without ``secret``. Deterministic on purpose: the key holder labels a
    release by its round, step and members, so a host that rolls the enclave back and replays a
    round with the same members gets the same noise again and cannot average it away; any other
    set of members gets independent noise.
    """
    if len(secret) < 32:
        raise ValueError("the noise secret must have at least 32 bytes")
    return deterministic_source(hmac.new(secret, label, hashlib.sha256).digest())


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
    "keyed_source",
    "open_uniforms",
    "snap_to_grid",
    "standard_normal",
    "uniform_integers",
]
