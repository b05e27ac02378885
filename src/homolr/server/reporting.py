"""What the PS tells its operator: evaluation lines, a progress bar, ``metrics.jsonl``.

Evaluation lines go to stdout exactly as the reference solution prints them
(``iter: 220  acc: 0.904  loss: 0.305``); the rich progress bar goes to stderr and only when stderr
is a terminal, so scripts and CI read clean stdout.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from homolr.learning import Metrics, format_eval_line


@dataclass(frozen=True)
class RoundRecord:
    """One evaluated iteration, as written to ``metrics.jsonl``.

    ``seconds`` counts from the start of training; ``bytes`` are the bytes the PS sent and received
    on the wire since the previous record.
    """

    iteration: int
    acc: float
    loss: float
    auc: float
    seconds: float
    bytes: int
    workers: int
    run_id: str | None = None
    epsilon: float | None = None


class Reporter:
    """Prints evaluation lines and keeps ``metrics.jsonl`` (when an output directory is given)."""

    def __init__(
        self, total_rounds: int, out_dir: Path | None, *, stdout: TextIO | None = None
    ) -> None:
        self._stdout = stdout if stdout is not None else sys.stdout
        self._metrics_file = None
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            self._metrics_file = (out_dir / "metrics.jsonl").open("a", encoding="utf-8")
        console = Console(stderr=True)
        self._progress = Progress(
            TextColumn("[bold]homolr PS[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            disable=not console.is_terminal,
            redirect_stdout=False,
        )
        self._task = self._progress.add_task("rounds", total=total_rounds, status="")
        self._progress.start()

    def advance(self, completed: int, status: str) -> None:
        self._progress.update(self._task, completed=completed, status=status)

    def evaluation(self, iteration: int, metrics: Metrics, record: RoundRecord) -> None:
        line = format_eval_line(iteration, metrics)
        if self._progress.disable or not self._stdout.isatty():
            print(line, file=self._stdout, flush=True)
        else:
            self._progress.console.print(line, markup=False, highlight=False)
        if self._metrics_file is not None:
            document = {k: v for k, v in asdict(record).items() if v is not None}
            self._metrics_file.write(json.dumps(document) + "\n")
            self._metrics_file.flush()

    def message(self, text: str) -> None:
        """An operator message (stderr), printed above the progress bar."""
        if self._progress.disable:
            print(f"homolr ps: {text}", file=sys.stderr, flush=True)
        else:
            self._progress.console.print(f"homolr ps: {text}", markup=False, highlight=False)

    def close(self) -> None:
        self._progress.stop()
        if self._metrics_file is not None:
            self._metrics_file.close()
            self._metrics_file = None


__all__ = ["Reporter", "RoundRecord"]
