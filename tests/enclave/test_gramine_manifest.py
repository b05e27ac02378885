"""Render deploy/gramine/homolr-ps.manifest.template like gramine-manifest does, and check it.

There is no SGX and no Gramine on a development machine, so this test rebuilds what
``gramine-manifest`` does (a jinja2 environment with ``StrictUndefined`` and the helpers
``gramine``, ``python``, ``env`` and ``ldd``), with the ``gramine`` paths replaced by
the locations of Ubuntu's gramine package and the ``python`` helpers pointing at THIS
machine's virtual environment. The ``-D`` values are the ones the Makefile passes
(``make -n`` prints them), so the test renders what operators get.

Two processes are started the way the manifest starts the PS (same interpreter, same flags,
same ``loader.env``, same stack limit):

* a probe that imports every module of homolr and the libraries the PS uses: every file it
  loaded must be trusted and mounted;
* a real ``homolr ps`` with the manifest's own command line (its in-enclave paths mapped to the
  host directories through ``fs.mounts``, attestation simulated), trained by two real members
  over mutual TLS: its threads (sampled from /proc during the run) must match
  :data:`homolr.server.app.ENCLAVE_THREADS` plus gRPC's, and fit ``sgx.max_threads``; its memory
  peak must fit ``sgx.enclave_size``.
"""

from __future__ import annotations

import argparse
import collections
import csv
import json
import os
import random
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta
import pytest

from homolr.cli import build_parser
from homolr.commands import PLAN_OPTIONS
from homolr.crypto.keys import CONSTANT_TIME_ENV
from homolr.crypto.parallel import WORKERS_ENV
from homolr.server.app import ENCLAVE_THREADS, WORK_THREADS
from homolr.server.memory import MMAP_THRESHOLD_BYTES
from tests.integration.harness import member_identities, write_federation

REPO = Path(__file__).resolve().parents[2]
GRAMINE_DIR = REPO / "deploy" / "gramine"
TEMPLATE = GRAMINE_DIR / "homolr-ps.manifest.template"

VENV = Path(sys.prefix)
ENTRYPOINT = VENV / "bin" / "python3"
CONSOLE_SCRIPT = VENV / "bin" / "homolr"
ARCH_LIBDIR = "/lib/x86_64-linux-gnu"
# Where Ubuntu's gramine package installs (meson PKGLIBDIR): stand-ins, never opened here.
PKGLIBDIR = Path("/usr/lib/x86_64-linux-gnu/gramine")

FEDERATION, SEALED, OUT = "/federation", "/sealed", "/out"
FEDERATION_FILE = f"{FEDERATION}/federation.toml"
VALIDATION_FILE = f"{FEDERATION}/validate.csv"

# Sizing model (deploy/gramine/README.md "Sizing"): measured footprint plus what a run here
# cannot show.
GRAMINE_OVERHEAD = 128 * 2**20  # PAL + LibOS code and heap, per-slot TCS/SSA/PAL stacks, manifest
WORKLOAD_ALLOWANCE = 64 * 2**20  # default model: 31 weights x members ciphertexts, key, tables
MEMORY_HEADROOM = 1.25
# Threads (README "Sizing"): what the PS runs (ENCLAVE_THREADS), what gRPC adds, what Gramine adds.
GRPC_AIO_POLLER = 1  # grpc.aio's completion-queue poller: a Python thread, started by aio.server
GRPC_EVENT_ENGINE_MAX = 16  # PosixEventEngine pool: Clamp(host cores, 4, 16) reserve threads
GRPC_CORE_THREADS = ("event_engine", "grpc_global_tim", "lifeguard")  # comm names (15 chars)
RICH_REFRESH = 1  # rich's live-refresh thread, when stderr is a terminal
GRAMINE_THREADS = 3  # IPC thread, async thread, one transient TLS-handshake thread
THREAD_HEADROOM = 1.5

pytestmark = [
    pytest.mark.skipif(sys.prefix == sys.base_prefix, reason="needs the project's virtualenv"),
    pytest.mark.skipif(not Path(ARCH_LIBDIR).is_dir(), reason="x86_64 Linux layout only"),
    pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make"),
]


# --------------------------------------------------------------------------------------
# gramine-manifest stand-ins (same algorithms as graminelibos' jinja environment)


class Runtimedir:
    """``gramine.runtimedir``: callable (``runtimedir('glibc')``) and printable."""

    def __call__(self, libc: str = "glibc") -> Path:
        return PKGLIBDIR / "runtime" / libc

    def __str__(self) -> str:
        return str(self())


def get_sys_path(interpreter: str | Path, include_nonexisting: bool = False) -> Iterator[Path]:
    """``python.get_sys_path``: the interpreter's sys.path, existing entries only."""
    code = "import sys; print('\\0'.join(p for p in sys.path if p), end='')"
    out = subprocess.check_output([os.fspath(interpreter), "-c", code])
    for raw in out.split(b"\0"):
        path = Path(os.fsdecode(raw))
        if include_nonexisting or path.exists():
            yield path


def ldd(*binaries: str | Path) -> list[str]:
    """``ldd``: absolute paths of the shared libraries the binaries link (no vdso)."""
    found: set[str] = set()
    out = subprocess.check_output(["ldd", *(os.fspath(b) for b in binaries)], text=True)
    for line in out.splitlines():
        words = line.split()
        if len(words) > 2 and words[1] == "=>" and words[2].startswith("/"):
            found.add(words[2])
        elif len(words) > 1 and words[0].startswith("/") and words[1].startswith("/"):
            found.add(words[0])
    return sorted(found)


def make_environment() -> jinja2.Environment:
    """The jinja2 environment of gramine-manifest, with this machine's interpreter."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.globals["gramine"] = {
        "libos": PKGLIBDIR / "libsysdb.so",
        "pkglibdir": PKGLIBDIR,
        "runtimedir": Runtimedir(),
    }
    env.globals["python"] = {"get_sys_path": get_sys_path}
    env.globals["env"] = os.environ
    env.globals["ldd"] = ldd
    return env


def render(defines: Mapping[str, str]) -> str:
    """Render the template with ``-D`` values, like ``gramine-manifest -Dk=v ...``."""
    return make_environment().from_string(TEMPLATE.read_text()).render(**defines)


def makefile_defines(debug: bool, **overrides: str) -> dict[str, str]:
    """The ``-D`` values the Makefile passes to gramine-manifest (from ``make -n``)."""
    args = ["make", "-n", "-s", "-C", str(GRAMINE_DIR), "manifest"]
    args += [f"{key}={value}" for key, value in overrides.items()]
    if debug:
        args.append("DEBUG=1")
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    command = next(c for c in out.replace("\\\n", " ").splitlines() if "gramine-manifest" in c)
    pairs = (word[2:].split("=", 1) for word in shlex.split(command) if word.startswith("-D"))
    return dict((key, value) for key, value in pairs)


# --------------------------------------------------------------------------------------
# reading a manifest


def flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted keys to leaf values: {'sgx': {'debug': True}} -> {'sgx.debug': True}."""
    flat: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def uri_path(uri: str) -> str:
    """``file:/x/y/`` -> ``/x/y/``."""
    assert uri.startswith("file:"), f"not a file: URI: {uri!r}"
    return uri[len("file:") :]


def size_in_bytes(size: str) -> int:
    """Gramine size strings: '256M', '1G', '4096'."""
    match = re.fullmatch(r"(\d+)([KMG]?)", size)
    assert match, f"bad size {size!r}"
    return int(match[1]) * {"": 1, "K": 2**10, "M": 2**20, "G": 2**30}[match[2]]


def argv_option(argv: Sequence[str], option: str) -> str | None:
    """Value of ``--option VALUE`` in argv, or None."""
    return argv[argv.index(option) + 1] if option in argv else None


@dataclass(frozen=True)
class Layout:
    """What the enclave can open: trusted host paths and (path, host uri, type) mounts."""

    trusted: tuple[str, ...]
    mounts: tuple[tuple[str, str, str], ...]

    @classmethod
    def of(cls, manifest: Mapping[str, Any]) -> Layout:
        trusted = tuple(uri_path(t) for t in manifest["sgx"]["trusted_files"])
        mounts = tuple(
            (m["path"], uri_path(m["uri"]) if "uri" in m else "", m.get("type", "chroot"))
            for m in manifest["fs"]["mounts"]
        )
        return cls(trusted, mounts)


def covered(path: str, entries: Sequence[str]) -> bool:
    """Whether a file path equals a file entry or lies under a directory entry (``.../``)."""
    return any(path == e or (e.endswith("/") and path.startswith(e)) for e in entries)


def visible_as(path: str, mounts: Sequence[tuple[str, str, str]]) -> str | None:
    """Host file an in-enclave path resolves to through its (longest) chroot mount."""
    best = max(
        (m for m in mounts if path == m[0] or path.startswith(m[0].rstrip("/") + "/")),
        key=lambda m: len(m[0]),
        default=None,
    )
    if best is None or best[2] != "chroot":
        return None
    return best[1] + path[len(best[0]) :]


def unreachable(files: Sequence[str], layout: Layout) -> list[str]:
    """Files opened under their own path that are not trusted, or not mounted as themselves."""
    bad = []
    for path in files:
        host = visible_as(path, layout.mounts)
        ok = host is not None and os.path.exists(host) and os.path.samefile(host, path)
        if not (ok and covered(path, layout.trusted)):
            bad.append(path)
    return bad


def unreachable_mapped(files: Sequence[str], layout: Layout) -> list[str]:
    """Same for shared objects from /proc/self/maps, which shows symlink-resolved paths."""

    def real(entry: str) -> str:
        return os.path.realpath(entry) + ("/" if entry.endswith("/") else "")

    trusted = [real(t) for t in layout.trusted]
    hosts = [real(host.rstrip("/") + "/") for _, host, kind in layout.mounts if kind == "chroot"]
    hosts += [os.path.realpath(host) for _, host, kind in layout.mounts if kind == "chroot"]
    return [f for f in files if not (covered(f, trusted) and covered(f, hosts))]


def host_path(path: str, mounts: Sequence[tuple[str, str, str]]) -> str:
    """Host file behind an in-enclave path, through its (longest) chroot or encrypted mount."""
    best = max(
        (m for m in mounts if path == m[0] or path.startswith(m[0].rstrip("/") + "/")),
        key=lambda m: len(m[0]),
        default=None,
    )
    assert best is not None and best[2] in ("chroot", "encrypted"), f"{path}: not on a host mount"
    return best[1] + path[len(best[0]) :]


def ps_arguments(manifest: Mapping[str, Any]) -> list[str]:
    """The arguments after ``homolr ps`` in ``loader.argv``."""
    argv: list[str] = manifest["loader"]["argv"]
    assert argv[argv.index(str(CONSOLE_SCRIPT)) + 1] == "ps"
    return argv[argv.index(str(CONSOLE_SCRIPT)) + 2 :]


def launch_prefix(manifest: Mapping[str, Any]) -> tuple[list[str], dict[str, str]]:
    """Command prefix (stack limit, interpreter and its flags) and environment of the manifest.

    The library search path is the manifest's without its first entry, ``/lib``: inside the
    enclave that is Gramine's runtime (its glibc), here it would be the host's. The rest makes
    the host's loader find every library where the enclave's does, instead of in
    /etc/ld.so.cache (which the enclave does not have, and which a sample of /proc/<pid>/maps
    would otherwise catch mapped whenever it lands inside one of the start's dlopen calls).
    """
    argv = manifest["loader"]["argv"]
    flags = argv[1 : argv.index(str(CONSOLE_SCRIPT))]
    env = dict(manifest["loader"]["env"])
    search = env["LD_LIBRARY_PATH"].split(":")
    assert search[0] == "/lib", search  # Gramine's runtime, mounted at /lib
    env["LD_LIBRARY_PATH"] = ":".join(search[1:])
    stack_kib = size_in_bytes(manifest["sys"]["stack"]["size"]) // 1024
    command = ["/bin/sh", "-c", 'ulimit -s "$0" && exec "$@"', str(stack_kib), argv[0], *flags]
    return command, env


def plan_option_strings() -> set[str]:
    """Every option string of ``homolr ps``'s training-plan options, aliases included."""
    parser = build_parser()
    [subparsers] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    ps = subparsers.choices["ps"]
    return {s for a in ps._actions if a.dest in PLAN_OPTIONS for s in a.option_strings}


# --------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def host_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Host directories behind /federation, /sealed and /out (empty: nothing is measured)."""
    root = tmp_path_factory.mktemp("gramine")
    dirs = {name: root / name for name in ("federation", "sealed", "out")}
    for path in dirs.values():
        path.mkdir()
    return {name: str(path) for name, path in dirs.items()}


def _defines(debug: bool, host_dirs: Mapping[str, str]) -> dict[str, str]:
    return makefile_defines(
        debug,
        VENV=str(VENV),
        FEDERATION_DIR=host_dirs["federation"],
        SEALED_DIR=host_dirs["sealed"],
        OUT_DIR=host_dirs["out"],
    )


@pytest.fixture(scope="module")
def production(host_dirs: Mapping[str, str]) -> dict[str, Any]:
    import tomllib

    return tomllib.loads(render(_defines(False, host_dirs)))


@pytest.fixture(scope="module")
def debug_manifest(host_dirs: Mapping[str, str]) -> dict[str, Any]:
    import tomllib

    return tomllib.loads(render(_defines(True, host_dirs)))


PROBE = r"""
import importlib, importlib.util, json, os, pkgutil, sys

report = {"strict": [], "failed": []}
for name in ("homolr.cli", "homolr.server.app"):
    try:
        spec = importlib.util.find_spec(name)
    except ModuleNotFoundError:
        spec = None
    if spec is not None:
        importlib.import_module(name)
        report["strict"].append(name)
for name in ("numpy", "gmpy2", "grpc", "grpc.aio", "google.protobuf", "sklearn.metrics",
             "rich.console", "cryptography.x509", "cryptography.hazmat.primitives.asymmetric.ec",
             "dp_accounting"):
    importlib.import_module(name)
import homolr
for info in pkgutil.walk_packages(homolr.__path__, "homolr.", onerror=report["failed"].append):
    if info.name.endswith("__main__"):
        continue
    try:
        importlib.import_module(info.name)
    except (Exception, SystemExit) as exc:
        report["failed"].append(f"{info.name}: {type(exc).__name__}: {exc}")
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
maps = sorted({line.split(None, 5)[5].strip() for line in open("/proc/self/maps")
               if len(line.split(None, 5)) == 6})
report.update(
    modules=sorted({m.__file__ for m in list(sys.modules.values())
                    if isinstance(getattr(m, "__file__", None), str)}),
    maps=maps, vm_peak_kib=int(status["VmPeak"].split()[0]),
    exe=os.path.realpath("/proc/self/exe"))
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def probe(production: Mapping[str, Any]) -> dict[str, Any]:
    """Import everything the PS may import, started as the manifest would start it."""
    command, env = launch_prefix(production)
    done = subprocess.run(
        [*command, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"probe failed:\n{done.stderr[-3000:]}"
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


@dataclass(frozen=True)
class PsRun:
    """What a real PS showed while it trained: exit status, logs, /proc samples."""

    returncode: int
    log: str
    threads: dict[str, int]  # thread name (comm) -> count, at the sample with the most threads
    vm_peak_kib: int
    maps: tuple[str, ...]  # files mapped by the PS at any sample
    out_dir: Path


FEATURES = ("f0", "f1", "f2", "f3")


def _write_csv(path: Path, rows: int, rng: random.Random) -> None:
    with path.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["id", "y", *FEATURES])
        for i in range(rows):
            x = [rng.uniform(-1.0, 1.0) for _ in FEATURES]
            out.writerow([i, int(x[0] - 0.5 * x[1] > 0), *(f"{v:.5f}" for v in x)])


def _sample(pid: int, exe: str, threads: collections.Counter[str], maps: set[str]) -> int:
    """Thread names and mapped files of ``pid`` once it runs ``exe`` (not the shell that sets
    the stack limit); returns VmPeak (KiB), 0 if it is gone or not yet ``exe``."""
    try:
        if os.path.realpath(f"/proc/{pid}/exe") != exe:
            return 0
        names = [
            Path(f"/proc/{pid}/task/{task}/comm").read_text().strip()
            for task in os.listdir(f"/proc/{pid}/task")
        ]
        status = Path(f"/proc/{pid}/status").read_text()
        lines = Path(f"/proc/{pid}/maps").read_text().splitlines()
    except OSError:
        return 0
    if len(names) > sum(threads.values()):
        threads.clear()
        threads.update(names)
    maps.update(w[5] for w in (line.split(None, 5) for line in lines) if len(w) == 6)
    peak = re.search(r"^VmPeak:\s+(\d+)", status, flags=re.M)
    return int(peak[1]) if peak else 0


@pytest.fixture(scope="module")
def ps_run(
    production: Mapping[str, Any],
    host_dirs: Mapping[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> PsRun:
    """A real PS started with the manifest's command line and environment, trained by two
    members. In-enclave paths are mapped to the host directories through ``fs.mounts``; only
    what needs SGX changes: ``--attestation simulated`` (a synthetic quote with the same report
    data), loopback and any free port."""
    work = tmp_path_factory.mktemp("ps-run")
    members = ("clinic-a", "clinic-b")
    identities = member_identities(work / "identities", members)
    fed_text = write_federation(
        work / "federation.toml",
        {m: identities[m][0] for m in members},
        name="deploy-check",
        plan={"iterations": 6, "eval_every": 2},
        features=FEATURES,
    ).read_text()
    layout = Layout.of(production)
    args = ps_arguments(production)
    host = {arg: host_path(arg, layout.mounts) for arg in args if arg.startswith("/")}
    Path(host[FEDERATION_FILE]).write_text(fed_text)
    rng = random.Random(20261203)
    _write_csv(Path(host[VALIDATION_FILE]), 80, rng)
    port_file = work / "ps.port"
    args = [host.get(a, a) for a in args]
    args[args.index("--host") + 1] = "127.0.0.1"
    args[args.index("--port") + 1] = "0"
    args[args.index("--attestation") + 1] = "simulated"
    mrenclave = "5a" * 32
    command, env = launch_prefix(production)
    interpreter = os.path.realpath(production["libos"]["entrypoint"])
    log_path = work / "ps.log"
    with log_path.open("w") as log:
        ps = subprocess.Popen(
            [*command, str(CONSOLE_SCRIPT), "ps", *args, "--port-file", str(port_file),
             "--mrenclave", mrenclave],
            env=env, stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
    workers: list[subprocess.Popen[bytes]] = []
    threads: collections.Counter[str] = collections.Counter()
    maps: set[str] = set()
    vm_peak = 0
    try:
        deadline = time.monotonic() + 60
        while not (port_file.is_file() and port_file.read_text().strip()):
            assert ps.poll() is None, f"PS exited {ps.returncode}:\n{log_path.read_text()}"
            assert time.monotonic() < deadline, f"PS did not listen:\n{log_path.read_text()}"
            vm_peak = max(vm_peak, _sample(ps.pid, interpreter, threads, maps))
            time.sleep(0.02)
        for member in members:
            own_copy = work / f"{member}.toml"
            own_copy.write_text(fed_text)
            train = work / f"{member}.csv"
            _write_csv(train, 60, rng)
            cert, key = identities[member]
            options = {
                "--federation": own_copy,
                "--train-set": train,
                "--id": member,
                "--cert": cert,
                "--key": key,
                "--server": f"127.0.0.1:{port_file.read_text().strip()}",
                "--state-dir": work / f"state-{member}",
                "--attestation": "simulated",
                "--mrenclave": mrenclave,
            }
            command_line = [sys.executable, "-m", "homolr", "worker"]
            command_line += [str(word) for pair in options.items() for word in pair]
            workers.append(
                subprocess.Popen(command_line, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
        deadline = time.monotonic() + 120
        while ps.poll() is None and time.monotonic() < deadline:
            vm_peak = max(vm_peak, _sample(ps.pid, interpreter, threads, maps))
            time.sleep(0.005)
    finally:
        for proc in (ps, *workers):
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
    return PsRun(
        ps.returncode,
        log_path.read_text(),
        dict(threads),
        vm_peak,
        tuple(sorted(maps)),
        Path(host[OUT]),
    )


# --------------------------------------------------------------------------------------
# the Makefile and the template agree


def test_makefile_passes_exactly_the_template_variables(host_dirs: Mapping[str, str]) -> None:
    env = make_environment()
    needed = jinja2.meta.find_undeclared_variables(env.parse(TEMPLATE.read_text()))
    needed -= set(env.globals) | {"debug_must_be_0_or_1"}  # the template's deliberate trap
    passed = set(_defines(False, host_dirs))
    assert needed == passed, f"template needs {sorted(needed)}, Makefile passes {sorted(passed)}"


def test_template_refuses_a_debug_value_other_than_0_or_1(host_dirs: Mapping[str, str]) -> None:
    defines = _defines(False, host_dirs) | {"debug": "yes"}
    with pytest.raises(jinja2.UndefinedError, match="debug_must_be_0_or_1"):
        render(defines)


# --------------------------------------------------------------------------------------
# identity, attestation, argv


def test_entrypoints_and_attestation(production: Mapping[str, Any]) -> None:
    assert production["libos"]["entrypoint"] == str(ENTRYPOINT)
    assert production["loader"]["entrypoint"]["uri"] == f"file:{PKGLIBDIR / 'libsysdb.so'}"
    assert f"file:{PKGLIBDIR / 'libsysdb.so'}" in production["sgx"]["trusted_files"]
    assert production["sgx"]["remote_attestation"] == "dcap"
    assert production["sgx"]["edmm_enable"] is False
    assert isinstance(production["sgx"]["isvprodid"], int)
    assert isinstance(production["sgx"]["isvsvn"], int) and production["sgx"]["isvsvn"] >= 1


def test_argv_is_fixed_and_names_only_the_mounted_directories(
    production: Mapping[str, Any],
) -> None:
    argv = production["loader"]["argv"]
    assert argv[0] == str(ENTRYPOINT)
    assert "-I" in argv[: argv.index(str(CONSOLE_SCRIPT))], "interpreter must run isolated (-I)"
    args = ps_arguments(production)
    assert argv_option(args, "--attestation") == "dcap"
    assert argv_option(args, "--federation") == FEDERATION_FILE
    assert argv_option(args, "--validate-set") == VALIDATION_FILE
    assert argv_option(args, "--sealed-dir") == SEALED and argv_option(args, "--out") == OUT
    assert "--resume" in args, "a restarted enclave must continue its sealed run by itself"
    mounts = {m["path"]: m for m in production["fs"]["mounts"]}
    assert mounts[SEALED]["type"] == "encrypted" and mounts[FEDERATION].get("type") is None
    paths = [a for a in args if a.startswith("/")]
    assert all(p.startswith((FEDERATION + "/", SEALED, OUT)) for p in paths), paths
    flat = flatten(production)
    assert not any(k.startswith("loader.insecure__") for k in flat), "argv must not come from host"
    assert "loader.argv_src_file" not in flat


def test_argv_carries_nothing_federation_specific(production: Mapping[str, Any]) -> None:
    """The plan comes from the federation file only: no plan option, no member, no policy, so one
    MRENCLAVE serves every federation (and the PS refuses plan options under attestation)."""
    args = ps_arguments(production)
    plan_options = plan_option_strings()
    assert {"--workers", "--worker-num", "--min-workers", "--iters"} <= plan_options
    assert plan_options.isdisjoint(args), sorted(plan_options & set(args))
    for option in ("--mrenclave", "--insecure", "--join-timeout", "--overwrite"):
        assert option not in args, option
    parsed = build_parser().parse_args(["ps", *args])
    assert parsed.command == "ps" and parsed.attestation == "dcap" and not parsed.insecure
    assert parsed.federation == Path(FEDERATION_FILE)
    assert all(getattr(parsed, name) in (None, False) for name in PLAN_OPTIONS)


def test_manifest_does_not_depend_on_the_federation(
    host_dirs: Mapping[str, str], tmp_path: Path
) -> None:
    """Rendering (hence signing: allowed files are not hashed) gives the same manifest whatever
    federation files lie in FEDERATION_DIR: MRENCLAVE measures code only."""
    defines = _defines(False, {**host_dirs, "federation": str(tmp_path)})
    before = render(defines)
    (tmp_path / "federation.toml").write_text('version = 1\nname = "other"\n')
    (tmp_path / "validate.csv").write_text("id,y,x0\n1,0,0.5\n")
    assert render(defines) == before


def test_sealed_state_is_encrypted_with_the_mrenclave_key(
    production: Mapping[str, Any], host_dirs: Mapping[str, str]
) -> None:
    [sealed] = [m for m in production["fs"]["mounts"] if m["path"] == SEALED]
    assert sealed == {
        "type": "encrypted",
        "path": SEALED,
        "uri": f"file:{host_dirs['sealed']}",
        "key_name": "_sgx_mrenclave",
    }
    others = [m for m in production["fs"]["mounts"] if m is not sealed]
    assert all(uri_path(m.get("uri", "file:")) != host_dirs["sealed"] for m in others)
    secret = host_dirs["sealed"] + "/"
    for uri in production["sgx"]["trusted_files"] + production["sgx"].get("allowed_files", []):
        path = uri_path(uri)
        assert not (secret.startswith(path) or path.startswith(secret)), f"{uri} overlaps /sealed"
    assert "insecure__keys" not in production["fs"], "keys must come from SGX, not the manifest"


# --------------------------------------------------------------------------------------
# production vs debug


DEBUG_ONLY_KEYS = ("sgx.enable_stats", "sgx.profile.", "sgx.vtune_profile", "loader.log_file")


def test_production_has_no_debug_or_insecure_option(production: Mapping[str, Any]) -> None:
    flat = flatten(production)
    assert flat["sgx.debug"] is False
    assert flat["loader.log_level"] == "error"
    assert [k for k in flat if "insecure__" in k] == []
    assert [k for k in flat if k.startswith(DEBUG_ONLY_KEYS)] == []
    assert flat.get("sgx.file_check_policy", "strict") == "strict"
    passthrough = [k for k, v in production["loader"]["env"].items() if not isinstance(v, str)]
    assert passthrough == [], f"host-controlled environment variables: {passthrough}"


def test_debug_variant_differs_only_in_debug_settings(
    production: Mapping[str, Any], debug_manifest: Mapping[str, Any]
) -> None:
    prod, dbg = flatten(production), flatten(debug_manifest)
    assert dbg["sgx.debug"] is True
    changed = {k for k in prod.keys() | dbg.keys() if prod.get(k) != dbg.get(k)}
    assert changed == {"sgx.debug", "loader.log_level"}


# --------------------------------------------------------------------------------------
# environment, files


def test_environment_bounds_threads_keeps_the_ps_in_process_and_constant_time(
    production: Mapping[str, Any],
) -> None:
    env = production["loader"]["env"]
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        assert env[name] == "1", name
    assert env[WORKERS_ENV] == "0"  # the crypto pool stays off: no fork inside the enclave
    assert env[CONSTANT_TIME_ENV] == "1"  # secret exponents: GMP's mpz_powm_sec
    assert env["JOBLIB_MULTIPROCESSING"] == "0"
    assert 1 <= int(env["MALLOC_ARENA_MAX"]) <= 4
    assert env["MALLOC_MMAP_THRESHOLD_"] == str(MMAP_THRESHOLD_BYTES)
    assert production["sys"]["disallow_subprocesses"] is True


def test_trusted_entries_exist_and_directories_end_with_a_slash(
    production: Mapping[str, Any],
) -> None:
    for uri in production["sgx"]["trusted_files"]:
        path = uri_path(uri)
        if path.startswith(str(PKGLIBDIR)):
            continue  # gramine's own files: stand-in paths on this machine
        assert os.path.exists(path), f"{uri}: gramine-sgx-sign would fail, no such file"
        assert os.path.isdir(path) == path.endswith("/"), f"{uri}: directory URIs end with '/'"


def test_federation_inputs_are_allowed_not_trusted_and_nothing_else_is_allowed(
    production: Mapping[str, Any], host_dirs: Mapping[str, str]
) -> None:
    allowed = [uri_path(u) for u in production["sgx"].get("allowed_files", [])]
    assert sorted(allowed) == sorted([host_dirs["federation"] + "/", host_dirs["out"] + "/"])
    trusted = [uri_path(u) for u in production["sgx"]["trusted_files"]]
    for a in allowed:
        for t in trusted:
            assert not (a.startswith(t) or t.startswith(a)), f"allowed {a} overlaps trusted {t}"
    layout = Layout.of(production)
    for path in (FEDERATION_FILE, VALIDATION_FILE):
        host = host_path(path, layout.mounts)
        assert covered(host, allowed) and not covered(host, trusted), path
    [mount] = [m for m in production["fs"]["mounts"] if m["path"] == FEDERATION]
    assert mount == {"path": FEDERATION, "uri": f"file:{host_dirs['federation']}"}


def test_console_script_and_pyvenv_cfg_are_trusted(production: Mapping[str, Any]) -> None:
    layout = Layout.of(production)
    files = [str(CONSOLE_SCRIPT), str(VENV / "pyvenv.cfg"), str(ENTRYPOINT)]
    assert all(os.path.exists(f) for f in files)
    assert unreachable(files, layout) == []


def test_every_file_the_ps_loads_is_trusted_and_mounted(
    production: Mapping[str, Any], probe: Mapping[str, Any]
) -> None:
    assert "homolr.cli" in probe["strict"], "homolr.cli must exist: it is the PS entry point"
    assert probe["failed"] == [], probe["failed"]
    layout = Layout.of(production)
    modules = [f for f in probe["modules"] if os.path.isabs(f)]
    assert any(f.endswith("/homolr/cli.py") for f in modules)
    assert unreachable(modules, layout) == []
    shared = [f for f in probe["maps"] if f.startswith("/") and os.path.isfile(f)]
    shared = [f for f in shared if f != probe["exe"]]
    assert any("numpy" in f for f in shared), "probe did not load numpy's extensions"
    assert unreachable_mapped(shared, layout) == []
    assert probe["exe"] == os.path.realpath(production["libos"]["entrypoint"])


def test_coverage_check_reports_a_missing_trusted_entry(
    production: Mapping[str, Any], probe: Mapping[str, Any]
) -> None:
    layout = Layout.of(production)
    without_venv = Layout(tuple(t for t in layout.trusted if t != f"{VENV}/"), layout.mounts)
    numpy_files = [f for f in probe["modules"] if "/site-packages/numpy/" in f]
    assert numpy_files and unreachable(numpy_files, without_venv) == numpy_files
    without_mount = Layout(layout.trusted, tuple(m for m in layout.mounts if m[0] != str(VENV)))
    assert unreachable(numpy_files, without_mount) == numpy_files


# --------------------------------------------------------------------------------------
# a real PS under the manifest's command line and environment


def test_the_manifest_command_line_trains_a_federation(ps_run: PsRun) -> None:
    assert ps_run.returncode == 0, ps_run.log[-3000:]
    assert "federation 'deploy-check' sha256:" in ps_run.log
    assert "(mTLS)" in ps_run.log
    assert (ps_run.out_dir / "model.json").is_file()


def test_every_library_the_running_ps_maps_is_trusted(
    production: Mapping[str, Any], ps_run: PsRun
) -> None:
    shared = [f for f in ps_run.maps if f.startswith("/") and os.path.isfile(f)]
    shared = [f for f in shared if f != os.path.realpath(production["libos"]["entrypoint"])]
    assert any("cygrpc" in f for f in shared), "the PS did not map gRPC's extension"
    assert unreachable_mapped(shared, Layout.of(production)) == []


def _grpc_core(name: str) -> bool:
    return name.startswith(GRPC_CORE_THREADS)


def test_the_ps_runs_enclave_threads_plus_grpc_threads(ps_run: PsRun) -> None:
    """ENCLAVE_THREADS is what the PS itself starts; everything else is gRPC's (the test names
    them): a new thread in the PS must be counted in the constant and the budget."""
    threads = ps_run.threads
    own = sum(n for name, n in threads.items() if not _grpc_core(name))
    # executor threads start on first use: in this encrypted run (one chunk per update) one of
    # the WORK_THREADS work threads suffices
    assert own >= ENCLAVE_THREADS - (WORK_THREADS - 1) + GRPC_AIO_POLLER, threads
    assert own <= ENCLAVE_THREADS + GRPC_AIO_POLLER, threads
    assert threads.get("event_engine", 0) >= 1 and threads.get("lifeguard", 0) == 1, threads


def test_thread_slots_cover_the_ps_on_any_host(
    production: Mapping[str, Any], ps_run: PsRun
) -> None:
    threads = ps_run.threads
    grpc_core = sum(n for name, n in threads.items() if _grpc_core(name))
    event_engine = threads.get("event_engine", 0)
    worst = (
        ENCLAVE_THREADS
        + GRPC_AIO_POLLER
        + RICH_REFRESH
        + grpc_core
        - event_engine
        + max(event_engine, GRPC_EVENT_ENGINE_MAX)
        + GRAMINE_THREADS
    )
    assert production["sgx"]["max_threads"] >= THREAD_HEADROOM * worst, (threads, worst)


def test_enclave_size_covers_the_measured_peak(
    production: Mapping[str, Any], probe: Mapping[str, Any], ps_run: PsRun
) -> None:
    size = size_in_bytes(production["sgx"]["enclave_size"])
    assert size & (size - 1) == 0, "SGX enclave size must be a power of two"
    stack = size_in_bytes(production["sys"]["stack"]["size"])
    spare_threads = max(0, production["sgx"]["max_threads"] - sum(ps_run.threads.values()))
    peak = max(probe["vm_peak_kib"], ps_run.vm_peak_kib) * 1024
    needed = (
        GRAMINE_OVERHEAD + WORKLOAD_ALLOWANCE + MEMORY_HEADROOM * (peak + spare_threads * stack)
    )
    assert size >= needed, f"enclave_size {size / 2**20:.0f} MiB < needed {needed / 2**20:.0f} MiB"
