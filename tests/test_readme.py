"""The README's commands run as written (with a short iteration count) in a scratch directory.

Every ```sh block after the quick start and every ```python block is run in order, in one scratch
directory, with this checkout's virtual environment first on PATH (what `. .venv/bin/activate`
gives a fresh clone after `make demo`). The quick start itself is `make demo` / `make test`: CI runs
`make test` (that is this suite) from a clean clone, and test_demo_runs_as_make_demo_does runs what
`make demo` runs. The only changes made to the README's commands are shorter runs: `homolr ps
--iters N` and `homolr init --iterations N` get a small N.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
SHORT = "4"
FENCE = re.compile(r"^```(sh|python)\n(.*?)^```", re.M | re.S)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def blocks() -> list[tuple[str, str]]:
    return [(kind, body) for kind, body in FENCE.findall(README.read_text())]


def shorten(command: str) -> str:
    """A shorter run of the same command: fewer iterations, nothing else."""
    if re.search(r"\bhomolr ps\b", command) and "--federation" not in command:
        if "--iters" in command:
            return re.sub(r"--iters \d+", f"--iters {SHORT}", command)
        return command.replace("homolr ps ", f"homolr ps --iters {SHORT} ", 1)
    if re.search(r"\bhomolr init\b", command):
        return command.replace("homolr init ", f"homolr init --iterations {SHORT} ", 1)
    return command


def test_the_quick_start_is_make_demo_and_make_test() -> None:
    kind, first = blocks()[0]
    commands = [line.split("#")[0].strip() for line in first.splitlines() if line.strip()]
    assert (kind, commands) == ("sh", ["make demo", "make test"])
    assert "make test" in (REPO / ".ci" / "run").read_text()


def test_demo_runs_as_make_demo_does(tmp_path: Path) -> None:
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^demo:.*\n\t.*\$\(BIN\)/homolr demo\b", makefile, re.M)
    done = subprocess.run(
        [sys.executable, "-m", "homolr", "demo", "--iters", SHORT, "--out", str(tmp_path / "d")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "homolr demo result" in done.stderr and "report:" in done.stderr
    assert (tmp_path / "d" / "report" / "report.html").is_file()


def test_every_readme_command_runs_as_written(tmp_path: Path) -> None:
    runnable = blocks()[1:]
    assert len(runnable) >= 3
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONUNBUFFERED": "1",
    }
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parent.parent)
    for index, (kind, body) in enumerate(runnable, start=1):
        if kind == "python":
            argv = [sys.executable, "-c", body]
        else:
            script = "set -euo pipefail\n" + "\n".join(shorten(line) for line in body.splitlines())
            argv = ["bash", "-c", script]
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env
        )
        assert done.returncode == 0, (
            f"README block {index} ({kind}) failed with {done.returncode}:\n{body}\n"
            f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"
        )
        assert "Traceback" not in done.stderr, done.stderr
