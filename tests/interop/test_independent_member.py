"""A member written from the protocol documents alone trains to homolr's own printed lines.

``member.py`` was written from ``proto/homolr/v2/homolr.proto`` and ``docs/protocol.md`` without
reading ``src/homolr``; it runs here with ``import homolr`` made impossible. Every test starts a
real ``homolr ps`` (development mode) and compares what it prints, and the model it writes, with
the same plan trained by two ``homolr worker`` processes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.harness import (
    DEV,
    REFERENCE_FLAGS,
    Cluster,
    Proc,
    eval_lines,
    reference_files,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SHARED = Path(os.environ.get("HOMOLR_SHARED_DATA", "/work/shared/data"))
GUEST, HOST, TEST = reference_files(SHARED)
MEMBER = Path(__file__).with_name("member.py")
#: Runs member.py as __main__ in an interpreter where ``import homolr`` raises ImportError.
WITHOUT_HOMOLR = (
    "import runpy, sys; sys.modules['homolr'] = None; "
    "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
)
ITERATIONS = ("--iters", "20", "--eval-every", "5")
TIMEOUT = 120.0

if not TEST.exists():
    pytest.skip(f"reference data not found in {SHARED}", allow_module_level=True)


@dataclass(frozen=True)
class Result:
    """What a run printed and the weights it wrote."""

    lines: list[str]
    weights: tuple[object, object]


def _ps_args(run: Path, *extra: str) -> tuple[str, ...]:
    return ("--workers", "2", "--validate-set", str(TEST), "--out", str(run), *ITERATIONS,
            *REFERENCE_FLAGS, *extra)  # fmt: skip


def _weights(run: Path) -> tuple[object, object]:
    model = json.loads((run / "model.json").read_text())
    return model["coef"], model["intercept"]


def start_member(cluster: Cluster, member_id: str, train_set: Path, port: int = 0) -> Proc:
    """Start the independent member as its own OS process (``homolr`` not importable)."""
    name = f"member-{member_id}"
    log = cluster.tmp / f"{name}.log"
    args = ["--train-set", str(train_set), "--id", member_id,
            "--server", f"127.0.0.1:{port or cluster.port}",
            "--state-dir", str(cluster.tmp / f"state-{member_id}")]  # fmt: skip
    with log.with_suffix(".out").open("w") as out, log.open("w") as err:
        popen = subprocess.Popen(
            [sys.executable, "-c", WITHOUT_HOMOLR, str(MEMBER), *args],
            stdout=out,
            stderr=err,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    proc = Proc(name, popen, log)
    cluster.procs.append(proc)
    return proc


def _assert_exit(proc: Proc, status: int) -> None:
    assert proc.wait(TIMEOUT) == status, f"{proc.name} exited otherwise:\n{proc.output()}"


def _mark(cluster: Cluster, member_id: str) -> int:
    """The independent member's durable mark (its own replay state, section 8.4), -1 before."""
    files = list((cluster.tmp / f"state-{member_id}").glob("replay-*.json"))
    if not files:
        return -1
    try:
        return int(json.loads(files[0].read_text())["mark"])
    except (ValueError, KeyError):  # caught between write and rename: cannot happen, but be safe
        return -1


def _wait_stable_mark(cluster: Cluster, member_id: str, hold: float = 2.0) -> int:
    """Wait until the mark stops moving (the round is open, waiting for the stopped member)."""
    deadline, mark, since = time.monotonic() + TIMEOUT, _mark(cluster, member_id), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = _mark(cluster, member_id)
        if now != mark:
            mark, since = now, time.monotonic()
        elif time.monotonic() - since >= hold:
            return mark
    raise AssertionError("the mark kept moving")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    yield c
    for proc in c.procs:  # a test may leave a member stopped by SIGSTOP
        if proc.popen.poll() is None:
            proc.kill(signal.SIGCONT)
    c.stop_all()


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Result]:
    """The plan trained by homolr's own PS and two homolr workers."""
    c = Cluster(tmp_path_factory.mktemp("reference"))
    try:
        run = c.tmp / "run"
        ps = c.start_ps(*_ps_args(run))
        workers = [c.start_worker("guest", GUEST), c.start_worker("host", HOST)]
        for proc in (*workers, ps):
            _assert_exit(proc, 0)
        lines = eval_lines(ps.stdout())
        assert [line.split()[1] for line in lines] == ["0", "5", "10", "15", "19"], lines
        yield Result(lines, _weights(run))
    finally:
        c.stop_all()


def test_independent_member_trains_with_a_homolr_worker(
    cluster: Cluster, reference: Result
) -> None:
    run = cluster.tmp / "run"
    ps = cluster.start_ps(*_ps_args(run))
    guest = cluster.start_worker("guest", GUEST)
    host = start_member(cluster, "host", HOST)
    for proc in (host, guest, ps):
        _assert_exit(proc, 0)
    assert eval_lines(ps.stdout()) == reference.lines
    # Encrypted mode is deterministic (section 7.3): the same uploads give the same model, bit for bit.
    assert _weights(run) == reference.weights
    assert "training finished (OUTCOME_COMPLETED)" in host.output()


def test_independent_member_as_both_members(cluster: Cluster, reference: Result) -> None:
    run = cluster.tmp / "run"
    ps = cluster.start_ps(*_ps_args(run))
    members = [start_member(cluster, "guest", GUEST), start_member(cluster, "host", HOST)]
    for proc in (*members, ps):
        _assert_exit(proc, 0)
    assert eval_lines(ps.stdout()) == reference.lines
    assert _weights(run) == reference.weights


def test_independent_member_resends_its_stored_upload_to_a_resumed_ps(
    cluster: Cluster, reference: Result
) -> None:
    """Section 8.4: the PS dies while a round holds the member's upload; the resumed PS asks for
    that round again, and the member sends the stored bytes, not a second contribution."""
    run, sealed = cluster.tmp / "run", cluster.tmp / "sealed"
    ps = cluster.start_ps(*_ps_args(run, "--sealed-dir", str(sealed)))
    guest = cluster.start_worker("guest", GUEST)
    host = start_member(cluster, "host", HOST)
    wait_for(lambda: _mark(cluster, "host") >= 5, TIMEOUT, "round 5 at the independent member")
    guest.kill(signal.SIGSTOP)
    open_round = _wait_stable_mark(cluster, "host")
    first = eval_lines(ps.stdout())
    ps.kill()
    ps.popen.wait(10)

    resumed = cluster.start(
        "ps-resumed", "ps", "--port", str(cluster.port), "--port-file", str(cluster.tmp / "ps2"),
        *DEV, *_ps_args(run, "--sealed-dir", str(sealed), "--resume"),
    )  # fmt: skip
    guest.kill(signal.SIGCONT)
    for proc in (host, guest, resumed):
        _assert_exit(proc, 0)
    assert f"round {open_round}: resending the stored upload" in host.output()
    assert first + eval_lines(resumed.stdout()) == reference.lines
    assert _weights(run) == reference.weights


def test_independent_member_refuses_a_rolled_back_ps(cluster: Cluster) -> None:
    """Section 8.4: a PS restored from an older checkpoint asks for a round below the member's
    mark; the member stops with status 8 and its durable record is untouched."""
    run, sealed, old = cluster.tmp / "run", cluster.tmp / "sealed", cluster.tmp / "sealed-old"
    ps = cluster.start_ps(*_ps_args(run, "--sealed-dir", str(sealed)))
    guest = cluster.start_worker("guest", GUEST)
    host = start_member(cluster, "host", HOST)
    wait_for(lambda: _mark(cluster, "host") >= 3, TIMEOUT, "round 3 at the independent member")
    ps.kill(signal.SIGSTOP)  # copy a consistent checkpoint
    shutil.copytree(sealed, old)
    ps.kill(signal.SIGCONT)
    wait_for(lambda: _mark(cluster, "host") >= 10, TIMEOUT, "round 10 at the independent member")
    guest.kill(signal.SIGSTOP)
    mark = _wait_stable_mark(cluster, "host")
    state = next((cluster.tmp / "state-host").glob("replay-*.json")).read_bytes()
    ps.kill()
    ps.popen.wait(10)
    shutil.rmtree(sealed)
    shutil.copytree(old, sealed)

    cluster.start(
        "ps-rolled-back", "ps", "--port", str(cluster.port), "--port-file",
        str(cluster.tmp / "ps2"),
        *DEV, *_ps_args(run, "--sealed-dir", str(sealed), "--resume"),
    )  # fmt: skip
    guest.kill(signal.SIGCONT)  # a resumed PS publishes once every member is back (section 8.2)
    _assert_exit(host, 8)
    _assert_exit(guest, 8)  # homolr's own worker draws the same conclusion
    assert f"below mark {mark}" in host.output()
    assert next((cluster.tmp / "state-host").glob("replay-*.json")).read_bytes() == state
