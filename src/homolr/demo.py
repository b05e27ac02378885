"""``homolr demo``: one PS and two workers as separate OS processes on loopback.

The data is a breast_homo-style split (227 / 228 / 114 rows) built from scikit-learn's bundled copy
of the Wisconsin breast-cancer data, so the demo needs no download. The PS runs in the explicit
development mode (no SGX on this machine: ``--attestation none --insecure``). The demo shows the PS's
evaluation lines with a progress bar, then a summary next to scikit-learn's centralised baseline.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from homolr.commands import mode_defaults
from homolr.errors import HomolrError
from homolr.learning import (
    Dataset,
    LogisticModel,
    Metrics,
    demo_split,
    log_loss,
    roc_auc,
    write_csv,
)

DEV_FLAGS = ("--attestation", "none", "--insecure")


def _homolr(*args: str) -> list[str]:
    return [sys.executable, "-m", "homolr", *args]


def write_split(data_dir: Path, *, raw: bool = False) -> tuple[Path, Path, Path]:
    """The demo's guest / host / test files (standardised features, or raw ones)."""
    guest, host, test = demo_split(seed=0, scaler_fit="none" if raw else "train")
    data_dir.mkdir(parents=True, exist_ok=True)
    paths = (data_dir / "guest.csv", data_dir / "host.csv", data_dir / "test.csv")
    for dataset, path in zip((guest, host, test), paths, strict=True):
        write_csv(dataset, path)
    return paths


def _wait_port(port_file: Path, ps: subprocess.Popen[str], timeout_s: float = 60.0) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if port_file.is_file() and port_file.read_text().strip():
            return int(port_file.read_text())
        if ps.poll() is not None:
            raise HomolrError(f"the PS exited with status {ps.returncode} before listening")
        time.sleep(0.05)
    raise HomolrError(f"the PS did not start listening within {timeout_s:.0f} s")


def _sklearn_baseline(train: list[Dataset], test: Dataset) -> float:
    """scikit-learn trained centrally on the members' rows (standardised centrally)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X = np.vstack([d.X for d in train])
    y = np.concatenate([d.y for d in train])
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)).fit(X, y)
    return float(clf.score(test.X, test.y))


def run_demo(
    out: Path,
    *,
    mode: str = "encrypted",
    iters: int | None = None,
    key_bits: int = 2048,
    raw: bool = False,
) -> int:
    console = Console(stderr=True)
    out.mkdir(parents=True, exist_ok=True)
    guest_path, host_path, test_path = write_split(out / "data", raw=raw)
    port_file = out / "ps.port"
    port_file.unlink(missing_ok=True)
    (out / "metrics.jsonl").unlink(missing_ok=True)
    ps_args = [
        "ps",
        "--workers",
        "2",
        "--validate-set",
        str(test_path),
        "--port",
        "0",
        "--port-file",
        str(port_file),
        "--mode",
        mode,
        "--key-bits",
        str(key_bits),
        "--out",
        str(out),
        "--overwrite",
        *DEV_FLAGS,
    ]
    if raw:
        ps_args.append("--standardize")
    if iters is not None:
        ps_args += ["--iters", str(iters)]
    console.rule(
        f"[bold]homolr demo[/]: {mode} mode, {key_bits}-bit Paillier, 1 PS + 2 workers on loopback"
    )
    console.print(
        "[yellow]Development mode: no SGX enclave on this machine (--attestation none --insecure).[/]"
    )
    started = time.monotonic()
    with (out / "ps.log").open("w") as ps_log:
        ps = subprocess.Popen(_homolr(*ps_args), stdout=subprocess.PIPE, stderr=ps_log, text=True)
        try:
            port = _wait_port(port_file, ps)
            workers = [
                _start_worker(name, path, port, out)
                for name, path in (("guest", guest_path), ("host", host_path))
            ]
            total = iters if iters is not None else int(mode_defaults(mode)["iterations"])
            _follow(ps.stdout, console, total=total)
            codes = {"ps": ps.wait(), **{name: w.wait() for name, w in workers}}
        finally:
            for proc in [ps]:
                if proc.poll() is None:
                    proc.terminate()
    seconds = time.monotonic() - started
    if any(codes.values()):
        console.print(f"[red]a process failed: {codes}; logs in {out}[/]")
        return 1
    _summary(console, out, seconds, [guest_path, host_path], test_path)
    from homolr.report import write_report

    report = write_report(out)
    console.print(f"report: {report.html}")
    for name, path in sorted(report.figures.items()):
        console.print(f"figure ({name}): {path}")
    return 0


def _start_worker(name: str, path: Path, port: int, out: Path) -> tuple[str, subprocess.Popen[str]]:
    log = (out / f"worker-{name}.log").open("w")
    proc = subprocess.Popen(
        _homolr(
            "worker",
            "--train-set",
            str(path),
            "--id",
            name,
            "--server",
            f"127.0.0.1:{port}",
            "--state-dir",
            str(out / "state"),
            *DEV_FLAGS,
        ),
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    log.close()
    return name, proc


def _follow(stream: IO[str] | None, console: Console, total: int) -> None:
    assert stream is not None
    with Progress(
        TextColumn("training"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("rounds", total=total)
        for line in stream:
            text = line.rstrip("\n")
            console.print(text, markup=False, highlight=False)
            if text.startswith("iter:"):
                progress.update(task, completed=int(text.split()[1]) + 1)


def _metrics(model: LogisticModel, data: Dataset) -> Metrics:
    """Test metrics of the model file on raw data (the model applies its own scaler)."""
    p = model.predict_proba(data.X)[:, 1]
    return Metrics(
        accuracy=float(np.mean((p >= 0.5) == data.y)),
        loss=log_loss(data.y, p),
        auc=roc_auc(data.y, p),
    )


def _summary(console: Console, out: Path, seconds: float, train: list[Path], test: Path) -> None:
    from homolr.learning import load_csv

    model = LogisticModel.load(out / "model.json")
    test_set = load_csv(test, features=list(model.feature_names_in_))
    final = _metrics(model, test_set)
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if x.strip()]
    baseline = _sklearn_baseline([load_csv(p) for p in train], test_set)
    table = Table(title="homolr demo result")
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("rounds", str(model.metadata.get("rounds")))
    table.add_row("stopped because", str(model.metadata.get("finished")))
    table.add_row("test accuracy (homolr)", f"{final.accuracy:.3f}")
    table.add_row("test accuracy (scikit-learn, centralised)", f"{baseline:.3f}")
    table.add_row("test log loss / AUC", f"{final.loss:.3f} / {final.auc:.3f}")
    table.add_row("bytes on the PS's wire", f"{sum(r['bytes'] for r in records):,}")
    table.add_row("wall time", f"{seconds:.1f} s")
    table.add_row("model", str(out / "model.json"))
    if model.metadata.get("mode") == "encrypted":
        table.caption = (
            "encrypted mode trains with the Taylor sigmoid 0.5 + 0.25z (as the reference solution "
            "does); 'homolr demo --mode aggregate' trains with the exact sigmoid"
        )
    console.print(table)


__all__ = ["run_demo", "write_split"]
