"""Render deploy/gramine/homolr-ps.manifest.template like gramine-manifest does, and check it.

There is no SGX and no Gramine on a development machine, so this test rebuilds what
``gramine-manifest`` does (a jinja2 environment with ``StrictUndefined`` and the helpers
``gramine``, ``python``, ``env`` and ``ldd``), with the ``gramine`` paths replaced by
the locations of Ubuntu's gramine package and the ``python`` helpers pointing at THIS
machine's virtual environment. The ``-D`` values are the ones the Makefile passes
(``make -n`` prints them), so the test renders what operators get.

A probe subprocess, started the way the manifest starts the PS (same interpreter, same
flags, same environment, same stack limit), imports what ``homolr ps`` imports and
starts a gRPC server; the files it loaded must all be trusted and mounted, and its
memory peak and thread count must fit the enclave size and thread slots.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta
import pytest

from homolr.crypto.parallel import WORKERS_ENV
from homolr.server.app import rpc_threads

REPO = Path(__file__).resolve().parents[2]
GRAMINE_DIR = REPO / "deploy" / "gramine"
TEMPLATE = GRAMINE_DIR / "homolr-ps.manifest.template"

VENV = Path(sys.prefix)
ENTRYPOINT = VENV / "bin" / "python3"
CONSOLE_SCRIPT = VENV / "bin" / "homolr"
ARCH_LIBDIR = "/lib/x86_64-linux-gnu"
# Where Ubuntu's gramine package installs (meson PKGLIBDIR): stand-ins, never opened here.
PKGLIBDIR = Path("/usr/lib/x86_64-linux-gnu/gramine")

SEALED, CONFIG, OUT = "/sealed", "/config", "/out"

# Sizing model (README.md "Sizing"): measured footprint plus what the probe cannot show.
GRAMINE_OVERHEAD = 128 * 2**20  # PAL + LibOS code and heap, per-slot TCS/SSA/PAL stacks, manifest
WORKLOAD_ALLOWANCE = 64 * 2**20  # default model: 31 weights x workers ciphertexts, key, tables
MEMORY_HEADROOM = 1.25
GRAMINE_THREADS = 3  # IPC thread, async thread, one transient TLS-handshake thread
GRPC_EVENT_ENGINE_MAX = 16  # PosixEventEngine pool: Clamp(host cores, 4, 16) reserve threads
GRPC_WORKERS = rpc_threads(2)  # the servicer's thread pool for the default two workers
SPARE_APP_THREADS = 1  # rich's live-refresh thread
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


# --------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def host_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Host directories behind /config, /sealed and /out (the validation set must exist)."""
    root = tmp_path_factory.mktemp("gramine")
    dirs = {name: root / name for name in ("config", "sealed", "out")}
    for path in dirs.values():
        path.mkdir()
    (dirs["config"] / "validate.csv").write_text("id,y,x0\n1,0,0.5\n")
    return {name: str(path) for name, path in dirs.items()}


def _defines(debug: bool, host_dirs: Mapping[str, str]) -> dict[str, str]:
    return makefile_defines(
        debug,
        VENV=str(VENV),
        CONFIG_DIR=host_dirs["config"],
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
import collections, importlib, importlib.util, json, os, pkgutil, sys, time

report = {"strict": [], "failed": []}
for name in ("homolr.cli", "homolr.server.app"):
    try:
        spec = importlib.util.find_spec(name)
    except ModuleNotFoundError:
        spec = None
    if spec is not None:
        importlib.import_module(name)
        report["strict"].append(name)
for name in ("numpy", "gmpy2", "grpc", "google.protobuf", "sklearn.metrics", "rich.console",
             "cryptography.x509", "cryptography.hazmat.primitives.asymmetric.ec"):
    importlib.import_module(name)
import homolr
for info in pkgutil.walk_packages(homolr.__path__, "homolr.", onerror=report["failed"].append):
    if info.name.endswith("__main__"):
        continue
    try:
        importlib.import_module(info.name)
    except (Exception, SystemExit) as exc:
        report["failed"].append(f"{info.name}: {type(exc).__name__}: {exc}")

from concurrent import futures
import grpc
workers = int(sys.argv[1])
pool = futures.ThreadPoolExecutor(max_workers=workers)
server = grpc.server(pool)
server.add_insecure_port("127.0.0.1:0")
server.start()
busy = [pool.submit(time.sleep, 0.3) for _ in range(workers)]
time.sleep(0.15)
threads = collections.Counter(
    open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task"))
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
maps = sorted({line.split(None, 5)[5].strip() for line in open("/proc/self/maps")
               if len(line.split(None, 5)) == 6})
server.stop(0)
pool.shutdown(wait=True)
report.update(
    modules=sorted({m.__file__ for m in list(sys.modules.values())
                    if isinstance(getattr(m, "__file__", None), str)}),
    maps=maps, threads=dict(threads), vm_peak_kib=int(status["VmPeak"].split()[0]),
    exe=os.path.realpath("/proc/self/exe"), comm=open("/proc/self/comm").read().strip())
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def probe(production: Mapping[str, Any]) -> dict[str, Any]:
    """Run the PS's imports and a gRPC server as the manifest would start them."""
    argv = production["loader"]["argv"]
    flags = argv[1 : argv.index(str(CONSOLE_SCRIPT))]
    env = {k: v for k, v in production["loader"]["env"].items() if k != "LD_LIBRARY_PATH"}
    stack_kib = size_in_bytes(production["sys"]["stack"]["size"]) // 1024
    command = ["/bin/sh", "-c", 'ulimit -s "$0" && exec "$@"', str(stack_kib), argv[0], *flags]
    done = subprocess.run(
        [*command, "-c", PROBE, str(GRPC_WORKERS)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"probe failed:\n{done.stderr[-3000:]}"
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


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


def test_argv_is_fixed_and_points_into_the_mounts(production: Mapping[str, Any]) -> None:
    argv = production["loader"]["argv"]
    assert argv[0] == str(ENTRYPOINT)
    assert "-I" in argv[: argv.index(str(CONSOLE_SCRIPT))], "interpreter must run isolated (-I)"
    assert argv[argv.index(str(CONSOLE_SCRIPT)) + 1] == "ps"
    assert argv_option(argv, "--attestation") == "dcap"
    mounts = {m["path"]: m for m in production["fs"]["mounts"]}
    assert argv_option(argv, "--sealed-dir") == SEALED and mounts[SEALED]["type"] == "encrypted"
    assert argv_option(argv, "--out") == OUT and OUT in mounts
    validate = argv_option(argv, "--validate-set")
    assert validate is not None and validate.startswith(CONFIG + "/")
    flat = flatten(production)
    assert not any(k.startswith("loader.insecure__") for k in flat), "argv must not come from host"


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


def test_environment_bounds_threads_and_keeps_the_ps_in_process(
    production: Mapping[str, Any],
) -> None:
    env = production["loader"]["env"]
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        assert env[name] == "1", name
    assert env[WORKERS_ENV] == "0"  # the crypto pool stays off: no fork inside the enclave
    assert env["JOBLIB_MULTIPROCESSING"] == "0"
    assert 1 <= int(env["MALLOC_ARENA_MAX"]) <= 4
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


def test_allowed_files_cover_no_code_and_no_measured_input(
    production: Mapping[str, Any], host_dirs: Mapping[str, str]
) -> None:
    allowed = [uri_path(u) for u in production["sgx"].get("allowed_files", [])]
    assert allowed == [host_dirs["out"] + "/"]
    trusted = [uri_path(u) for u in production["sgx"]["trusted_files"]]
    for a in allowed:
        for t in trusted:
            assert not (a.startswith(t) or t.startswith(a)), f"allowed {a} overlaps trusted {t}"


def test_console_script_and_pyvenv_cfg_are_trusted(production: Mapping[str, Any]) -> None:
    layout = Layout.of(production)
    files = [str(CONSOLE_SCRIPT), str(VENV / "pyvenv.cfg"), str(ENTRYPOINT)]
    assert all(os.path.exists(f) for f in files)
    assert unreachable(files, layout) == []


def test_every_file_the_ps_loads_is_trusted_and_mounted(
    production: Mapping[str, Any], probe: Mapping[str, Any]
) -> None:
    assert "homolr.cli" in probe["strict"], "homolr.cli must exist: it is the PS entry point"
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
# sizing


def test_enclave_size_covers_the_measured_peak(
    production: Mapping[str, Any], probe: Mapping[str, Any]
) -> None:
    size = size_in_bytes(production["sgx"]["enclave_size"])
    assert size & (size - 1) == 0, "SGX enclave size must be a power of two"
    stack = size_in_bytes(production["sys"]["stack"]["size"])
    spare_threads = max(0, production["sgx"]["max_threads"] - sum(probe["threads"].values()))
    app = probe["vm_peak_kib"] * 1024 + spare_threads * stack
    needed = GRAMINE_OVERHEAD + WORKLOAD_ALLOWANCE + MEMORY_HEADROOM * app
    assert size >= needed, f"enclave_size {size / 2**20:.0f} MiB < needed {needed / 2**20:.0f} MiB"


def test_thread_slots_cover_the_measured_threads(
    production: Mapping[str, Any], probe: Mapping[str, Any]
) -> None:
    threads: dict[str, int] = probe["threads"]
    assert threads.get(probe["comm"], 0) >= GRPC_WORKERS + 1, f"pool not saturated: {threads}"
    grpc_growth = max(0, GRPC_EVENT_ENGINE_MAX - threads.get("event_engine", 0))
    needed = sum(threads.values()) + grpc_growth + GRAMINE_THREADS + SPARE_APP_THREADS
    assert production["sgx"]["max_threads"] >= THREAD_HEADROOM * needed, (threads, needed)


# --------------------------------------------------------------------------------------
# the CLI accepts the measured arguments


def test_default_ps_args_are_options_of_homolr_ps(production: Mapping[str, Any]) -> None:
    argv = production["loader"]["argv"]
    ps_args = argv[argv.index("ps") + 1 :]
    done = subprocess.run(
        [sys.executable, "-m", "homolr", "ps", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0 and "No module named" in done.stderr:
        pytest.skip("homolr has no CLI yet")
    assert done.returncode == 0, done.stderr
    known = set(re.findall(r"--[a-z][a-z0-9-]*", done.stdout))
    unknown = {a for a in ps_args if a.startswith("--")} - known
    assert unknown == set(), f"PS_ARGS uses options `homolr ps` does not know: {sorted(unknown)}"
