"""homolr.report: plots and a one-page HTML report of a training run.

:func:`write_report` reads a run directory (``metrics.jsonl``, ``model.json``,
``validation_scores.csv``; each optional) and writes PNG figures and a self-contained
``report.html`` into ``<run_dir>/report``.
"""

from homolr.report.inputs import (
    RunRecord,
    bytes_per_round,
    load_metrics,
    load_validation_scores,
    select_run,
)
from homolr.report.page import FIGURES, PAGE_FILE, ReportPaths, write_report

__all__ = [
    "FIGURES",
    "PAGE_FILE",
    "ReportPaths",
    "RunRecord",
    "bytes_per_round",
    "load_metrics",
    "load_validation_scores",
    "select_run",
    "write_report",
]
