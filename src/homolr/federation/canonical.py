"""The canonical form of a federation and its hash, the value the enclave's quote binds.

Definition (format version 1)::

    canonical_bytes(fed) = JCS(fed.to_document())          RFC 8785, UTF-8
    federation_hash(fed) = SHA-256(canonical_bytes(fed))   32 bytes

``fed.to_document()`` is the *normalized* document: a JSON object with every key of the schema
(defaults filled in), float fields as numbers (``2.0`` is written ``2``), ``min_workers`` equal
to the number of members under policy ``all``, ``privacy`` null when there is no ``[privacy]``
table (and ``epsilon``/``noise_multiplier``/``model_bound`` null when not given), members sorted
by id, each certificate as its PEM re-encoded from DER (64-column base64, ``\\n`` line ends, one
final ``\\n``) and each fingerprint in lower case. So comments, key order, whitespace, PEM line
wrapping and explicitly written defaults do not change the hash; any change of meaning does.

The PS sends ``canonical_bytes`` to workers; :func:`federation_from_canonical` reads it back with
the same validation as a TOML file and refuses any byte string that is not exactly canonical.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from homolr.errors import ConfigError, ProtocolError
from homolr.federation.jcs import canonicalize
from homolr.federation.schema import Federation, federation_from_document

#: Size of :func:`federation_hash`.
FEDERATION_HASH_SIZE = 32
#: Largest federation document read, as TOML file or canonical JSON (about 1000 members).
MAX_FEDERATION_BYTES = 1 << 20


def canonical_bytes(federation: Federation) -> bytes:
    """RFC 8785 (JCS) bytes of the normalized federation document (see module docstring)."""
    return canonicalize(federation.to_document())


def federation_hash(federation: Federation) -> bytes:
    """SHA-256 of :func:`canonical_bytes`: the 32 bytes the enclave's quote binds."""
    return hashlib.sha256(canonical_bytes(federation)).digest()


def federation_hash_hex(federation: Federation) -> str:
    """:func:`federation_hash` as 64 lower-case hex digits, for display and comparison."""
    return federation_hash(federation).hex()


def federation_from_canonical(data: bytes, source: str) -> Federation:
    """Read a federation from its canonical bytes (as the PS sends them to workers).

    The document is validated exactly like a TOML federation file, and its re-serialization
    must give back ``data`` byte for byte.

    Parameters
    ----------
    data
        UTF-8 JSON, as produced by :func:`canonical_bytes`.
    source
        Who sent it (e.g. ``"the PS at host:port"``); starts every error message.

    Raises
    ------
    ProtocolError
        when ``data`` is not UTF-8 JSON, breaks a federation rule (the message names the field
        as for a file), or is not in canonical form.
    """
    if len(data) > MAX_FEDERATION_BYTES:
        raise ProtocolError(
            f"{source}: federation document of {len(data)} bytes exceeds {MAX_FEDERATION_BYTES}"
        )
    try:
        document = json.loads(
            data.decode("utf-8"),
            object_pairs_hook=_no_duplicates,
            parse_constant=_no_constants,
        )
    except (UnicodeDecodeError, ValueError) as error:
        raise ProtocolError(f"{source}: federation document is not UTF-8 JSON: {error}") from None
    except RecursionError:
        raise ProtocolError(f"{source}: federation document is nested too deeply") from None
    if not isinstance(document, dict):
        raise ProtocolError(f"{source}: federation document is not a JSON object")
    try:
        federation = federation_from_document(_drop_nulls(document), source)
    except ConfigError as error:
        raise ProtocolError(str(error)) from None
    if canonical_bytes(federation) != data:
        raise ProtocolError(
            f"{source}: federation document is valid but not in canonical form (RFC 8785 JSON of "
            "the normalized document); refusing it, since its hash would not be the one bound"
        )
    return federation


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _no_constants(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _drop_nulls(value: Any) -> Any:
    """Remove null members of objects (the canonical form writes absent optionals as null)."""
    if isinstance(value, Mapping):
        return {key: _drop_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_drop_nulls(item) for item in value]
    return value


__all__ = [
    "FEDERATION_HASH_SIZE",
    "MAX_FEDERATION_BYTES",
    "canonical_bytes",
    "federation_from_canonical",
    "federation_hash",
    "federation_hash_hex",
]
