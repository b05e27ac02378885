"""Evaluation of a weight vector: exact sigmoid, accuracy at 0.5, mean log loss, ROC AUC.

The printed line follows the reference solution's ``print`` exactly::

    iter: 220  acc: 0.904  loss: 0.305
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

#: Probability clipping of the log loss, as in ``sklearn.metrics.log_loss`` (float64 eps).
LOG_LOSS_EPS = float(np.finfo(np.float64).eps)


def sigmoid(z: npt.ArrayLike) -> FloatArray:
    """Numerically stable logistic function ``1 / (1 + exp(-z))``; never overflows.

    Parameters
    ----------
    z : array-like of any shape

    Returns
    -------
    ndarray of the same shape, float64, in [0, 1]
    """
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(-np.abs(z))
    return np.asarray(np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e)))


@dataclass(frozen=True)
class Metrics:
    """Quality of a model on a labelled set.

    Attributes
    ----------
    accuracy : float
        Share of rows with ``(p >= 0.5) == y``.
    loss : float
        Mean log loss, probabilities clipped to ``[eps, 1 - eps]``.
    auc : float
        ROC AUC; ``nan`` when ``y`` has a single class.
    """

    accuracy: float
    loss: float
    auc: float


def log_loss(y: npt.ArrayLike, p: npt.ArrayLike) -> float:
    """Mean binary log loss with sklearn's clipping.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        Labels in {0, 1}.
    p : array-like of shape (n_samples,)
        Predicted probabilities of label 1.
    """
    yf = np.asarray(y, dtype=np.float64)
    pc = np.clip(np.asarray(p, dtype=np.float64), LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS)
    return float(-np.mean(yf * np.log(pc) + (1.0 - yf) * np.log1p(-pc)))


def roc_auc(y: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """ROC AUC, ``nan`` if ``y`` has one class only.

    The Mann-Whitney form (ties get their average rank), in numpy: the PS evaluates every few
    rounds and must not pay for importing scikit-learn on its first evaluation. Equal to
    :func:`sklearn.metrics.roc_auc_score` (tested).
    """
    labels = np.asarray(y).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    positives = int(labels.sum())
    negatives = labels.size - positives
    if positives == 0 or negatives == 0:
        return math.nan
    order = np.argsort(s, kind="mergesort")
    sorted_scores = s[order]
    # average rank (1-based) of each run of equal scores
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], s.size]
    average = (starts + ends + 1) / 2.0
    ranks = np.empty(s.size)
    ranks[order] = np.repeat(average, ends - starts)
    rank_sum = float(ranks[labels].sum())
    return (rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives)


def evaluate(w: npt.ArrayLike, Xb: npt.ArrayLike, y: npt.ArrayLike) -> Metrics:
    """Evaluate weights (bias first) on a labelled set with the exact sigmoid.

    Parameters
    ----------
    w : array-like of shape (d,)
        Weights, bias first.
    Xb : array-like of shape (n_samples, d)
        Features with the bias column first.
    y : array-like of shape (n_samples,)
        Labels in {0, 1}.

    Returns
    -------
    Metrics
    """
    labels = np.asarray(y)
    p = sigmoid(np.asarray(Xb, dtype=np.float64) @ np.asarray(w, dtype=np.float64))
    accuracy = float(np.mean((p >= 0.5) == (labels == 1)))
    return Metrics(accuracy, log_loss(labels, p), roc_auc(labels, p))


def format_eval_line(iteration: int, metrics: Metrics) -> str:
    """The reference's progress line: ``iter: {i}  acc: {acc:.3f}  loss: {loss:.3f}``."""
    return f"iter: {iteration}  acc: {metrics.accuracy:.3f}  loss: {metrics.loss:.3f}"
