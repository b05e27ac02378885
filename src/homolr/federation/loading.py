"""Reading a federation file (TOML, parsed with the standard library's ``tomllib``)."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from homolr.errors import ConfigError
from homolr.federation.canonical import MAX_FEDERATION_BYTES
from homolr.federation.schema import Federation, federation_from_document


def parse_federation(text: str, source: str) -> Federation:
    """Parse and validate federation TOML.

    Parameters
    ----------
    text
        The file's content.
    source
        The file name; starts every error message.

    Raises
    ------
    ConfigError
        for invalid TOML (with the line and column ``tomllib`` reports) or any broken rule of
        the schema (naming the field, see :mod:`homolr.federation.schema`).
    """
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{source}: not valid TOML: {error}") from None
    except RecursionError:
        raise ConfigError(f"{source}: not valid TOML: arrays or tables nested too deeply") from None
    return federation_from_document(document, source)


def load_federation(path: str | os.PathLike[str]) -> Federation:
    """Read, parse and validate the federation file at ``path``.

    Raises
    ------
    ConfigError
        naming the file when it cannot be read, is larger than 1 MiB, is not UTF-8, is not
        valid TOML (line and column) or breaks a rule of the schema (field path).
    """
    path = Path(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FEDERATION_BYTES + 1)
    except OSError as error:
        raise ConfigError(f"cannot read federation file {path}: {error.strerror}") from None
    if len(data) > MAX_FEDERATION_BYTES:
        raise ConfigError(f"{path}: federation file larger than {MAX_FEDERATION_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise ConfigError(f"{path}: not UTF-8 (byte {error.start}, line {line})") from None
    return parse_federation(text, str(path))


__all__ = ["load_federation", "parse_federation"]
