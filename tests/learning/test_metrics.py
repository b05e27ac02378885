"""Metrics: stable sigmoid, accuracy/loss/AUC against scikit-learn, the printed line."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import log_loss as sk_log_loss
from sklearn.metrics import roc_auc_score

from homolr.learning import (
    Metrics,
    add_bias,
    evaluate,
    format_eval_line,
    log_loss,
    roc_auc,
    sigmoid,
)


def test_sigmoid_is_stable_and_correct() -> None:
    z = np.array([-1000.0, -30.0, -1.0, 0.0, 2.5, 40.0, 1000.0])
    p = sigmoid(z)
    assert np.all(np.isfinite(p))
    assert p[0] == 0.0 and p[-1] == 1.0 and p[3] == 0.5
    np.testing.assert_allclose(p[1:-1], 1 / (1 + np.exp(-z[1:-1])), rtol=1e-15)
    np.testing.assert_allclose(sigmoid(z) + sigmoid(-z), 1.0, rtol=1e-15)


def test_evaluate_against_sklearn() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 4))
    y = rng.integers(0, 2, 80)
    w = rng.normal(size=5)
    metrics = evaluate(w, add_bias(X), y)
    p = 1 / (1 + np.exp(-(add_bias(X) @ w)))
    assert metrics.accuracy == pytest.approx(np.mean((p >= 0.5).astype(int) == y))
    assert metrics.loss == pytest.approx(sk_log_loss(y, p), rel=1e-12)
    assert metrics.auc == pytest.approx(roc_auc_score(y, p))


def test_log_loss_clips_like_sklearn() -> None:
    y = np.array([1, 0, 1, 0])
    p = np.array([0.0, 1.0, 1.0, 0.0])  # two certain mistakes, two certain hits
    assert math.isfinite(log_loss(y, p))
    assert log_loss(y, p) == pytest.approx(sk_log_loss(y, p), rel=1e-12)


def test_threshold_is_inclusive_at_one_half() -> None:
    Xb = add_bias(np.zeros((2, 1)))
    assert evaluate(np.zeros(2), Xb, np.array([1, 1])).accuracy == 1.0
    assert evaluate(np.zeros(2), Xb, np.array([0, 0])).accuracy == 0.0


def test_auc_is_nan_with_a_single_class() -> None:
    Xb = add_bias(np.arange(4.0).reshape(4, 1))
    metrics = evaluate(np.array([-1.5, 1.0]), Xb, np.ones(4, dtype=int))
    assert math.isnan(metrics.auc)
    assert metrics.accuracy == 0.5


def test_format_eval_line_is_the_reference_print() -> None:
    line = format_eval_line(220, Metrics(accuracy=0.90351, loss=0.30549, auc=0.9))
    assert line == "iter: 220  acc: 0.904  loss: 0.305"
    assert format_eval_line(0, Metrics(1.0, 0.0, math.nan)) == "iter: 0  acc: 1.000  loss: 0.000"


def test_roc_auc_equals_scikit_learns_with_and_without_ties() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(5)
    for trial in range(50):
        y = rng.integers(0, 2, 40)
        if y.min() == y.max():
            continue
        scores = rng.normal(size=40) if trial % 2 else rng.integers(0, 5, 40).astype(float)
        assert roc_auc(y, scores) == pytest.approx(roc_auc_score(y, scores), abs=1e-12)


def test_the_ps_does_not_import_scikit_learn_to_evaluate() -> None:
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "from homolr.learning.metrics import evaluate\n"
        "evaluate(np.zeros(3), np.ones((4, 3)), np.array([0, 1, 0, 1]))\n"
        "print('sklearn' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
