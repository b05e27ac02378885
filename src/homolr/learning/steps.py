"""Local training steps (pure numpy). The weight vector always carries the bias first, ``w[0]``.

Encrypted mode uses the reference's Taylor step. With ``sigmoid(z) ~ 0.5 + z / 4`` the gradient
is affine in ``w``::

    g(w) = (p - y)^T Xb / m + alpha w,            p = 0.5 + 0.25 Xb w
         = (0.25 Xb^T Xb / m + alpha I) w + Xb^T (0.5 - y) / m

so one step ``w - lr g(w)`` is ``M w + b`` with ``M = I - lr (0.25 XtX / m + alpha I)`` and
``b = -lr Xt(0.5 - y) / m``. A worker can therefore apply it to an *encrypted* ``w`` with
plaintext ``M`` and ``b`` (scalar-ciphertext products and additions only), after computing the
:class:`SufficientStats` once.

Secure-aggregation mode trains in plaintext: :func:`sgd_epochs` is mini-batch SGD with the
exact sigmoid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from homolr.errors import ConfigError
from homolr.learning.metrics import sigmoid

FloatArray = npt.NDArray[np.float64]

SCHEDULES = ("constant", "inverse", "invsqrt")


def taylor_gradient(w: FloatArray, Xb: FloatArray, y: npt.ArrayLike, alpha: float) -> FloatArray:
    """Gradient of the reference step, computed row by row as the reference does.

    Parameters
    ----------
    w : ndarray of shape (n_features + 1,)
        Weights, bias first.
    Xb : ndarray of shape (n_samples, n_features + 1)
        Features with the bias column first (see :func:`homolr.learning.add_bias`).
    y : array-like of shape (n_samples,)
        Labels in {0, 1}.
    alpha : float
        L2 coefficient (applied to every weight, the bias included, like the reference).

    Returns
    -------
    g : ndarray of shape (n_features + 1,)
        ``(p - y)^T Xb / m + alpha w`` with ``p = 0.5 + 0.25 Xb w``.
    """
    p = 0.5 + 0.25 * (Xb @ w)
    residual: FloatArray = p - np.asarray(y, dtype=np.float64)
    return np.asarray(residual @ Xb / Xb.shape[0] + alpha * w)


@dataclass(frozen=True)
class SufficientStats:
    """What a worker needs from its data for any number of Taylor steps.

    Attributes
    ----------
    xtx : ndarray of shape (d, d)
        ``Xb^T Xb`` (``d = n_features + 1``).
    xt_half_minus_y : ndarray of shape (d,)
        ``Xb^T (0.5 - y)``.
    n_samples : int
        ``m``, the number of rows.
    """

    xtx: FloatArray
    xt_half_minus_y: FloatArray
    n_samples: int

    @property
    def dim(self) -> int:
        """``d``, the number of weights (bias included)."""
        return int(self.xtx.shape[0])


def sufficient_stats(Xb: FloatArray, y: npt.ArrayLike) -> SufficientStats:
    """Compute :class:`SufficientStats` of a worker's full batch.

    Parameters
    ----------
    Xb : ndarray of shape (n_samples, d)
        Features with the bias column first.
    y : array-like of shape (n_samples,)
        Labels in {0, 1}.
    """
    Xb = np.asarray(Xb, dtype=np.float64)
    half_minus_y = 0.5 - np.asarray(y, dtype=np.float64)
    return SufficientStats(Xb.T @ Xb, Xb.T @ half_minus_y, int(Xb.shape[0]))


def linear_update(stats: SufficientStats, lr: float, alpha: float) -> tuple[FloatArray, FloatArray]:
    """The Taylor step as an affine map ``w_new = M @ w + b``.

    Parameters
    ----------
    stats : SufficientStats
    lr : float
        Learning rate of this iteration.
    alpha : float
        L2 coefficient.

    Returns
    -------
    M : ndarray of shape (d, d)
        ``I - lr (0.25 XtX / m + alpha I)``.
    b : ndarray of shape (d,)
        ``-lr Xt(0.5 - y) / m``.
    """
    m = stats.n_samples
    hessian_like = 0.25 * stats.xtx / m + alpha * np.eye(stats.dim)
    return np.eye(stats.dim) - lr * hessian_like, -lr * stats.xt_half_minus_y / m


def max_stable_lr(stats: SufficientStats, alpha: float) -> float:
    """Largest constant learning rate for which the Taylor step is a contraction: ``2 / L``.

    ``L`` is the largest eigenvalue of ``0.25 XtX / m + alpha I``; with ``lr >= 2 / L`` the
    iteration ``w <- M w + b`` diverges. A worker can check a plan's learning rate against its
    own bound before training (for standardised features ``L <= 0.25 (d + 1) + alpha``; the
    reference data give about 0.58).

    Parameters
    ----------
    stats : SufficientStats
    alpha : float
        L2 coefficient.
    """
    top = float(np.linalg.eigvalsh(0.25 * stats.xtx / stats.n_samples)[-1])
    return 2.0 / (top + alpha)


def quantize(x: npt.ArrayLike, frac_bits: int) -> FloatArray:
    """Round to the nearest multiple of ``2**-frac_bits`` (what fixed-point encoding keeps).

    Parameters
    ----------
    x : array-like of any shape
    frac_bits : int
        Number of fractional bits, >= 0.
    """
    if frac_bits < 0:
        raise ConfigError(f"frac_bits must be >= 0, got {frac_bits}")
    scale = float(2**frac_bits)
    return np.asarray(np.rint(np.asarray(x, dtype=np.float64) * scale) / scale)


def learning_rate(schedule: str, lr0: float, t: int, *, decay: float = 1.0) -> float:
    """Learning rate of iteration ``t`` (0-based).

    Parameters
    ----------
    schedule : {"constant", "inverse", "invsqrt"}
        ``"invsqrt"``: ``lr0 / sqrt(1 + t)`` (the reference); ``"constant"``: ``lr0``;
        ``"inverse"``: ``lr0 / (1 + decay * t)``.
    lr0 : float
        Initial learning rate, > 0.
    t : int
        Iteration index, >= 0.
    decay : float
        Decay coefficient of ``"inverse"``, >= 0.
    """
    if schedule not in SCHEDULES:
        raise ConfigError(
            f"unknown learning-rate schedule {schedule!r}; allowed: {', '.join(SCHEDULES)}"
        )
    if not lr0 > 0 or not math.isfinite(lr0):
        raise ConfigError(f"lr0 must be a finite number > 0, got {lr0}")
    if t < 0:
        raise ConfigError(f"iteration t must be >= 0, got {t}")
    if schedule == "invsqrt":
        return lr0 / math.sqrt(1 + t)
    if schedule == "inverse":
        if decay < 0:
            raise ConfigError(f"decay must be >= 0, got {decay}")
        return lr0 / (1 + decay * t)
    return lr0


def logistic_gradient(w: FloatArray, Xb: FloatArray, y: FloatArray, alpha: float) -> FloatArray:
    """Exact gradient of the mean log loss plus ``alpha/2 ||w||^2``.

    Parameters
    ----------
    w : ndarray of shape (d,)
    Xb : ndarray of shape (n_samples, d)
    y : ndarray of shape (n_samples,)
    alpha : float

    Returns
    -------
    g : ndarray of shape (d,)
    """
    residual = sigmoid(Xb @ w) - y
    return np.asarray(residual @ Xb / Xb.shape[0] + alpha * w)


def sgd_epochs(
    w: FloatArray,
    Xb: FloatArray,
    y: npt.ArrayLike,
    *,
    lr: float,
    alpha: float,
    batch_size: int,
    epochs: int,
    rng: np.random.Generator,
) -> FloatArray:
    """Mini-batch SGD with the exact sigmoid and L2 (local training of secure-aggregation mode).

    Parameters
    ----------
    w : ndarray of shape (d,)
        Starting weights, bias first; not modified.
    Xb : ndarray of shape (n_samples, d)
        Features with the bias column first.
    y : array-like of shape (n_samples,)
        Labels in {0, 1}.
    lr : float
        Constant step size.
    alpha : float
        L2 coefficient (bias included, like the Taylor step).
    batch_size : int
        Rows per step; ``<= 0`` or ``>= n_samples`` means full batch (then no shuffling is needed
        and ``rng`` is not consumed).
    epochs : int
        Passes over the data, >= 0.
    rng : numpy.random.Generator
        Source of the per-epoch shuffles.

    Returns
    -------
    w : ndarray of shape (d,)
    """
    if epochs < 0:
        raise ConfigError(f"epochs must be >= 0, got {epochs}")
    Xb = np.asarray(Xb, dtype=np.float64)
    yf = np.asarray(y, dtype=np.float64)
    m = Xb.shape[0]
    w = np.array(w, dtype=np.float64, copy=True)
    full = batch_size <= 0 or batch_size >= m
    for _ in range(epochs):
        if full:
            w -= lr * logistic_gradient(w, Xb, yf, alpha)
            continue
        order = rng.permutation(m)
        for start in range(0, m, batch_size):
            rows = order[start : start + batch_size]
            w -= lr * logistic_gradient(w, Xb[rows], yf[rows], alpha)
    return w
