"""Sealed state of the parameter server: atomic JSON documents in a sealed directory.

The PS checkpoints after every aggregated round (private key, model, round, plan,
worker set) so that ``homolr ps --resume`` can continue. :class:`SealedStore` writes
each document atomically: a temporary file in the same directory (created 0600),
flushed and fsync'ed, then ``os.replace``'d over the old one, then the directory is
fsync'ed. A crash therefore leaves either the old or the new document, never a torn one.

Sealing itself is done by the file system, not by this module. Under Gramine the
directory is an *encrypted mount* keyed to the enclave measurement::

    fs.mounts = [
      { type = "encrypted", path = "/sealed", uri = "file:sealed", key_name = "_sgx_mrenclave" },
    ]

so every file written there is transparently encrypted and integrity-protected with a
key only the same enclave build (same MRENCLAVE) on the same CPU can derive. Outside SGX
(development mode) the files are **plain JSON on disk, including the private key**; the
caller must warn about that.

No pickle: documents are JSON, big integers are lower-case hex strings.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import gmpy2

from homolr.crypto import PrivateKey, PublicKey
from homolr.errors import ConfigError, DataError, HomolrError
from homolr.files import fsync_directory, write_atomically

PRIVATE_KEY_FORMAT = "homolr-paillier-private-key"
PRIVATE_KEY_VERSION = 1

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_FILE_MODE = 0o600
_DIR_MODE = 0o700


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name.endswith(".tmp"):
        raise ConfigError(
            f"sealed document name {name!r}: expected letters, digits, '_', '.', '-' "
            "(1-128 characters, not starting with a dot, not ending in .tmp)"
        )
    return name


class SealedStore:
    """Named JSON documents stored atomically in a (sealed) directory.

    Parameters
    ----------
    directory
        The sealed directory; created (mode 0700) when missing.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        try:
            self.directory.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
        except OSError as error:
            raise ConfigError(f"sealed directory {self.directory}: {error}") from None
        if not self.directory.is_dir():
            raise ConfigError(f"sealed directory {self.directory}: not a directory")

    def path_for(self, name: str) -> Path:
        """Return the file that holds document ``name`` (``<directory>/<name>.json``)."""
        return self.directory / f"{_check_name(name)}.json"

    def save(self, name: str, document: dict[str, Any]) -> Path:
        """Atomically write ``document`` as JSON under ``name``; return the file path.

        Raises
        ------
        ConfigError
            on an invalid name.
        DataError
            when ``document`` is not JSON-serialisable (e.g. NaN, bytes, numpy types).
        OSError
            when the directory is not writable (the old document is left intact).
        """
        target = self.path_for(name)
        try:
            text = json.dumps(document, sort_keys=True, allow_nan=False, indent=1)
        except (TypeError, ValueError) as error:
            raise DataError(f"{target}: document is not JSON-serialisable: {error}") from None
        write_atomically(target, (text + "\n").encode("utf-8"), _FILE_MODE)
        return target

    def load(self, name: str) -> dict[str, Any] | None:
        """Return document ``name``, or None when it was never saved.

        Raises
        ------
        DataError
            naming the file (and line/column) when its content is not a JSON object.
        """
        path = self.path_for(name)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as error:
            raise DataError(f"{path}: cannot read sealed document: {error}") from None
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            raise DataError(
                f"{path}, line {error.lineno}, column {error.colno}: corrupt JSON: {error.msg}"
            ) from None
        if not isinstance(document, dict):
            raise DataError(
                f"{path}: expected a JSON object at top level, got {type(document).__name__}"
            )
        return document

    def delete(self, name: str) -> bool:
        """Remove document ``name``; return True when it existed."""
        path = self.path_for(name)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        fsync_directory(self.directory)
        return True


def private_key_to_document(private_key: PrivateKey) -> dict[str, Any]:
    """Encode a Paillier private key as a JSON-ready dict (hex integers).

    Returns
    -------
    dict
        ``{"format", "version", "n", "hs", "p", "q"}``; integers as lower-case hex.
    """
    public_key = private_key.public_key
    return {
        "format": PRIVATE_KEY_FORMAT,
        "version": PRIVATE_KEY_VERSION,
        "n": format(int(public_key.n), "x"),
        "hs": format(int(public_key.hs), "x"),
        "p": format(int(private_key.p), "x"),
        "q": format(int(private_key.q), "x"),
    }


def _hex_field(document: dict[str, Any], field: str) -> int:
    value = document.get(field)
    if not isinstance(value, str) or not value:
        raise DataError(f"private key document: field {field!r} must be a non-empty hex string")
    try:
        number = int(value, 16)
    except ValueError:
        raise DataError(
            f"private key document: field {field!r} is not hex: {value[:20]!r}"
        ) from None
    if number <= 1:
        raise DataError(f"private key document: field {field!r} must be > 1, got {number}")
    return number


def private_key_from_document(document: dict[str, Any]) -> PrivateKey:
    """Decode :func:`private_key_to_document` output, validating ``p * q == n``.

    Raises
    ------
    DataError
        on a wrong format/version, a missing or non-hex field, or inconsistent factors.
    """
    if not isinstance(document, dict):
        raise DataError(f"private key document: expected an object, got {type(document).__name__}")
    if document.get("format") != PRIVATE_KEY_FORMAT:
        raise DataError(
            f"private key document: field 'format' must be {PRIVATE_KEY_FORMAT!r}, "
            f"got {document.get('format')!r}"
        )
    if document.get("version") != PRIVATE_KEY_VERSION:
        raise DataError(
            f"private key document: field 'version' must be {PRIVATE_KEY_VERSION}, "
            f"got {document.get('version')!r}"
        )
    n, hs, p, q = (_hex_field(document, field) for field in ("n", "hs", "p", "q"))
    if gmpy2.mpz(p) * gmpy2.mpz(q) != gmpy2.mpz(n):
        raise DataError("private key document: p * q != n (factors do not match the modulus)")
    try:
        return PrivateKey(PublicKey(n, hs), p, q)
    except (HomolrError, ValueError, ArithmeticError) as error:
        raise DataError(f"private key document: rejected by homolr.crypto: {error}") from None


__all__ = [
    "PRIVATE_KEY_FORMAT",
    "SealedStore",
    "private_key_from_document",
    "private_key_to_document",
]
