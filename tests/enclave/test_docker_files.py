"""Static checks of deploy/docker: pinned versions, SGX devices, signing, consistency.

No Docker engine here, so the files are parsed and cross-checked instead of built:
Dockerfiles instruction by instruction, compose.yaml with PyYAML when it is installed and
otherwise with the small YAML-subset reader below (block mappings and sequences, quoted
and plain scalars, JSON-style flow sequences), which refuses anything outside that subset.
Commands are checked with homolr's own argument parser; the enclave's command line is read from
the Gramine manifest template (the measured one), so compose and the template cannot drift.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import jinja2.nodes
import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement

from homolr.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "deploy" / "docker"
GRAMINE_MAKEFILE = REPO / "deploy" / "gramine" / "Makefile"
TEMPLATE = REPO / "deploy" / "gramine" / "homolr-ps.manifest.template"
#: The images' interpreter (Ubuntu 24.04): the environment requirement markers are evaluated in.
TARGET_ENVIRONMENT = {
    "python_version": "3.12",
    "python_full_version": "3.12.3",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "extra": "",
}


# --------------------------------------------------------------------------------------
# a YAML-subset reader (enough for compose.yaml, strict about the rest)


@dataclass(frozen=True)
class Line:
    number: int
    indent: int
    text: str


def _strip_comment(text: str) -> str:
    quote = ""
    for i, char in enumerate(text):
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char == "#" and (i == 0 or text[i - 1] in " \t"):
            return text[:i].rstrip()
    return text.rstrip()


def _lines(source: str) -> list[Line]:
    lines = []
    for number, raw in enumerate(source.splitlines(), 1):
        if "\t" in raw[: len(raw) - len(raw.lstrip())]:
            raise ValueError(f"line {number}: tab in indentation")
        text = _strip_comment(raw)
        if text.strip():
            lines.append(Line(number, len(text) - len(text.lstrip()), text.strip()))
    return lines


def _scalar(text: str, number: int) -> Any:
    if text.startswith('"'):
        return json.loads(text)
    if text.startswith("'"):
        if not text.endswith("'") or len(text) < 2:
            raise ValueError(f"line {number}: unterminated quote")
        return text[1:-1].replace("''", "'")
    if text.startswith("["):
        return json.loads(text)
    if text == "{}":
        return {}
    if text[0] in "{&*!|>%@`":
        raise ValueError(f"line {number}: unsupported YAML syntax {text!r}")
    return text


def _split_key(text: str) -> tuple[str, str] | None:
    if text.startswith(("'", '"', "[")):
        return None
    match = re.match(r"^([^\s:][^:]*?):(?:\s+(.*)|)$", text)
    return (match[1], match[2] or "") if match else None


class _Reader:
    def __init__(self, source: str) -> None:
        self.lines = _lines(source)
        self.i = 0

    def block(self, indent: int) -> Any:
        line = self.lines[self.i]
        if line.text == "-" or line.text.startswith("- "):
            return self.sequence(indent)
        return self.mapping(indent)

    def mapping(self, indent: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        while self.i < len(self.lines) and self.lines[self.i].indent >= indent:
            line = self.lines[self.i]
            if line.indent > indent:
                raise ValueError(f"line {line.number}: unexpected indentation")
            if line.text.startswith("- "):
                break
            pair = _split_key(line.text)
            if pair is None:
                raise ValueError(f"line {line.number}: expected 'key: value', got {line.text!r}")
            key, value = pair
            if key in result:
                raise ValueError(f"line {line.number}: duplicate key {key!r}")
            self.i += 1
            result[key] = _scalar(value, line.number) if value else self.nested(indent)
        return result

    def nested(self, indent: int) -> Any:
        if self.i >= len(self.lines):
            return None
        line = self.lines[self.i]
        if line.indent > indent:
            return self.block(line.indent)
        if line.indent == indent and line.text.startswith("- "):
            return self.sequence(indent)
        return None

    def sequence(self, indent: int) -> list[Any]:
        result: list[Any] = []
        while self.i < len(self.lines):
            line = self.lines[self.i]
            if line.indent != indent or not (line.text == "-" or line.text.startswith("- ")):
                if line.indent > indent:
                    raise ValueError(f"line {line.number}: unexpected indentation")
                break
            rest = line.text[1:].lstrip()
            if not rest:
                self.i += 1
                result.append(self.nested(indent))
            elif _split_key(rest) is not None:
                inner = indent + len(line.text) - len(rest)
                self.lines[self.i] = Line(line.number, inner, rest)
                result.append(self.mapping(inner))
            else:
                self.i += 1
                result.append(_scalar(rest, line.number))
        return result


def read_yaml_subset(source: str) -> Any:
    """Parse the YAML subset used by compose.yaml (all scalars stay strings)."""
    reader = _Reader(source)
    value = reader.block(0)
    if reader.i != len(reader.lines):
        raise ValueError(f"line {reader.lines[reader.i].number}: unexpected content")
    return value


def _as_strings(value: Any) -> Any:
    """PyYAML result with scalars as the subset reader keeps them (strings)."""
    if isinstance(value, dict):
        return {str(k): _as_strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_strings(v) for v in value]
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if value is None or isinstance(value, str) else str(value)


def load_compose() -> dict[str, Any]:
    source = (DOCKER / "compose.yaml").read_text()
    mine = read_yaml_subset(source)
    try:
        import yaml  # type: ignore[import-untyped]
    except ImportError:
        return mine  # type: ignore[no-any-return]
    assert _as_strings(yaml.safe_load(source)) == mine, "subset reader disagrees with PyYAML"
    return mine  # type: ignore[no-any-return]


def test_yaml_subset_reader_reads_what_it_supports() -> None:
    source = """
# comment
a: 1   # trailing comment
b:
  - x
  - "y: z"
  - ["CMD", "sh"]
  - k: v
    w: 'it''s'
c:
- same-indent item
d: {}
"""
    assert read_yaml_subset(source) == {
        "a": "1",
        "b": ["x", "y: z", ["CMD", "sh"], {"k": "v", "w": "it's"}],
        "c": ["same-indent item"],
        "d": {},
    }


@pytest.mark.parametrize(
    "source",
    ["a: &anchor 1\n", "a: |\n  text\n", "a: 1\n  b: 2\n", "a: 1\na: 2\n", "a:\n\t- x\n"],
)
def test_yaml_subset_reader_refuses_the_rest(source: str) -> None:
    with pytest.raises(ValueError, match="line"):
        read_yaml_subset(source)


# --------------------------------------------------------------------------------------
# Dockerfiles and Makefiles


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        pending += " " + stripped.removesuffix("\\") if pending else stripped.removesuffix("\\")
        if not stripped.endswith("\\"):
            word, _, rest = pending.strip().partition(" ")
            instructions.append((word.upper(), rest.strip()))
            pending = ""
    return instructions


def arg_defaults(instructions: list[tuple[str, str]]) -> dict[str, str]:
    pairs = (args.split("=", 1) for kind, args in instructions if kind == "ARG" and "=" in args)
    return {name: value for name, value in pairs}


def resolved_from_images(path: Path) -> list[str]:
    instructions = dockerfile_instructions(path)
    args = arg_defaults(instructions)
    images = []
    for kind, rest in instructions:
        if kind == "FROM":
            image = rest.split()[0]
            images.append(re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args[m[1] or m[2]], image))
    return images


def makefile_defaults(path: Path) -> dict[str, str]:
    """``NAME ?= value`` assignments (continuation lines joined)."""
    text = path.read_text().replace("\\\n", " ")
    found = re.findall(r"^(\w+)\s*\?=\s*(.*)$", text, flags=re.M)
    return {name: " ".join(value.split()) for name, value in found}


def run_commands(path: Path) -> str:
    return "\n".join(rest for kind, rest in dockerfile_instructions(path) if kind == "RUN")


def requirement_pins(path: Path) -> dict[str, str]:
    text = path.read_text().replace("\\\n", " ")
    pins = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip() if not line.lstrip().startswith("--") else ""
        if line:
            match = re.fullmatch(
                r"([A-Za-z0-9_.-]+)==(\S+)((?:\s+--hash=sha256:[0-9a-f]{64})+)", line
            )
            assert match, f"{path.name}: not an exact, hashed pin: {line!r}"
            pins[re.sub(r"[-_.]+", "-", match[1]).lower()] = match[2]
    return pins


def normalized_name(requirement: str) -> str:
    name = re.match(r"[A-Za-z0-9_.-]+", requirement)
    assert name, requirement
    return re.sub(r"[-_.]+", "-", name[0]).lower()


PS_DOCKERFILE = DOCKER / "Dockerfile"
WORKER_DOCKERFILE = DOCKER / "Dockerfile.worker"


def pinned(image: str) -> bool:
    if "@sha256:" in image:
        return True
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and tag != "latest" and bool(re.search(r"\d", tag))


@pytest.mark.parametrize("dockerfile", [PS_DOCKERFILE, WORKER_DOCKERFILE], ids=lambda p: p.name)
def test_base_images_are_pinned_and_have_python_3_11_or_newer(dockerfile: Path) -> None:
    images = resolved_from_images(dockerfile)
    assert images, "no FROM"
    for image in images:
        assert pinned(image), f"{image}: pin a version tag or a digest (never :latest)"
        # Ubuntu 24.04 (noble) ships Python 3.12; 22.04's 3.10 is too old for homolr.
        assert re.search(r"ubuntu:(noble|24\.04)", image), image


def test_gramine_comes_from_its_packages_at_a_pinned_version() -> None:
    args = arg_defaults(dockerfile_instructions(PS_DOCKERFILE))
    assert re.fullmatch(r"\d+\.\d+(\.\d+)?", args["GRAMINE_VERSION"]), args["GRAMINE_VERSION"]
    runs = run_commands(PS_DOCKERFILE)
    assert '"gramine=${GRAMINE_VERSION}"' in runs
    assert "packages.gramineproject.io" in runs
    assert re.search(r"apt-get install[^&]*\bgramine\b(?!=)", runs) is None, "unpinned gramine"


def test_worker_dcap_libraries_are_pinned() -> None:
    args = arg_defaults(dockerfile_instructions(WORKER_DOCKERFILE))
    assert re.fullmatch(r"\d+(\.\d+)+-\w+", args["DCAP_VERSION"]), args["DCAP_VERSION"]
    runs = run_commands(WORKER_DOCKERFILE)
    for package in ("libsgx-dcap-quote-verify", "libsgx-dcap-default-qpl"):
        assert f'"{package}=${{DCAP_VERSION}}"' in runs, package


@pytest.mark.parametrize("dockerfile", [PS_DOCKERFILE, WORKER_DOCKERFILE], ids=lambda p: p.name)
def test_homolr_is_installed_from_the_checkout_with_hashed_dependencies(dockerfile: Path) -> None:
    instructions = dockerfile_instructions(dockerfile)
    copies = " ".join(rest for kind, rest in instructions if kind == "COPY")
    assert re.search(r"\bpyproject\.toml\b", copies) and re.search(r"(^|\s)src\s", copies)
    runs = run_commands(dockerfile)
    assert "pip wheel" in runs and "homolr-*.whl" in runs, "homolr must be built from src/"
    assert re.search(r"pip[^&]* install[^&]*\shomolr(\s|$)", runs) is None, "not from an index"
    assert runs.count("--require-hashes") >= 2 and "requirements.txt" in runs
    assert "--no-build-isolation" in runs and "requirements-build.txt" in runs


def runtime_closure(requirements: list[str]) -> dict[str, list[Requirement]]:
    """Every project homolr needs at run time on the images' interpreter (markers evaluated
    there), with the requirements that name it; walked through the installed metadata."""
    found: dict[str, list[Requirement]] = {}
    pending = [Requirement(r) for r in requirements]
    while pending:
        requirement = pending.pop()
        if requirement.marker is not None and not requirement.marker.evaluate(TARGET_ENVIRONMENT):
            continue
        name = normalized_name(requirement.name)
        seen = name in found
        found.setdefault(name, []).append(requirement)
        if seen:
            continue
        # Not installed here: it must still be pinned; its own needs are pip's to check.
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            pending += [Requirement(r) for r in importlib.metadata.requires(name) or []]
    return found


def test_requirements_pin_every_runtime_dependency_with_hashes() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = requirement_pins(DOCKER / "requirements.txt")
    closure = runtime_closure(project["dependencies"])
    assert {"matplotlib", "dp-accounting", "grpcio", "gmpy2"} <= set(closure)
    missing = set(closure) - set(pins)
    assert missing == set(), f"runtime dependencies not pinned in requirements.txt: {missing}"
    for name, requirements in closure.items():
        for requirement in requirements:
            assert requirement.specifier.contains(pins[name], prereleases=True), (
                f"requirements.txt pins {name}=={pins[name]}, but {requirement} is required"
            )
    build = requirement_pins(DOCKER / "requirements-build.txt")
    assert "setuptools" in build and "setuptools" not in pins
    header = (DOCKER / "requirements.txt").read_text().split("\n", 12)
    assert any("lock_requirements.py" in line for line in header), "say how to regenerate it"


def test_runtime_closure_follows_markers_and_transitive_requirements() -> None:
    closure = runtime_closure(["dp-accounting", "nothing-here; python_version < '3'"])
    assert "dp-accounting" in closure and "nothing-here" not in closure
    assert {"absl-py", "attrs", "mpmath", "numpy", "scipy"} <= set(closure)
    assert Marker("python_version >= '3.12'").evaluate(TARGET_ENVIRONMENT)


def test_ps_image_signs_the_enclave_and_prints_mrenclave() -> None:
    instructions = dockerfile_instructions(PS_DOCKERFILE)
    runs = run_commands(PS_DOCKERFILE)
    workdirs = [rest for kind, rest in instructions if kind == "WORKDIR"]
    assert workdirs[-1] == "/opt/homolr/enclave"
    assert re.search(r"(^|[;&\s])make\s", runs), "the image must run deploy/gramine/Makefile"
    assert "--mount=type=secret,id=enclave-key" in runs
    assert 'echo "MRENCLAVE' in runs and ".mrenclave" in runs
    makefile = GRAMINE_MAKEFILE.read_text()
    for tool in ("gramine-manifest", "gramine-sgx-sign", "gramine-sgx-sigstruct-view"):
        assert re.search(rf"^\t{tool}\s", makefile, flags=re.M), tool
    copied = [rest for kind, rest in instructions if kind == "COPY"]
    assert not any(re.search(r"\.(pem|key)\b", c) for c in copied), "no keys in image layers"
    [entrypoint] = [rest for kind, rest in instructions if kind == "ENTRYPOINT"]
    assert "gramine-sgx" in entrypoint


def test_ps_image_holds_nothing_federation_specific() -> None:
    """One image, one MRENCLAVE for every federation: no federation file, validation set or
    command-line arguments are built in; the mount points exist for compose to fill."""
    instructions = dockerfile_instructions(PS_DOCKERFILE)
    copied = " ".join(rest for kind, rest in instructions if kind == "COPY")
    assert not re.search(r"federation|validat|\.csv|\.toml\b(?<!pyproject\.toml)", copied), copied
    assert "PS_ARGS" not in PS_DOCKERFILE.read_text()
    assert "PS_ARGS" not in GRAMINE_MAKEFILE.read_text()
    defaults = makefile_defaults(GRAMINE_MAKEFILE)
    runs = run_commands(PS_DOCKERFILE)
    for name in ("FEDERATION_DIR", "SEALED_DIR", "OUT_DIR"):
        assert defaults[name] in runs, f"the image must create the mount point {defaults[name]}"


def test_worker_image_serves_keygen_init_and_worker_with_a_state_directory() -> None:
    instructions = dockerfile_instructions(WORKER_DOCKERFILE)
    [entrypoint] = [rest for kind, rest in instructions if kind == "ENTRYPOINT"]
    assert json.loads(entrypoint) == ["/opt/homolr/venv/bin/homolr"]
    [user] = [rest for kind, rest in instructions if kind == "USER"]
    assert user == "homolr"
    runs = run_commands(WORKER_DOCKERFILE)
    assert re.search(r"install -d -o homolr -g homolr -m 0700 /var/lib/homolr/state", runs)


@pytest.mark.parametrize("dockerfile", [PS_DOCKERFILE, WORKER_DOCKERFILE], ids=lambda p: p.name)
def test_ignore_file_admits_exactly_what_the_dockerfile_copies(dockerfile: Path) -> None:
    rules = [
        line.strip()
        for line in Path(f"{dockerfile}.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "*", "start from nothing: the context is the whole repository"
    assert "**/*.key" in rules and "**/*key*.pem" in rules
    admitted = [r[1:].rstrip("/") for r in rules if r.startswith("!")]
    for kind, rest in dockerfile_instructions(dockerfile):
        if kind != "COPY" or "--from" in rest:
            continue
        for source in rest.split()[:-1]:
            source = source.rstrip("*").rstrip("/")
            assert any(source == a or source.startswith(a + "/") for a in admitted), source


# --------------------------------------------------------------------------------------
# compose.yaml


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


INTERPOLATION = re.compile(r"\$\{(\w+)(?::?[-?]([^}]*))?\}")


def interpolate(text: str, values: Mapping[str, str] | None = None) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}``: ``values[VAR]``, else the default, else ''."""
    return INTERPOLATION.sub(lambda m: (values or {}).get(m[1], m[2] or ""), text)


def volume_targets(service: Mapping[str, Any]) -> dict[str, str]:
    """container path -> 'source[:mode]' for short-syntax volumes (``${...}`` kept in source)."""
    targets = {}
    for spec in service.get("volumes", []):
        source, target, *mode = re.split(r":(?![^{]*\})", spec)
        targets[target] = ":".join([source, *mode])
    return targets


def named_volume(source: str) -> bool:
    """Short-syntax source that names a volume (not a host path)."""
    return not source.startswith(("/", ".", "~", "$"))


def workers(compose: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    return ((n, s) for n, s in compose["services"].items() if n.startswith("worker"))


def enclave_arguments() -> list[str]:
    """The measured arguments of ``homolr ps``: the ``ps_args`` list set in the template."""
    tree = jinja2.Environment().parse(TEMPLATE.read_text())
    [value] = [
        n.node
        for n in tree.find_all(jinja2.nodes.Assign)
        if isinstance(n.target, jinja2.nodes.Name) and n.target.name == "ps_args"
    ]
    assert isinstance(value, jinja2.nodes.List), "ps_args must be a literal list"
    args = value.as_const()
    assert isinstance(args, list) and all(isinstance(a, str) for a in args)
    return args


def enclave_mount(path: str) -> dict[str, Any]:
    """The template's ``fs.mounts`` entry for ``path``, its variables as ``{{ name }}``."""
    [line] = [
        line.strip().rstrip(",")
        for line in TEMPLATE.read_text().splitlines()
        if line.strip().startswith("{") and f'path = "{path}"' in line
    ]
    mount: dict[str, Any] = tomllib.loads(f"m = {line}")["m"]
    return mount


def option(command: list[str], name: str) -> str:
    assert name in command, f"{name} missing from {command}"
    return command[command.index(name) + 1]


def test_ps_gets_the_sgx_devices_and_the_aesm_socket(compose: Mapping[str, Any]) -> None:
    ps = compose["services"]["ps"]
    devices = {d.split(":")[-1]: d.split(":")[0] for d in ps["devices"]}
    assert devices == {
        "/dev/sgx_enclave": "/dev/sgx_enclave",
        "/dev/sgx_provision": "/dev/sgx_provision",
    }
    assert volume_targets(ps)["/var/run/aesmd"] == "/var/run/aesmd"
    assert ps.get("privileged", "false") == "false" and "cap_add" not in ps


def test_ps_volumes_are_the_directories_the_enclave_mounts(compose: Mapping[str, Any]) -> None:
    defaults = makefile_defaults(GRAMINE_MAKEFILE)
    targets = volume_targets(compose["services"]["ps"])
    args = enclave_arguments()
    assert option(args, "--federation").startswith(enclave_mount("/federation")["path"] + "/")
    assert enclave_mount("/federation")["uri"] == "file:{{ federation_dir }}"
    assert targets[defaults["FEDERATION_DIR"]] == "./federation:ro", "inputs: read-only bind"
    sealed = targets[defaults["SEALED_DIR"]]
    assert named_volume(sealed), "sealed state lives in a named volume"
    assert "${HOMOLR_FEDERATION" in compose["volumes"][sealed]["name"], "one per federation"
    out = targets[defaults["OUT_DIR"]]
    assert "${HOMOLR_FEDERATION" in out and not out.endswith(":ro"), "outputs: one per federation"


def test_sealed_dir_is_an_encrypted_mount_keyed_to_mrenclave(compose: Mapping[str, Any]) -> None:
    args = enclave_arguments()
    mount = enclave_mount(option(args, "--sealed-dir"))
    assert mount == {
        "type": "encrypted",
        "path": "/sealed",
        "uri": "file:{{ sealed_dir }}",
        "key_name": "_sgx_mrenclave",
    }
    assert "-Dsealed_dir=$(SEALED_DIR)" in GRAMINE_MAKEFILE.read_text()
    assert "--resume" in args, "a restarted PS container must resume its sealed run"


def test_ps_port_and_healthcheck_match_the_measured_arguments(compose: Mapping[str, Any]) -> None:
    args = enclave_arguments()
    port = option(args, "--port")
    assert option(args, "--host") == "0.0.0.0"
    ps = compose["services"]["ps"]
    assert f"{port}:{port}" in ps["ports"]
    test = ps["healthcheck"]["test"]
    assert test[0] == "CMD" and port in " ".join(test)
    assert ps["build"]["dockerfile"] == "deploy/docker/Dockerfile"
    assert "enclave-key" in ps["build"]["secrets"]
    assert compose["secrets"]["enclave-key"]["file"].startswith("./secrets/")
    assert "command" not in ps and "entrypoint" not in ps, "the command line is the manifest's"


def test_restart_policies_follow_the_exit_statuses(compose: Mapping[str, Any]) -> None:
    """The PS stops for a decision (3 config, 4 join timeout, 5 paused, 6 attestation, 9 failed;
    restarting resumes); workers retry, since 5 and 7 heal when the PS is back and 3, 6, 8 end the
    same way every time."""
    assert compose["services"]["ps"]["restart"] == "no"
    for name, worker in workers(compose):
        assert re.fullmatch(r"on-failure:\d+", worker["restart"]), name
    source = (DOCKER / "compose.yaml").read_text()
    for status in ("3", "4", "5", "6", "7", "8", "9"):
        assert re.search(rf"\b{status} \(|\b{status} [a-z]", source), f"explain exit {status}"


def test_two_workers_wait_for_a_healthy_ps_and_verify_it(compose: Mapping[str, Any]) -> None:
    found = dict(workers(compose))
    assert len(found) >= 2
    ps_host = compose["services"]["ps"]["hostname"]
    ids = set()
    for name, worker in found.items():
        assert worker["depends_on"]["ps"]["condition"] == "service_healthy", name
        assert "devices" not in worker, f"{name}: workers need no SGX device"
        assert worker["build"]["dockerfile"] == "deploy/docker/Dockerfile.worker", name
        command = worker["command"]
        assert command[0] == "worker", name
        member = option(command, "--id")
        ids.add(member)
        assert option(command, "--attestation") == "dcap", name
        assert option(command, "--server").startswith(ps_host + ":"), name
        assert option(command, "--mrenclave") == "${HOMOLR_PS_MRENCLAVE:-}", "the published one"
        targets = volume_targets(worker)
        for flag, directory in (
            ("--federation", "/federation"),
            ("--train-set", "/data"),
            ("--cert", "/identity"),
            ("--key", "/identity"),
        ):
            path = option(command, flag)
            mount = next(t for t in targets if path == t or path.startswith(t + "/"))
            assert mount.startswith(directory) and targets[mount].endswith(":ro"), (name, flag)
            assert f"/{member}/" in targets[mount] or targets[mount].startswith(
                f"./members/{member}"
            )
        assert option(command, "--cert").endswith(f"/member-{member}.pem"), name
        assert option(command, "--key").endswith(f"/member-{member}.key"), name
    assert len(ids) == len(found), "each worker is another member"


def test_worker_state_dirs_are_persistent_volumes_of_their_own(compose: Mapping[str, Any]) -> None:
    """Replay protection only works if the state survives restarts: a named volume per member."""
    sources = []
    for name, worker in workers(compose):
        state = option(worker["command"], "--state-dir")
        source = volume_targets(worker)[state]
        assert named_volume(source) and source in compose["volumes"], (name, source)
        assert not source.endswith(":ro"), name
        sources.append(source)
    assert len(set(sources)) == len(sources), "members must not share a state volume"


def test_images_are_versioned_and_builds_exist(compose: Mapping[str, Any]) -> None:
    for name, service in compose["services"].items():
        assert pinned(service["image"]), f"{name}: {service['image']}"
        assert (REPO / service["build"]["dockerfile"]).is_file(), name
        assert (DOCKER / service["build"]["context"]).resolve() == REPO, name


def test_operator_and_member_files_stay_out_of_git() -> None:
    ignored = (DOCKER / ".gitignore").read_text().split()
    for path in ("secrets/", "federation/*", "!federation/README.md", "members/", "run/"):
        assert path in ignored, path
    assert "sgx_default_qcnl.conf" in ignored
    assert (DOCKER / "federation" / "README.md").is_file()


def _parse(command: list[str]) -> Any:
    """homolr's own parser on ``command`` (compose interpolation applied); SystemExit on error."""
    return build_parser().parse_args(
        [interpolate(w, {"HOMOLR_PS_MRENCLAVE": "ab" * 32}) for w in command]
    )


def test_commands_parse_with_homolr_s_own_parser(compose: Mapping[str, Any]) -> None:
    ps = _parse(["ps", *enclave_arguments()])
    assert ps.federation is not None and ps.attestation == "dcap" and not ps.insecure
    for name, worker in workers(compose):
        args = _parse(worker["command"])
        assert args.command == "worker" and args.attestation == "dcap", name
        assert args.cert and args.key and args.federation and args.mrenclave, name
        assert args.state_dir == Path(option(worker["command"], "--state-dir")), name


DOCUMENTED_COMMAND = re.compile(
    r"(?:\bhomolr|homolr-worker:[\w.]+)(?:\\\n|\s)+(ps|worker|keygen|init)\b((?:\\\n|[^`\n])*)"
)


def documented_options() -> dict[str, set[str]]:
    """Options used with ``homolr <command>`` in the deploy READMEs, compose and Makefile."""
    used: dict[str, set[str]] = {}
    files = [*REPO.glob("deploy/**/*.md"), DOCKER / "compose.yaml", GRAMINE_MAKEFILE]
    for path in files:
        for match in DOCUMENTED_COMMAND.finditer(path.read_text()):
            options = re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", match[2])
            used.setdefault(match[1], set()).update(options)
    return used


def help_options(command: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-m", "homolr", command, "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(re.findall(r"--[a-z][a-z0-9-]*", done.stdout))


def test_every_option_in_the_deploy_files_exists(compose: Mapping[str, Any]) -> None:
    used = documented_options()
    assert {"ps", "worker", "keygen", "init"} <= set(used), sorted(used)
    assert {"--federation", "--mrenclave", "--state-dir"} <= used["worker"]
    for _, worker in workers(compose):
        used["worker"] |= {w for w in worker["command"] if w.startswith("--")}
    used["ps"] |= {a for a in enclave_arguments() if a.startswith("--")}
    for command, options in used.items():
        unknown = options - help_options(command)
        assert unknown == set(), f"`homolr {command}` does not know {sorted(unknown)}"
