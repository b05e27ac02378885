"""The one-page run report: figures plus a self-contained ``report.html``.

The PNGs are written beside the page *and* embedded in it as base64 ``data:`` URIs, so the
page shows the same whether the run directory is copied whole, the page is mailed alone, or it
is opened from an archive. Every value taken from the run's files is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from homolr.errors import DataError
from homolr.learning.model import LogisticModel
from homolr.report import figures
from homolr.report.inputs import (
    RunRecord,
    load_metrics,
    load_validation_scores,
    select_run,
)

METRICS_FILE = "metrics.jsonl"
MODEL_FILE = "model.json"
SCORES_FILE = "validation_scores.csv"
REPORT_DIR = "report"
PAGE_FILE = "report.html"
#: Figure keys, file names and captions, in page order.
FIGURES = (
    ("training", "training.png", "Accuracy, log loss and ROC AUC of the global model per round"),
    ("roc", "roc.png", "ROC curve of the final model on the validation set"),
    ("calibration", "calibration.png", "Calibration of the final model on the validation set"),
    ("traffic", "traffic.png", "Bytes on the parameter server's wire per round"),
    ("privacy", "privacy.png", "Differential-privacy budget spent per round"),
)


@dataclass(frozen=True)
class ReportPaths:
    """What :func:`write_report` wrote.

    Attributes
    ----------
    html : Path
        The page.
    figures : dict of str to Path
        The PNGs written, keyed ``training``, ``roc``, ``calibration``, ``traffic``,
        ``privacy`` (only those that could be drawn).
    notes : tuple of str
        What was skipped and why (also shown on the page).
    """

    html: Path
    figures: dict[str, Path] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


@dataclass
class _Run:
    """Everything read from the run directory."""

    records: list[RunRecord]
    model: LogisticModel | None
    scores: tuple[Any, Any] | None
    notes: list[str]


def _read_run(run_dir: Path) -> _Run:
    notes: list[str] = []
    model = None
    if (run_dir / MODEL_FILE).is_file():
        model = LogisticModel.load(run_dir / MODEL_FILE)
    else:
        notes.append(f"no {MODEL_FILE}: the run has not finished; no plan or federation shown")
    records: list[RunRecord] = []
    if (run_dir / METRICS_FILE).is_file():
        run_id = None if model is None else model.metadata.get("run_id")
        records, more = select_run(load_metrics(run_dir / METRICS_FILE), run_id)
        notes += more
    else:
        notes.append(f"no {METRICS_FILE}: no per-round curves")
    if records == [] and (run_dir / METRICS_FILE).is_file():
        notes.append(f"{METRICS_FILE} holds no evaluation: no per-round curves")
    scores = None
    if (run_dir / SCORES_FILE).is_file():
        scores = load_validation_scores(run_dir / SCORES_FILE)
    else:
        notes.append(
            f"no {SCORES_FILE} (written at the end of a completed run): no ROC or calibration"
        )
    return _Run(records, model, scores, notes)


def _draw(run: _Run, out_dir: Path) -> tuple[dict[str, Path], dict[str, float]]:
    """Draw every figure the inputs allow; returns the paths and a few computed numbers."""
    names = {key: out_dir / name for key, name, _ in FIGURES}
    drawn: dict[str, Path] = {}
    computed: dict[str, float] = {}
    if run.records:
        drawn["training"] = figures.training_curves(run.records, names["training"])
        drawn["traffic"] = figures.traffic(run.records, names["traffic"])
        if any(r.epsilon is not None for r in run.records):
            drawn["privacy"] = figures.privacy(run.records, names["privacy"])
        else:
            run.notes.append("no epsilon in the metrics (no differential privacy): no budget plot")
    if run.scores is not None:
        y, p = run.scores
        if np.unique(y).size == 2:
            drawn["roc"], computed["auc"] = figures.roc(y, p, names["roc"])
        else:
            run.notes.append("the validation set has a single class: no ROC curve")
        drawn["calibration"] = figures.calibration(y, p, names["calibration"])
        computed["accuracy"] = float(np.mean((p >= 0.5) == (y == 1)))
        computed["rows"] = float(len(y))
    for key in names:
        if key not in drawn:
            names[key].unlink(missing_ok=True)  # no stale figure from an earlier report
    return drawn, computed


def write_report(run_dir: str | Path, *, out_dir: str | Path | None = None) -> ReportPaths:
    """Write the figures and ``report.html`` of a run.

    Parameters
    ----------
    run_dir : str or Path
        The PS's output directory: ``metrics.jsonl``, ``model.json`` and
        ``validation_scores.csv``, each optional (what is missing is skipped with a note).
    out_dir : str or Path, optional
        Where to write; default ``run_dir / "report"``.

    Returns
    -------
    ReportPaths

    Raises
    ------
    DataError
        ``run_dir`` is not a directory, or an input file is malformed (file, line, field named).
    """
    run_path = Path(run_dir)
    if not run_path.is_dir():
        raise DataError(f"{run_path}: not a directory (expected a homolr run directory)")
    target = Path(out_dir) if out_dir is not None else run_path / REPORT_DIR
    target.mkdir(parents=True, exist_ok=True)
    run = _read_run(run_path)
    drawn, computed = _draw(run, target)
    page = target / PAGE_FILE
    text = _page(run, drawn, computed)
    tmp = page.with_name(f".{page.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(page)
    return ReportPaths(page, drawn, tuple(run.notes))


# ------------------------------------------------------------------------------ HTML

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 62rem; margin: 2rem auto; padding: 0 1rem;
       color: #222; line-height: 1.45; }
h1 { font-size: 1.5rem; margin-bottom: 0.2rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
.sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 0.5rem 0; }
td, th { border-bottom: 1px solid #ddd; padding: 0.25rem 0.8rem 0.25rem 0; text-align: left;
         vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code { font-size: 0.9em; word-break: break-all; }
figure { margin: 1.2rem 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9rem; }
.notes li { color: #8a5a00; }
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4g}"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _table(rows: Sequence[tuple[str, object]]) -> str:
    body = "".join(
        f"<tr><th>{_e(k)}</th><td>{_e(_fmt(v))}</td></tr>" for k, v in rows if v is not None
    )
    return f"<table>{body}</table>"


def _summary(run: _Run, computed: Mapping[str, float]) -> list[tuple[str, object]]:
    meta: Mapping[str, Any] = {} if run.model is None else run.model.metadata
    last = run.records[-1] if run.records else None
    found = meta.get("validation")
    validation: Mapping[str, Any] = found if isinstance(found, dict) else {}
    return [
        ("run", meta.get("run_id") or (last.run_id if last else None)),
        ("mode", meta.get("mode")),
        ("key size (bits)", meta.get("key_bits")),
        ("rounds", meta.get("rounds") if meta.get("rounds") is not None else _rounds(last)),
        ("stopped because", meta.get("finished")),
        ("members in the last round", last.workers if last else None),
        ("validation accuracy", last.acc if last else validation.get("accuracy")),
        ("validation log loss", last.loss if last else validation.get("loss")),
        ("validation ROC AUC", last.auc if last else validation.get("auc")),
        ("validation rows scored", int(computed["rows"]) if "rows" in computed else None),
        ("privacy budget spent (epsilon)", last.epsilon if last else None),
        ("training time (s)", round(last.seconds, 1) if last else None),
        ("bytes on the PS's wire", f"{sum(r.bytes for r in run.records):,}" if last else None),
    ]


def _rounds(last: RunRecord | None) -> int | None:
    return None if last is None else last.iteration + 1


def _federation(meta: Mapping[str, Any]) -> str:
    fed = meta.get("federation")
    if not isinstance(fed, dict):
        return "<p>No federation description in the model's metadata.</p>"
    members = fed.get("members")
    member_list = ""
    if isinstance(members, list) and members:
        items = "".join(f"<li>{_e(_fmt(m))}</li>" for m in members)
        member_list = f"<p>Members ({len(members)}):</p><ul>{items}</ul>"
    rows = [("name", fed.get("name")), ("hash", fed.get("hash"))]
    body = "".join(
        f"<tr><th>{_e(k)}</th><td><code>{_e(v)}</code></td></tr>" for k, v in rows if v is not None
    )
    return f"<table>{body}</table>{member_list}"


def _model_section(model: LogisticModel) -> str:
    known = getattr(model, "feature_names_in_", None)
    names = (
        [str(n) for n in known]
        if known is not None
        else [f"x{i}" for i in range(len(model.weights) - 1)]
    )
    weights = model.weights
    scaler = model.scaler
    if scaler is None:
        unit = "Weights apply to the features as the members hold them."
        header = "<tr><th>feature</th><th>weight</th></tr>"
        rows = [
            f"<tr><td>{_e(n)}</td><td class='num'>{w:+.5f}</td></tr>"
            for n, w in zip(names, weights[1:], strict=True)
        ]
    else:
        unit = (
            "Weights apply to features standardised by the federation's global scaler "
            "(the model takes raw data and standardises it first)."
        )
        header = "<tr><th>feature</th><th>weight</th><th>scaler mean</th><th>scaler scale</th></tr>"
        rows = [
            f"<tr><td>{_e(n)}</td><td class='num'>{w:+.5f}</td><td class='num'>{m:.5g}</td>"
            f"<td class='num'>{s:.5g}</td></tr>"
            for n, w, m, s in zip(names, weights[1:], scaler.mean, scaler.scale, strict=True)
        ]
    return (
        f"<p>{_e(unit)} Intercept {weights[0]:+.5f}.</p>"
        f"<details><summary>{len(names)} coefficients</summary>"
        f"<table>{header}{''.join(rows)}</table></details>"
    )


def _figure_html(key: str, path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (
        f"<figure id='fig-{_e(key)}'><img src='data:image/png;base64,{data}' "
        f"alt='{_e(caption)}' data-file='{_e(path.name)}'>"
        f"<figcaption>{_e(caption)} (<code>{_e(path.name)}</code>)</figcaption></figure>"
    )


def _page(run: _Run, drawn: Mapping[str, Path], computed: Mapping[str, float]) -> str:
    meta: Mapping[str, Any] = {} if run.model is None else run.model.metadata
    run_id = meta.get("run_id") or (run.records[-1].run_id if run.records else None)
    title = f"homolr run {run_id}" if run_id else "homolr run"
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        "<p class='sub'>Privacy-preserving horizontal logistic regression: report of one run.</p>",
        "<h2>Result</h2>",
        _table(_summary(run, computed)),
    ]
    if run.model is not None:
        plan = meta.get("plan")
        parts += ["<h2>Federation</h2>", _federation(meta)]
        if isinstance(plan, dict):
            parts += ["<h2>Training plan</h2>", _table(sorted(plan.items()))]
        parts += ["<h2>Model</h2>", _model_section(run.model)]
    if drawn:
        parts.append("<h2>Figures</h2>")
        parts += [
            _figure_html(key, drawn[key], caption) for key, _, caption in FIGURES if key in drawn
        ]
    if run.notes:
        items = "".join(f"<li>{_e(n)}</li>" for n in run.notes)
        parts += ["<h2>Notes</h2>", f"<ul class='notes'>{items}</ul>"]
    parts.append("</body></html>\n")
    return "\n".join(parts)


__all__ = ["FIGURES", "PAGE_FILE", "ReportPaths", "write_report"]
