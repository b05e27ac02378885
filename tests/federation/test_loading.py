"""Loading federation files: every failure names the file, TOML errors their line and column."""

from __future__ import annotations

from pathlib import Path

import pytest

from homolr.errors import ConfigError
from homolr.federation import MAX_FEDERATION_BYTES, load_federation, parse_federation
from tests.federation.support import Document, parse, to_toml


def _write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "federation.toml"
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return path


def test_load_reads_the_file(tmp_path: Path, document: Document) -> None:
    path = _write(tmp_path, to_toml(document))
    assert load_federation(path) == parse(document)
    assert load_federation(str(path)) == parse(document)


def test_toml_syntax_error_names_file_line_and_column(tmp_path: Path, document: Document) -> None:
    lines = to_toml(document).splitlines()
    lines.insert(2, "iterations 400")  # line 3: missing '='
    path = _write(tmp_path, "\n".join(lines))
    with pytest.raises(ConfigError) as info:
        load_federation(path)
    message = str(info.value)
    assert message.startswith(f"{path}: not valid TOML: ")
    assert "line 3, column 12" in message


def test_duplicate_keys_are_a_toml_error(document: Document) -> None:
    text = to_toml(document).replace("version = 1", "version = 1\nversion = 1")
    with pytest.raises(ConfigError, match=r"fed: not valid TOML: .*line 2"):
        parse_federation(text, "fed")


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError, match=f"cannot read federation file {path}: No such file"):
        load_federation(path)


def test_directory_is_not_a_federation_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"cannot read federation file {tmp_path}"):
        load_federation(tmp_path)


def test_non_utf8_names_byte_and_line(tmp_path: Path, document: Document) -> None:
    data = to_toml(document).encode().replace(b'"wisconsin"', b'"wisc\xf6nsin"')
    offset = data.index(b"\xf6")
    assert data[:offset].count(b"\n") == 1
    path = _write(tmp_path, data)
    with pytest.raises(ConfigError, match=f"{path}: not UTF-8 \\(byte {offset}, line 2\\)"):
        load_federation(path)


def test_oversized_file_is_refused(tmp_path: Path, document: Document) -> None:
    text = to_toml(document) + "#" * MAX_FEDERATION_BYTES
    with pytest.raises(ConfigError, match="larger than 1048576 bytes"):
        load_federation(_write(tmp_path, text))


def test_deep_nesting_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"fed: not valid TOML: .*nested too deeply"):
        parse_federation("a = " + "[" * 100_000 + "]" * 100_000, "fed")
