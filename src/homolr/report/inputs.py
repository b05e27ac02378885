"""Reading a run directory: ``metrics.jsonl``, ``validation_scores.csv`` and ``model.json``.

``metrics.jsonl`` holds one JSON object per evaluation, written by the PS::

    {"run_id": "3f2a...", "iteration": 10, "acc": 0.93, "loss": 0.29, "auc": 0.98,
     "seconds": 12.5, "bytes": 1048576, "workers": 2, "epsilon": 0.8}

``run_id`` and ``epsilon`` are optional; other keys are ignored (newer writers may add some).
``bytes`` counts the PS's wire traffic since the previous record and ``seconds`` the time since
training started. The file is appended to, so it may hold several runs: :func:`select_run` keeps
one. ``validation_scores.csv`` has the columns ``y,probability`` (any order, other columns
ignored): the final model's probabilities on the PS's validation set.

Malformed content raises :class:`~homolr.errors.DataError` naming file, line and field; a missing
optional file is the caller's business (:func:`homolr.report.write_report` skips what it needs).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from homolr.errors import DataError
from homolr.server.reporting import RoundRecord

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_INT_FIELDS = ("iteration", "bytes", "workers")
_FIELD_ORDER = ("iteration", "acc", "loss", "auc", "seconds", "bytes", "workers")


#: One evaluation of the global model: one line of ``metrics.jsonl`` (the type the PS writes).
RunRecord = RoundRecord


def _number(doc: dict[str, Any], field: str, where: str, *, integer: bool) -> Any:
    if field not in doc:
        raise DataError(f"{where}: field '{field}': missing")
    value = doc[field]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DataError(f"{where}: field '{field}': expected a number, got {value!r:.40}")
    if integer:
        if isinstance(value, float) and not value.is_integer():
            raise DataError(f"{where}: field '{field}': expected an integer, got {value!r}")
        if value < 0:
            raise DataError(f"{where}: field '{field}': expected >= 0, got {value!r}")
        return int(value)
    if math.isinf(value) or (math.isnan(value) and field != "auc"):
        raise DataError(f"{where}: field '{field}': expected a finite number, got {value!r}")
    return float(value)


def _record(doc: object, where: str) -> RunRecord:
    if not isinstance(doc, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(doc).__name__}")
    values = {f: _number(doc, f, where, integer=f in _INT_FIELDS) for f in _FIELD_ORDER}
    run_id = doc.get("run_id")
    if run_id is not None and not isinstance(run_id, str):
        raise DataError(f"{where}: field 'run_id': expected a string, got {run_id!r:.40}")
    epsilon = doc.get("epsilon")
    if epsilon is not None:
        epsilon = _number(doc, "epsilon", where, integer=False)
    return RunRecord(**values, run_id=run_id, epsilon=epsilon)


def load_metrics(path: Path) -> list[RunRecord]:
    """Parse ``metrics.jsonl`` (blank lines skipped), in file order.

    Raises
    ------
    DataError
        Unreadable file, invalid JSON, or a missing or invalid field (file:line named).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read metrics ({exc})") from None
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            doc = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: column {exc.colno}: not valid JSON ({exc.msg})") from None
        records.append(_record(doc, where))
    return records


def select_run(
    records: Sequence[RunRecord], run_id: str | None
) -> tuple[list[RunRecord], list[str]]:
    """Keep the records of one run, one per iteration, in iteration order.

    Parameters
    ----------
    records : sequence of RunRecord
        As read from the file.
    run_id : str or None
        The run to keep (the model's); None keeps the run of the last record.

    Returns
    -------
    records : list of RunRecord
    notes : list of str
        What was left out and why.
    """
    notes: list[str] = []
    ids = list(dict.fromkeys(r.run_id for r in records))
    chosen = run_id
    if ids == [None]:  # a writer without run ids: one run
        chosen = None
    elif run_id is not None and run_id not in ids:
        chosen = records[-1].run_id if records else None
        if records:
            notes.append(
                f"metrics.jsonl has no record of run {run_id}; showing run {chosen or '(unnamed)'}"
            )
    elif run_id is None and records:
        chosen = records[-1].run_id  # the run being appended to
    kept = [r for r in records if r.run_id == chosen]
    others = len(ids) - (1 if kept else 0)
    if others > 0:
        notes.append(f"metrics.jsonl also holds {others} other run(s), not shown")
    by_iteration = {r.iteration: r for r in kept}
    if len(by_iteration) < len(kept):
        notes.append(
            f"{len(kept) - len(by_iteration)} repeated iteration(s) (a resumed run): the last "
            "record of each is shown"
        )
    return [by_iteration[i] for i in sorted(by_iteration)], notes


def bytes_per_round(records: Sequence[RunRecord]) -> FloatArray:
    """Average bytes per round between consecutive records (each record counts since the last)."""
    previous = -1
    out = []
    for record in records:
        rounds = max(record.iteration - previous, 1)
        out.append(record.bytes / rounds)
        previous = record.iteration
    return np.asarray(out, dtype=np.float64)


def load_validation_scores(path: Path) -> tuple[IntArray, FloatArray]:
    """Parse ``validation_scores.csv``: labels ``y`` in {0, 1} and probabilities in [0, 1].

    Raises
    ------
    DataError
        Unreadable file, missing column, bad value, or no rows (file:line:column named).
    """
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle)
            header = [h.strip() for h in next(reader, [])]
            missing = [c for c in ("y", "probability") if c not in header]
            if missing:
                raise DataError(
                    f"{path}:1: missing column(s) {', '.join(missing)} (got: {', '.join(header)})"
                )
            iy, ip = header.index("y"), header.index("probability")
            labels: list[int] = []
            scores: list[float] = []
            for row in reader:
                if not row:
                    continue
                where = f"{path}:{reader.line_num}"
                labels.append(_label(row, iy, where))
                scores.append(_probability(row, ip, where))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read validation scores ({exc})") from None
    if not labels:
        raise DataError(f"{path}:2: no rows after the header")
    return np.array(labels, dtype=np.int64), np.array(scores, dtype=np.float64)


def _field(row: list[str], index: int, where: str, name: str) -> str:
    if index >= len(row):
        raise DataError(f"{where}: column '{name}': missing field")
    return row[index].strip()


def _label(row: list[str], index: int, where: str) -> int:
    text = _field(row, index, where, "y")
    if text not in ("0", "1", "0.0", "1.0"):
        raise DataError(f"{where}: column 'y': label must be 0 or 1, got {text!r}")
    return int(float(text))


def _probability(row: list[str], index: int, where: str) -> float:
    text = _field(row, index, where, "probability")
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:
        raise DataError(f"{where}: column 'probability': expected a number in [0, 1], got {text!r}")
    return value


__all__ = [
    "RunRecord",
    "bytes_per_round",
    "load_metrics",
    "load_validation_scores",
    "select_run",
]
