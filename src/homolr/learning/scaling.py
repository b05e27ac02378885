"""Federated standardisation: per-feature moments, their fixed-point plan and the global scaler.

Members hold raw features (the Wisconsin data go up to ~4,250). Before training, each member
``k`` computes its row count and per-feature sums and sums of squares about a public shift
``K`` (zero by default), lays them out as one vector::

    [n_k, sum_i (x_ij - K_j) for j = 1..d, sum_i (x_ij - K_j)**2 for j = 1..d]   (1 + 2 d values)

and sends it encrypted and packed (:func:`moments_vector`, :meth:`MomentsFixedPoint.member_vector`).
The enclave decrypts the *sum* over members only and turns it into the global
:class:`Scaler` (:func:`global_scaler`, :meth:`MomentsFixedPoint.scaler`): the mean and the
population standard deviation (``ddof=0``) of every feature over all members' rows, exactly what
``sklearn.preprocessing.StandardScaler`` fits on the pooled data. A feature with zero variance
(within the rounding bound below) gets scale 1.0, as in scikit-learn, and is listed in
``Scaler.constant``.

Numerical care
--------------
``var = Q/n - (S/n)**2`` cancels when the mean is large against the spread: in float64 its
absolute error is about ``c * eps * Q/n`` with ``Q/n = var + (mean - K)**2`` and ``c`` a small
constant (the members' pairwise sums, the squares, the division and the subtraction; this
module uses ``c = 64``, ``eps = 2**-52``). Without a shift, values near 4,000 with a standard
deviation of 0.01 therefore keep ~3 significant digits of their variance; with a shift ``K``
near the mean (any public value: a round number from the data dictionary, the validation set's
mean, or the mean from a first round of sums only), the error falls to ``c * eps * var``. A
variance below that bound cannot be told from zero and is treated as zero.

Fixed point
-----------
The packed slots hold signed ``value_bits``-bit integers (``round(v * 2**frac_bits)``).
:func:`moments_fixed_point` chooses ``frac_bits`` so that the *sum* over ``members_max``
members of the largest possible entry fits a signed 64-bit value (independently of the
packing's headroom). To give every feature the same relative precision whatever its unit, each
feature ``j`` is first multiplied by ``2**-e_j`` with ``e_j = ceil(log2(abs_max_j))`` (exact
in binary floating point), so every pre-scaled value lies in ``[-1, 1]`` and every entry of
a member's vector is at most ``n_rows_max`` in magnitude. The bound is then::

    members_max * (n_rows_max * 2**frac_bits * (1 + 2**-20) + 1) <= 2**(value_bits - 1) - 1

(the ``1 + 2**-20`` covers the members' float rounding, the ``+ 1`` each member's rounding to
an integer). For 1,024 members of up to 10**6 rows this gives ``frac_bits = 33`` whatever the
feature ranges (Wisconsin-scale raw data with ``abs_max = 4300``: ``e = 13``). Each decoded
total is off by at most ``contributions * 2**-(frac_bits + 1)`` in pre-scaled units, which the
zero-variance test adds to the float bound.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from homolr.errors import ConfigError, DataError

FloatArray = npt.NDArray[np.float64]

#: A scale whose relative error bound exceeds this is listed in ``Scaler.imprecise``.
PRECISION = 1e-3
#: Multiple of float64's eps in the cancellation bound of :func:`global_scaler`.
CANCELLATION_FACTOR = 64.0
_EPS = float(np.finfo(np.float64).eps)
#: Relative margin for the members' float rounding in :func:`moments_fixed_point`.
_FLOAT_MARGIN = Fraction(1, 2**20)


class Moments(NamedTuple):
    """Row count and per-feature sums and sums of squares (about a shift).

    Attributes
    ----------
    n : int
        Number of rows.
    sums : ndarray of shape (n_features,)
        ``sum_i (x_ij - shift_j)``.
    sumsq : ndarray of shape (n_features,)
        ``sum_i (x_ij - shift_j)**2``.
    """

    n: int
    sums: FloatArray
    sumsq: FloatArray


@dataclass(frozen=True, eq=False)
class Scaler:
    """Per-feature standardisation ``z = (x - mean) / scale``.

    Attributes
    ----------
    mean : ndarray of shape (n_features,)
    scale : ndarray of shape (n_features,)
        Population standard deviations (``ddof=0``); 1.0 for a constant feature.
    constant : tuple of int
        Indices of the features found constant (their scale was set to 1.0).
    imprecise : tuple of int
        Indices of the features whose scale is known only to a relative error above
        :data:`PRECISION` (the rounding bound is too close to the variance: give the feature a
        shift near its mean or a tighter bound). Diagnostics only, like ``constant``.
    """

    mean: FloatArray
    scale: FloatArray
    constant: tuple[int, ...] = ()
    imprecise: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        mean = np.array(self.mean, dtype=np.float64)
        scale = np.array(self.scale, dtype=np.float64)
        if mean.ndim != 1 or scale.shape != mean.shape:
            raise ConfigError(
                f"scaler mean and scale must be 1-D of one length, got shapes {mean.shape} "
                f"and {scale.shape}"
            )
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(scale))):
            raise ConfigError("scaler mean and scale must be finite")
        if np.any(scale <= 0):
            bad = np.flatnonzero(scale <= 0).tolist()
            raise ConfigError(f"scaler scale must be > 0, got non-positive values at {bad}")
        mean.setflags(write=False)
        scale.setflags(write=False)
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "constant", tuple(int(j) for j in self.constant))
        object.__setattr__(self, "imprecise", tuple(int(j) for j in self.imprecise))

    @property
    def n_features(self) -> int:
        """Number of features."""
        return int(self.mean.shape[0])

    @classmethod
    def fit(cls, X: npt.ArrayLike) -> Scaler:
        """Central standardisation of ``X`` (shape (n_samples, n_features)) with numpy.

        Same convention as :func:`global_scaler` (``ddof=0``, scale 1.0 for a zero variance).
        """
        arr = _matrix(X)
        std = arr.std(axis=0)
        constant = tuple(int(j) for j in np.flatnonzero(std == 0))
        return cls(arr.mean(axis=0), np.where(std > 0, std, 1.0), constant)

    def transform(self, X: npt.ArrayLike) -> FloatArray:
        """Standardise ``X`` of shape (n_samples, n_features): ``(X - mean) / scale``."""
        return np.asarray((self._check(X) - self.mean) / self.scale)

    def inverse_transform(self, Z: npt.ArrayLike) -> FloatArray:
        """Undo :meth:`transform`: ``Z * scale + mean``."""
        return np.asarray(self._check(Z) * self.scale + self.mean)

    def _check(self, X: npt.ArrayLike) -> FloatArray:
        arr = _matrix(X)
        if arr.shape[1] != self.n_features:
            raise DataError(f"X has {arr.shape[1]} features, but the scaler has {self.n_features}")
        return arr

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Scaler):
            return NotImplemented
        return (
            np.array_equal(self.mean, other.mean)
            and np.array_equal(self.scale, other.scale)
            and self.constant == other.constant
            and self.imprecise == other.imprecise
        )

    __hash__ = None  # type: ignore[assignment]


def _matrix(X: npt.ArrayLike) -> FloatArray:
    arr = np.asarray(X, dtype=np.float64)
    if arr.ndim != 2:
        raise DataError(f"X must be 2-D (n_samples, n_features), got shape {arr.shape}")
    return arr


def _shift(shift: npt.ArrayLike | None, n_features: int) -> FloatArray:
    """The shift as a float vector (zeros when None), validated."""
    if shift is None:
        return np.zeros(n_features)
    arr = np.asarray(shift, dtype=np.float64)
    if arr.shape != (n_features,) or not np.all(np.isfinite(arr)):
        raise ConfigError(
            f"shift must be {n_features} finite numbers, got shape {arr.shape} ({arr!r:.80})"
        )
    return arr


# ------------------------------------------------------------------------------ moments


def feature_moments(X: npt.ArrayLike, *, shift: npt.ArrayLike | None = None) -> Moments:
    """Row count, per-feature sums and sums of squares of ``X - shift``.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    shift : array-like of shape (n_features,), optional
        Public per-feature reference subtracted first (see the module docstring); zeros when
        omitted.

    Returns
    -------
    Moments
    """
    arr = _matrix(X)
    centred = arr - _shift(shift, arr.shape[1])
    return Moments(int(arr.shape[0]), centred.sum(axis=0), np.square(centred).sum(axis=0))


def combine_moments(parts: Sequence[Moments]) -> Moments:
    """Sum members' moments (what the enclave's decrypted sum holds)."""
    if not parts:
        raise ConfigError("combine_moments needs at least one member's moments")
    return Moments(
        sum(p.n for p in parts),
        np.sum([p.sums for p in parts], axis=0),
        np.sum([p.sumsq for p in parts], axis=0),
    )


def moments_vector(n: int, sums: npt.ArrayLike, sumsq: npt.ArrayLike) -> FloatArray:
    """Lay moments out as one vector ``[n, sums..., sumsq...]`` (length ``1 + 2 n_features``)."""
    s = np.asarray(sums, dtype=np.float64)
    q = np.asarray(sumsq, dtype=np.float64)
    if s.ndim != 1 or q.shape != s.shape:
        raise ConfigError(f"sums and sumsq must be 1-D of one length, got {s.shape} and {q.shape}")
    return np.concatenate([[float(n)], s, q])


def moments_from_vector(vector: npt.ArrayLike) -> Moments:
    """Inverse of :func:`moments_vector`.

    Raises
    ------
    DataError
        The length is not ``1 + 2 d`` with ``d >= 1``, or the count is not a non-negative integer.
    """
    v = np.asarray(vector, dtype=np.float64)
    if v.ndim != 1 or v.size < 3 or v.size % 2 == 0:
        raise DataError(f"a moments vector has 1 + 2 * n_features values, got shape {v.shape}")
    count = float(v[0])
    if not (count >= 0 and count == math.floor(count) and math.isfinite(count)):
        raise DataError(f"moments vector: row count must be a non-negative integer, got {count}")
    d = (v.size - 1) // 2
    return Moments(int(count), v[1 : 1 + d].copy(), v[1 + d :].copy())


# ------------------------------------------------------------------------------ global scaler


def global_scaler(
    n_total: int,
    sums_total: npt.ArrayLike,
    sumsq_total: npt.ArrayLike,
    *,
    shift: npt.ArrayLike | None = None,
    sums_error: npt.ArrayLike = 0.0,
    sumsq_error: npt.ArrayLike = 0.0,
) -> Scaler:
    """The pooled mean and population standard deviation from summed moments.

    Parameters
    ----------
    n_total : int
        Rows over all members, >= 1.
    sums_total, sumsq_total : array-like of shape (n_features,)
        Summed ``sum (x - shift)`` and ``sum (x - shift)**2``.
    shift : array-like of shape (n_features,), optional
        The shift the members used (zeros when omitted).
    sums_error, sumsq_error : float or array-like of shape (n_features,)
        Bounds on the absolute error of the totals (e.g. fixed-point rounding); they only widen
        the test for a zero variance.

    Returns
    -------
    Scaler
        ``mean = shift + S/n``; ``scale = sqrt(Q/n - (S/n)**2)``, or 1.0 (feature listed in
        ``constant``) when that variance is within the rounding bound of zero (module
        docstring); features whose scale has a relative error bound above
        :data:`PRECISION` are listed in ``imprecise``.

    Raises
    ------
    DataError
        ``n_total < 1``, a non-finite or negative total, or a variance below zero by more than
        the rounding bound (the totals cannot come from real data).
    """
    if isinstance(n_total, bool) or int(n_total) != n_total or n_total < 1:
        raise DataError(f"moments: the row count must be an integer >= 1, got {n_total!r}")
    n = float(n_total)
    S = np.asarray(sums_total, dtype=np.float64)
    Q = np.asarray(sumsq_total, dtype=np.float64)
    if S.ndim != 1 or Q.shape != S.shape:
        raise DataError(f"moments: sums and sumsq must be 1-D of one length ({S.shape}, {Q.shape})")
    if not (np.all(np.isfinite(S)) and np.all(np.isfinite(Q))) or np.any(Q < 0):
        raise DataError("moments: totals must be finite and the sums of squares >= 0")
    K = _shift(shift, S.shape[0])
    m = S / n
    second = Q / n
    var = second - m * m
    es = np.asarray(sums_error, dtype=np.float64) / n
    tol = CANCELLATION_FACTOR * _EPS * second + np.asarray(sumsq_error) / n + 2 * np.abs(m) * es
    tol = tol + es * es
    if np.any(var < -tol):
        j = int(np.flatnonzero(var < -tol)[0])
        raise DataError(
            f"moments: feature {j} has a negative variance {var[j]:.3g} beyond the rounding "
            f"bound {tol[j]:.3g}; the totals are inconsistent"
        )
    measured = var > tol
    scale = np.sqrt(np.where(measured, var, 1.0))
    # |sqrt(v + e) - sqrt(v)| / sqrt(v) <= e / (2 v)
    rel_error = np.where(measured, tol / (2 * np.where(measured, var, 1.0)), 0.0)
    return Scaler(
        K + m,
        scale,
        tuple(int(j) for j in np.flatnonzero(~measured)),
        tuple(int(j) for j in np.flatnonzero(rel_error > PRECISION)),
    )


def scaler_warnings(scaler: Scaler, feature_names: Sequence[str]) -> list[str]:
    """Plain-language notes on the constant and imprecise features of a global scaler."""
    if len(feature_names) != scaler.n_features:
        raise ConfigError(f"{len(feature_names)} names for {scaler.n_features} features")
    notes = []
    if scaler.constant:
        names = ", ".join(repr(feature_names[j]) for j in scaler.constant)
        notes.append(f"constant over all members (scale set to 1.0, no information): {names}")
    if scaler.imprecise:
        names = ", ".join(repr(feature_names[j]) for j in scaler.imprecise)
        notes.append(
            f"standard deviation known to worse than {PRECISION:.0e} relative: {names}; give "
            "these features a public shift near their mean or a tighter bound"
        )
    return notes


def unstandardize(
    coef: npt.ArrayLike, intercept: float, scaler: Scaler
) -> tuple[FloatArray, float]:
    """Express a model trained on ``scaler.transform(X)`` in the units of raw ``X``.

    ``z @ coef + intercept == x @ coef_raw + intercept_raw`` for ``z = (x - mean) / scale``.

    Parameters
    ----------
    coef : array-like of shape (n_features,)
    intercept : float
    scaler : Scaler

    Returns
    -------
    coef_raw : ndarray of shape (n_features,)
        ``coef / scale``.
    intercept_raw : float
        ``intercept - coef_raw @ mean``.
    """
    c = np.asarray(coef, dtype=np.float64)
    if c.shape != (scaler.n_features,):
        raise ConfigError(f"coef must have shape ({scaler.n_features},), got {c.shape}")
    coef_raw = c / scaler.scale
    return coef_raw, float(intercept) - float(coef_raw @ scaler.mean)


# ------------------------------------------------------------------------------ fixed point


@dataclass(frozen=True)
class MomentsFixedPoint:
    """How members encode their moments vector for packing (see the module docstring).

    Attributes
    ----------
    frac_bits : int
        Fractional bits of the packed values (``encrypt_packed(..., frac_bits=frac_bits)``).
    exponents : tuple of int
        Feature ``j`` is multiplied by ``2**-exponents[j]`` before its moments are taken.
    abs_max : tuple of float
        Public bound on ``|x_j - shift_j|``; a member whose data exceed it must refuse.
    n_rows_max : int
        Public bound on a member's row count.
    members_max : int
        Largest number of members whose vectors are summed.
    value_bits : int
        Width of a signed packed value.
    """

    frac_bits: int
    exponents: tuple[int, ...]
    abs_max: tuple[float, ...]
    n_rows_max: int
    members_max: int
    value_bits: int

    @property
    def n_features(self) -> int:
        """Number of features."""
        return len(self.exponents)

    @property
    def length(self) -> int:
        """Length of a moments vector: ``1 + 2 n_features``."""
        return 1 + 2 * self.n_features

    def largest_total(self) -> int:
        """Bound on the magnitude of any slot of the summed vector, in fixed-point units."""
        return _largest_total(self.frac_bits, self.n_rows_max, self.members_max)

    def _factors(self) -> FloatArray:
        return np.ldexp(1.0, [-e for e in self.exponents])

    def member_vector(
        self, X: npt.ArrayLike, *, shift: npt.ArrayLike | None = None, source: str = "data"
    ) -> FloatArray:
        """A member's pre-scaled moments vector, ready for ``encrypt_packed``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The member's raw features.
        shift : array-like of shape (n_features,), optional
        source : str
            Named in error messages (the member's file).

        Raises
        ------
        DataError
            More rows than ``n_rows_max``, or a value outside ``shift +- abs_max`` (the message
            names the feature, the value and the bound): packing it could overflow a slot.
        """
        arr = _matrix(X)
        if arr.shape[1] != self.n_features:
            raise DataError(
                f"{source}: {arr.shape[1]} features, the moments plan has {self.n_features}"
            )
        if arr.shape[0] > self.n_rows_max:
            raise DataError(
                f"{source}: {arr.shape[0]} rows, more than the plan's n_rows_max {self.n_rows_max}"
            )
        K = _shift(shift, self.n_features)
        bound = np.asarray(self.abs_max)
        excess = np.abs(arr - K) > bound
        if excess.any():
            row, j = (int(v) for v in np.argwhere(excess)[0])
            raise DataError(
                f"{source}: row {row + 1}, feature {j}: value {float(arr[row, j])!r} is outside the "
                f"plan's bound |x - {K[j]:g}| <= {bound[j]:g}; the federation must raise abs_max"
            )
        moments = feature_moments((arr - K) * self._factors())
        return moments_vector(*moments)

    def scaler(
        self,
        total: npt.ArrayLike,
        *,
        contributions: int,
        shift: npt.ArrayLike | None = None,
    ) -> Scaler:
        """The global scaler from the decrypted sum of ``contributions`` member vectors."""
        if not 1 <= contributions <= self.members_max:
            raise DataError(
                f"moments: {contributions} contributions, the plan allows 1..{self.members_max}"
            )
        moments = moments_from_vector(total)
        if moments.sums.size != self.n_features:
            raise DataError(
                f"moments: vector for {moments.sums.size} features, plan has {self.n_features}"
            )
        up = 1.0 / self._factors()
        quantum = contributions * math.ldexp(1.0, -(self.frac_bits + 1))
        return global_scaler(
            moments.n,
            moments.sums * up,
            moments.sumsq * up * up,
            shift=shift,
            sums_error=quantum * up,
            sumsq_error=quantum * up * up,
        )


def _largest_total(frac_bits: int, n_rows_max: int, members_max: int) -> int:
    """``floor(members_max * (n_rows_max * 2**frac_bits * (1 + margin) + 1))``."""
    per_member = Fraction(n_rows_max * 2**frac_bits) * (1 + _FLOAT_MARGIN) + 1
    return math.floor(members_max * per_member)


def _ceil_log2(value: float) -> int:
    """Smallest ``e`` with ``value <= 2**e`` (exact, via the binary exponent)."""
    mantissa, exponent = math.frexp(value)
    return exponent - 1 if mantissa == 0.5 else exponent


def moments_fixed_point(
    n_rows_max: int,
    abs_max: float | Sequence[float] | npt.ArrayLike,
    *,
    n_features: int | None = None,
    members_max: int = 1024,
    value_bits: int = 64,
) -> MomentsFixedPoint:
    """Choose the pre-scaling and ``frac_bits`` for packing moments (bound in module docstring).

    Parameters
    ----------
    n_rows_max : int
        Most rows one member may hold, >= 1.
    abs_max : float or array-like of shape (n_features,)
        Public bound on ``|x - shift|`` per feature (a scalar applies to every feature).
    n_features : int, optional
        Required when ``abs_max`` is a scalar.
    members_max : int
        Most members whose vectors are summed, >= 1.
    value_bits : int
        Signed width the *sum* must fit (64: the packing's value width).

    Returns
    -------
    MomentsFixedPoint
        With the largest ``frac_bits`` (at most ``value_bits - 2``) meeting the bound.

    Raises
    ------
    ConfigError
        A bound is not positive and finite, or even ``frac_bits = 0`` cannot meet the bound.
    """
    for name, value in (("n_rows_max", n_rows_max), ("members_max", members_max)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
    bounds = np.asarray(abs_max, dtype=np.float64)
    if bounds.ndim == 0:
        if n_features is None or n_features < 1:
            raise ConfigError("a scalar abs_max needs n_features >= 1")
        bounds = np.full(n_features, float(bounds))
    if bounds.ndim != 1 or not bounds.size or not np.all(np.isfinite(bounds) & (bounds > 0)):
        raise ConfigError(f"abs_max must be positive finite numbers, got {abs_max!r:.80}")
    exponents = tuple(_ceil_log2(b) for b in bounds.tolist())
    limit = 2 ** (value_bits - 1) - 1
    frac_bits = next(
        (
            f
            for f in range(value_bits - 2, -1, -1)
            if _largest_total(f, n_rows_max, members_max) <= limit
        ),
        None,
    )
    if frac_bits is None:
        raise ConfigError(
            f"{members_max} members of up to {n_rows_max} rows cannot fit a signed "
            f"{value_bits}-bit sum even at frac_bits = 0"
        )
    return MomentsFixedPoint(
        frac_bits, exponents, tuple(bounds.tolist()), n_rows_max, members_max, value_bits
    )


__all__ = [
    "CANCELLATION_FACTOR",
    "PRECISION",
    "Moments",
    "MomentsFixedPoint",
    "Scaler",
    "combine_moments",
    "feature_moments",
    "global_scaler",
    "moments_fixed_point",
    "moments_from_vector",
    "moments_vector",
    "scaler_warnings",
    "unstandardize",
]
