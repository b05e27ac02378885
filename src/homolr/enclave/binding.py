"""Binding of the parameter server's keys (and its federation) into the SGX report data.

The enclave writes the report data to Gramine's ``/dev/attestation/user_report_data`` before
reading its quote, so the quote's 64-byte ``report_data`` field commits to exactly these
values. A worker recomputes the value from what it received over the (pinned) TLS channel and
compares.

Exact definition (version 1)::

    report_data = SHA-512( DOMAIN
                           || u32_be(len(paillier_pk)) || paillier_pk
                           || u32_be(len(tls_spki))    || tls_spki )

    DOMAIN      = b"homolr/report-data/v1\\x00"
    paillier_pk = homolr.crypto.PublicKey.to_bytes()
    tls_spki    = DER SubjectPublicKeyInfo of the PS's TLS key

The length prefixes make the concatenation unambiguous (no pair of different key
encodings can produce the same hashed string) and the domain tag keeps these 64 bytes
from being valid report data for any other protocol using the same enclave. SHA-512's
output is exactly the 64 bytes of ``report_data``.

Exact definition (version 2, :func:`report_data_for_federation`), which also commits to the
federation the PS serves::

    report_data = SHA-512( DOMAIN_V2
                           || u32_be(len(paillier_pk)) || paillier_pk
                           || u32_be(len(tls_spki))    || tls_spki
                           || u32_be(32)               || federation_hash )

    DOMAIN_V2       = b"homolr/report-data/v2\x00"
    paillier_pk     = homolr.crypto.PublicKey.to_bytes()          (non-empty)
    tls_spki        = DER SubjectPublicKeyInfo of the PS's TLS key (non-empty)
    federation_hash = homolr.federation.federation_hash(federation), exactly 32 bytes
                      (SHA-256 of the federation's RFC 8785 canonical form)

A worker accepts the quote only if the federation hash in it is the hash of its own copy of
the federation file. The distinct domain tag means no v1 report data is valid v2 report data
and vice versa, whatever the keys.
"""

from __future__ import annotations

import hashlib
import struct

REPORT_DATA_DOMAIN = b"homolr/report-data/v1\x00"
REPORT_DATA_DOMAIN_V2 = b"homolr/report-data/v2\x00"
FEDERATION_HASH_SIZE = 32
_MAX_PART = 2**32 - 1


def _length_prefixed(part: bytes, name: str, function: str = "report_data_for") -> bytes:
    if not isinstance(part, bytes | bytearray):
        raise TypeError(f"{function}: {name} must be bytes, got {type(part).__name__}")
    if not part:
        raise ValueError(f"{function}: {name} is empty")
    if len(part) > _MAX_PART:
        raise ValueError(f"{function}: {name} longer than {_MAX_PART} bytes")
    return struct.pack(">I", len(part)) + bytes(part)


def report_data_for(paillier_public_key_bytes: bytes, tls_public_key_der: bytes) -> bytes:
    """Return the 64 bytes of SGX report data binding the PS's two public keys.

    Parameters
    ----------
    paillier_public_key_bytes
        ``PublicKey.to_bytes()`` of the PS's Paillier key.
    tls_public_key_der
        DER-encoded SubjectPublicKeyInfo of the PS's TLS certificate key
        (see :func:`homolr.enclave.tls.certificate_public_key_der`).

    Returns
    -------
    bytes
        ``SHA-512(DOMAIN || len || pk || len || spki)``, 64 bytes (see module docstring).
    """
    message = (
        REPORT_DATA_DOMAIN
        + _length_prefixed(paillier_public_key_bytes, "paillier_public_key_bytes")
        + _length_prefixed(tls_public_key_der, "tls_public_key_der")
    )
    return hashlib.sha512(message).digest()


def report_data_for_federation(
    paillier_public_key_bytes: bytes, tls_public_key_der: bytes, federation_hash: bytes
) -> bytes:
    """Return the 64 bytes of SGX report data binding the PS's keys and its federation.

    Parameters
    ----------
    paillier_public_key_bytes
        ``PublicKey.to_bytes()`` of the PS's Paillier key.
    tls_public_key_der
        DER-encoded SubjectPublicKeyInfo of the PS's TLS certificate key.
    federation_hash
        The 32-byte :func:`homolr.federation.federation_hash` of the federation it serves.

    Returns
    -------
    bytes
        ``SHA-512(DOMAIN_V2 || len || pk || len || spki || u32(32) || federation_hash)``, 64
        bytes (see module docstring).

    Raises
    ------
    TypeError
        when an argument is not bytes.
    ValueError
        when a key is empty or ``federation_hash`` is not exactly 32 bytes.
    """
    function = "report_data_for_federation"
    if isinstance(federation_hash, bytes | bytearray) and len(federation_hash) != (
        FEDERATION_HASH_SIZE
    ):
        raise ValueError(
            f"{function}: federation_hash must be {FEDERATION_HASH_SIZE} bytes, got "
            f"{len(federation_hash)}"
        )
    message = (
        REPORT_DATA_DOMAIN_V2
        + _length_prefixed(paillier_public_key_bytes, "paillier_public_key_bytes", function)
        + _length_prefixed(tls_public_key_der, "tls_public_key_der", function)
        + _length_prefixed(federation_hash, "federation_hash", function)
    )
    return hashlib.sha512(message).digest()


__all__ = [
    "FEDERATION_HASH_SIZE",
    "REPORT_DATA_DOMAIN",
    "REPORT_DATA_DOMAIN_V2",
    "report_data_for",
    "report_data_for_federation",
]
