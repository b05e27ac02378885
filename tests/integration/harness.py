"""Start real homolr processes (PS, workers) on loopback and watch them.

Every process is a separate OS process started with this interpreter (``python -m homolr``); the
harness never imports the server into the test process. Every wait is bounded.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

DEV = ("--attestation", "none", "--insecure")
#: The reference solution's hyper-parameters (its iteration count aside).
REFERENCE_FLAGS = (
    "--learning-rate",
    "0.15",
    "--alpha",
    "0.01",
    "--init-weight",
    "1",
    "--equal-weights",
)


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[str]
    log: Path

    def wait(self, timeout: float) -> int:
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(5)
            raise AssertionError(
                f"{self.name} did not exit within {timeout} s; log:\n{self.output()}"
            ) from None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stdout(self) -> str:
        path = self.log.with_suffix(".out")
        return path.read_text(errors="replace") if path.exists() else ""

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.popen.poll() is None:
            os.kill(self.popen.pid, sig)


@dataclass
class Cluster:
    tmp: Path
    procs: list[Proc] = field(default_factory=list)
    port: int = 0

    def start(self, name: str, *args: str) -> Proc:
        log = self.tmp / f"{name}.log"
        out = log.with_suffix(".out")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with out.open("w") as stdout, log.open("w") as stderr:
            popen = subprocess.Popen(
                [sys.executable, "-m", "homolr", *args],
                stdout=stdout,
                stderr=stderr,
                text=True,
                env=env,
            )
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def start_ps(self, *args: str, timeout: float = 60.0, dev: bool = True) -> Proc:
        port_file = self.tmp / "ps.port"
        port_file.unlink(missing_ok=True)
        extra = DEV if dev else ()
        ps = self.start("ps", "ps", "--port", "0", "--port-file", str(port_file), *extra, *args)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if port_file.is_file() and port_file.read_text().strip():
                self.port = int(port_file.read_text())
                return ps
            if ps.popen.poll() is not None:
                raise AssertionError(f"PS exited with {ps.popen.returncode}:\n{ps.output()}")
            time.sleep(0.05)
        raise AssertionError(f"PS did not listen within {timeout} s:\n{ps.output()}")

    def start_worker(
        self, worker_id: str, train_set: Path, *args: str, dev: bool = True, name: str = ""
    ) -> Proc:
        extra = DEV if dev else ()
        return self.start(
            name or f"worker-{worker_id}",
            "worker",
            "--train-set",
            str(train_set),
            "--id",
            worker_id,
            "--server",
            f"127.0.0.1:{self.port}",
            "--state-dir",
            str(self.tmp / f"state-{worker_id}"),
            *extra,
            *args,
        )

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.popen.poll() is None:
                proc.popen.kill()
                proc.popen.wait(5)


#: The reference data's feature names, the plan's wire order.
REFERENCE_FEATURES = tuple(f"x{i}" for i in range(30))


def member_identities(directory: Path, members: Sequence[str]) -> dict[str, tuple[Path, Path]]:
    """Each member's own key pair and self-signed certificate, as ``homolr keygen`` makes them:
    ``{member: (certificate, key)}``."""
    from homolr.enclave.identity import generate_member_identity, write_member_identity

    directory.mkdir(parents=True, exist_ok=True)
    out = {}
    for member in members:
        cert, key = directory / f"member-{member}.pem", directory / f"member-{member}.key"
        if not cert.exists():
            write_member_identity(generate_member_identity(member), directory, member)
        out[member] = (cert, key)
    return out


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value)


def write_federation(
    path: Path,
    certificates: Mapping[str, Path],
    *,
    name: str = "integration",
    plan: Mapping[str, object] | None = None,
    participation: Mapping[str, object] | None = None,
    deadlines: Mapping[str, object] | None = None,
    privacy: Mapping[str, object] | None = None,
    features: Sequence[str] = REFERENCE_FEATURES,
) -> Path:
    """A federation file listing ``certificates`` (member -> PEM file), with the given sections."""
    from homolr.federation import spki_fingerprint

    lines = ["version = 1", f"name = {_toml(name)}", ""]
    for section, values in (
        ("plan", plan),
        ("participation", participation),
        ("deadlines", deadlines),
        ("privacy", privacy),
    ):
        if values:
            lines.append(f"[{section}]")
            lines += [f"{k} = {_toml(v)}" for k, v in values.items()]
            lines.append("")
    lines += ["[validation]", f"features = {_toml(tuple(features))}", ""]
    for member, cert in certificates.items():
        pem = cert.read_text()
        lines += [
            "[[members]]",
            f"id = {_toml(member)}",
            f"fingerprint = {_toml(spki_fingerprint(pem))}",
            f'certificate = """\n{pem.strip()}\n"""',
            "",
        ]
    path.write_text("\n".join(lines))
    return path


def reference_files(shared: Path) -> tuple[Path, Path, Path]:
    """guest, host and test files of the reference data in ``shared``."""
    guest, host, test = (shared / f"breast_homo_{n}.csv" for n in ("guest", "host", "test"))
    return guest, host, test


def eval_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("iter:")]


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``predicate`` every 0.1 s until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


__all__ = [
    "DEV",
    "REFERENCE_FEATURES",
    "REFERENCE_FLAGS",
    "Cluster",
    "Proc",
    "eval_lines",
    "member_identities",
    "reference_files",
    "wait_for",
    "write_federation",
]
