"""The report's figures, drawn with matplotlib's object API on the Agg canvas (no display, no
pyplot global state), each saved as a PNG of about 800 x 500 pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from homolr.report.inputs import RunRecord, bytes_per_round

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

DPI = 100
BLUE, ORANGE, GREEN, GREY = "#1f77b4", "#ff7f0e", "#2ca02c", "#7f7f7f"
#: Bins of the calibration curve (uniform on [0, 1]).
CALIBRATION_BINS = 10


def _figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: Path) -> Path:
    figure.savefig(path, format="png", dpi=DPI, metadata={"Software": None})
    return path


def _style(ax: Axes, ylabel: str) -> None:
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)


def training_curves(records: Sequence[RunRecord], path: Path) -> Path:
    """Accuracy, log loss and ROC AUC of the global model on the validation set, per round."""
    iterations = [r.iteration for r in records]
    figure = _figure(8.0, 7.0)
    axes = figure.subplots(3, 1, sharex=True)
    series = (
        ("accuracy", [r.acc for r in records], BLUE),
        ("log loss", [r.loss for r in records], ORANGE),
        ("ROC AUC", [r.auc for r in records], GREEN),
    )
    for ax, (label, values, colour) in zip(axes, series, strict=True):
        ax.plot(iterations, values, marker="o", markersize=3, color=colour)
        _style(ax, label)
        last = values[-1]
        if np.isfinite(last):
            ax.annotate(
                f"{last:.3f}",
                (iterations[-1], last),
                textcoords="offset points",
                xytext=(-4, 6),
                ha="right",
            )
    axes[-1].set_xlabel("round")
    figure.suptitle("Global model on the validation set")
    return _save(figure, path)


def traffic(records: Sequence[RunRecord], path: Path) -> Path:
    """Bytes on the PS's wire per round (bars) and in total (line)."""
    iterations = np.array([r.iteration for r in records])
    per_round = bytes_per_round(records) / 1e6
    total = np.cumsum([r.bytes for r in records]) / 1e6
    figure = _figure(8.0, 4.5)
    ax = figure.subplots()
    width = max(float(np.min(np.diff(iterations))) * 0.8, 0.8) if len(iterations) > 1 else 0.8
    ax.bar(iterations, per_round, width=width, color=BLUE, alpha=0.7, label="per round")
    ax.set_ylim(0, 1.3 * float(per_round.max()) if per_round.max() > 0 else 1.0)  # legend room
    _style(ax, "MB per round")
    ax.set_xlabel("round")
    twin = ax.twinx()
    twin.plot(iterations, total, color=ORANGE, marker="o", markersize=3, label="total")
    twin.set_ylim(0, 1.3 * float(total.max()) if total.max() > 0 else 1.0)
    twin.set_ylabel("MB in total")
    handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    ax.legend(handles, ["per round", "total"], loc="upper left")
    ax.set_title("Traffic on the parameter server's wire")
    return _save(figure, path)


def privacy(records: Sequence[RunRecord], path: Path) -> Path:
    """Differential-privacy budget spent (epsilon) per round."""
    points = [(r.iteration, r.epsilon) for r in records if r.epsilon is not None]
    figure = _figure(8.0, 4.0)
    ax = figure.subplots()
    ax.plot([i for i, _ in points], [e for _, e in points], color=GREEN, marker="o")
    _style(ax, "epsilon spent")
    ax.set_xlabel("round")
    ax.set_title("Privacy budget")
    return _save(figure, path)


def roc(y: IntArray, p: FloatArray, path: Path) -> tuple[Path, float]:
    """ROC curve of the final model on the validation set; returns the path and the AUC."""
    from sklearn.metrics import roc_auc_score, roc_curve

    fpr, tpr, _ = roc_curve(y, p)
    auc = float(roc_auc_score(y, p))
    figure = _figure(6.0, 5.5)
    ax = figure.subplots()
    ax.plot(fpr, tpr, color=BLUE, label=f"final model (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], color=GREY, linestyle="--", label="chance")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_aspect("equal")
    _style(ax, "true positive rate")
    ax.set_xlabel("false positive rate")
    ax.legend(loc="lower right")
    ax.set_title(f"ROC curve, validation set ({len(y)} rows)")
    return _save(figure, path), auc


def calibration(y: IntArray, p: FloatArray, path: Path) -> Path:
    """Reliability diagram (observed frequency of label 1 per probability bin) and histogram."""
    edges = np.linspace(0.0, 1.0, CALIBRATION_BINS + 1)
    bins = np.clip(np.digitize(p, edges[1:-1]), 0, CALIBRATION_BINS - 1)
    counts = np.bincount(bins, minlength=CALIBRATION_BINS)
    filled = counts > 0
    mean_p = np.bincount(bins, weights=p, minlength=CALIBRATION_BINS)[filled] / counts[filled]
    observed = np.bincount(bins, weights=y, minlength=CALIBRATION_BINS)[filled] / counts[filled]
    figure = _figure(6.0, 6.5)
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    top.plot([0, 1], [0, 1], color=GREY, linestyle="--", label="perfectly calibrated")
    top.plot(mean_p, observed, color=BLUE, marker="o", label="final model")
    top.set_ylim(-0.02, 1.02)
    _style(top, "fraction of label 1")
    top.legend(loc="upper left")
    top.set_title(f"Calibration, validation set ({CALIBRATION_BINS} bins)")
    bottom.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color=BLUE, alpha=0.7)
    _style(bottom, "rows")
    bottom.set_xlabel("predicted probability of label 1")
    bottom.set_xlim(0, 1)
    return _save(figure, path)


__all__ = ["calibration", "privacy", "roc", "traffic", "training_curves"]
