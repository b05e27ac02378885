"""Static checks of deploy/docker: pinned versions, SGX devices, signing, consistency.

No Docker engine here, so the files are parsed and cross-checked instead of built:
Dockerfiles instruction by instruction, compose.yaml with PyYAML when it is installed and
otherwise with the small YAML-subset reader below (block mappings and sequences, quoted
and plain scalars, JSON-style flow sequences), which refuses anything outside that subset.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "deploy" / "docker"
GRAMINE_MAKEFILE = REPO / "deploy" / "gramine" / "Makefile"


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


def test_requirements_pin_every_runtime_dependency_with_hashes() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = requirement_pins(DOCKER / "requirements.txt")
    missing = {normalized_name(r) for r in project["dependencies"]} - set(pins)
    assert missing == set(), f"pyproject dependencies not pinned in requirements.txt: {missing}"
    build = requirement_pins(DOCKER / "requirements-build.txt")
    assert "setuptools" in build and "setuptools" not in pins


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


def volume_targets(service: Mapping[str, Any]) -> dict[str, str]:
    """container path -> 'source[:mode]' for short-syntax volumes."""
    targets = {}
    for spec in service.get("volumes", []):
        source, target, *mode = spec.split(":")
        targets[target] = ":".join([source, *mode])
    return targets


def workers(compose: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    return ((n, s) for n, s in compose["services"].items() if n.startswith("worker"))


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
    sealed = targets[defaults["SEALED_DIR"]]
    assert sealed in compose["volumes"], "sealed state lives in a named volume"
    assert defaults["OUT_DIR"] in targets


def test_ps_port_and_healthcheck_match_the_measured_arguments(compose: Mapping[str, Any]) -> None:
    ps_args = makefile_defaults(GRAMINE_MAKEFILE)["PS_ARGS"].split()
    port = ps_args[ps_args.index("--port") + 1]
    assert ps_args[ps_args.index("--host") + 1] == "0.0.0.0"
    ps = compose["services"]["ps"]
    assert f"{port}:{port}" in ps["ports"]
    test = ps["healthcheck"]["test"]
    assert test[0] == "CMD" and port in " ".join(test)
    assert ps["build"]["dockerfile"] == "deploy/docker/Dockerfile"
    assert "enclave-key" in ps["build"]["secrets"]
    assert compose["secrets"]["enclave-key"]["file"].startswith("./secrets/")


def test_two_workers_wait_for_a_healthy_ps_and_verify_it(compose: Mapping[str, Any]) -> None:
    found = dict(workers(compose))
    assert len(found) >= 2
    ps_host = compose["services"]["ps"]["hostname"]
    for name, worker in found.items():
        assert worker["depends_on"]["ps"]["condition"] == "service_healthy", name
        assert "devices" not in worker, f"{name}: workers need no SGX device"
        command = worker["command"]
        assert command[command.index("--attestation") + 1] == "dcap", name
        assert command[command.index("--server") + 1].startswith(ps_host + ":"), name
        assert "${HOMOLR_PS_MRENCLAVE:-}" in command, f"{name}: pin the published MRENCLAVE"
        targets = volume_targets(worker)
        assert targets["/data"].endswith(":ro") and targets["/certs"].endswith(":ro"), name
        assert worker["build"]["dockerfile"] == "deploy/docker/Dockerfile.worker", name


def test_images_are_versioned_and_builds_exist(compose: Mapping[str, Any]) -> None:
    for name, service in compose["services"].items():
        assert pinned(service["image"]), f"{name}: {service['image']}"
        assert (REPO / service["build"]["dockerfile"]).is_file(), name
        assert (DOCKER / service["build"]["context"]).resolve() == REPO, name


def test_operator_files_stay_out_of_git() -> None:
    ignored = (DOCKER / ".gitignore").read_text().split()
    for path in ("secrets/", "pki/", "workers/", "run/", "sgx_default_qcnl.conf"):
        assert path in ignored, path


def test_worker_commands_use_options_homolr_worker_knows(compose: Mapping[str, Any]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "homolr", "worker", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    known = set(re.findall(r"--[a-z][a-z0-9-]*", done.stdout))
    for name, service in workers(compose):
        used = {a for a in service["command"] if isinstance(a, str) and a.startswith("--")}
        assert used <= known, (
            f"{name} uses options `homolr worker` does not know: {sorted(used - known)}"
        )
        assert "--mrenclave" in used and "--cert" in used and "--key" in used, name
