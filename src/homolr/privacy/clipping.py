"""L2 clipping and projection, the pure operations that bound a contribution.

Each guarantees its bound for the *real* norm of the float64 result, not only for a norm computed
in floating point: a vector that needs scaling is scaled to ``(1 - 2**-40)`` times the bound, a
relative margin far above the rounding error of the norm and of the scaling (about ``d 2**-53``
for ``d`` coordinates); a vector already within the bound by that margin is returned unchanged.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from homolr.errors import ConfigError
from homolr.privacy.noise import snap_to_grid

FloatArray = npt.NDArray[np.float64]

#: Relative margin kept below every bound (see the module docstring).
MARGIN = 2.0**-40


def _check_bound(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name} must be a number, got {type(value).__name__}")
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{name} must be finite and > 0, got {value!r}")


def _vector(values: npt.ArrayLike, name: str) -> FloatArray:
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1:
        raise ConfigError(f"{name} must be 1-D, got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ConfigError(f"{name} has non-finite entries")
    return v


def _shrink_factors(norms: FloatArray, bound: float) -> FloatArray:
    """Per-vector factors <= 1 that bring every norm to at most ``bound`` (with the margin)."""
    target = bound * (1.0 - MARGIN)
    with np.errstate(divide="ignore"):
        return np.where(norms > target, target / norms, 1.0)


def project(w: npt.ArrayLike, bound: float) -> FloatArray:
    """Euclidean projection onto the L2 ball of radius ``bound``: ``w min(1, bound / ||w||)``.

    Parameters
    ----------
    w : array-like of shape (d,)
    bound : float
        Radius, > 0.

    Returns
    -------
    ndarray of shape (d,)
        ``w`` itself (a copy) when ``||w|| <= bound (1 - 2**-40)``, else ``w`` scaled to that norm.
    """
    _check_bound("bound", bound)
    v = _vector(w, "w")
    return np.asarray(v * _shrink_factors(np.atleast_1d(np.linalg.norm(v)), bound)[0])


def clip_update(
    update: npt.ArrayLike, clip: float, *, frac_bits: int | None = None
) -> tuple[FloatArray, float]:
    """L2-clip a member's update (trained model minus the global model it received).

    Parameters
    ----------
    update : array-like of shape (d,)
    clip : float
        L2 bound, > 0.
    frac_bits : int or None
        When set, the clipped update is also rounded *toward zero* onto the multiples of
        ``2**-frac_bits``, so the fixed-point encoding the worker applies next is exact and the
        bound still holds (rounding to nearest could add up to ``sqrt(d) 2**-(frac_bits + 1)``).

    Returns
    -------
    clipped : ndarray of shape (d,)
        ``||clipped|| <= clip``.
    scale : float
        Factor applied before the grid rounding, in ``(0, 1]`` (1: not clipped).
    """
    _check_bound("clip", clip)
    v = _vector(update, "update")
    scale = float(_shrink_factors(np.atleast_1d(np.linalg.norm(v)), clip)[0])
    clipped = v * scale
    if frac_bits is not None:
        clipped = snap_to_grid(clipped, frac_bits, toward_zero=True)
    return clipped, scale


def clip_rows(X: npt.ArrayLike, clip: float) -> FloatArray:
    """Scale the feature rows so that each row *with its bias entry* has L2 norm <= ``clip``.

    The bias column of ``Xb = [1, X]`` stays exactly 1 (the intercept keeps its meaning for every
    row); the features of a row are scaled so that ``1 + ||x||**2 <= clip**2``. This is the norm
    that enters ``Xb^T Xb`` and ``Xb^T (0.5 - y)``, i.e. the sensitivity analysis.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Features, *without* the bias column.
    clip : float
        Bound on ``||[1, x]||``, > 1.

    Returns
    -------
    ndarray of shape (n_samples, n_features)
    """
    _check_bound("clip", clip)
    if clip <= 1:
        raise ConfigError(f"clip must be > 1 for rows with a bias entry of 1, got {clip!r}")
    A = np.asarray(X, dtype=np.float64)
    if A.ndim != 2:
        raise ConfigError(f"X must be 2-D (n_samples, n_features), got shape {A.shape}")
    if not np.all(np.isfinite(A)):
        raise ConfigError("X has non-finite entries")
    feature_bound = math.sqrt((clip - 1.0) * (clip + 1.0))
    factors = _shrink_factors(np.linalg.norm(A, axis=1), feature_bound)
    return np.asarray(A * factors[:, None])


__all__ = ["MARGIN", "clip_rows", "clip_update", "project"]
