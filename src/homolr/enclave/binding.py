"""Binding of the parameter server's keys into the SGX report data.

The enclave writes ``report_data_for(paillier_pk, tls_pk)`` to Gramine's
``/dev/attestation/user_report_data`` before reading its quote, so the quote's 64-byte
``report_data`` field commits to exactly these two public keys. A worker recomputes the
value from the keys it received over the (pinned) TLS channel and compares.

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
"""

from __future__ import annotations

import hashlib
import struct

REPORT_DATA_DOMAIN = b"homolr/report-data/v1\x00"
_MAX_PART = 2**32 - 1


def _length_prefixed(part: bytes, name: str) -> bytes:
    if not isinstance(part, bytes | bytearray):
        raise TypeError(f"report_data_for: {name} must be bytes, got {type(part).__name__}")
    if not part:
        raise ValueError(f"report_data_for: {name} is empty")
    if len(part) > _MAX_PART:
        raise ValueError(f"report_data_for: {name} longer than {_MAX_PART} bytes")
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


__all__ = ["REPORT_DATA_DOMAIN", "report_data_for"]
