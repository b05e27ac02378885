"""Helpers for federation tests: documents as dicts, a tiny TOML writer, certificate factory."""

from __future__ import annotations

import copy
import datetime
import json
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from homolr.enclave.identity import MemberIdentity
from homolr.federation import Federation, parse_federation

SOURCE = "fed.toml"

#: The member identities the fixtures make, by member id.
Identities = dict[str, MemberIdentity]
#: A valid record-level [privacy] table.
RECORD = {
    "level": "record",
    "epsilon": 2.0,
    "delta": 1e-5,
    "clip": 2.5,
    "model_bound": 10.0,
    "min_samples": 200,
}
Document = dict[str, Any]


def base_document(identities: Mapping[str, MemberIdentity], ids: Sequence[str] = ()) -> Document:
    """A minimal valid federation document with the members ``ids`` (default: all)."""
    chosen = list(ids) or list(identities)
    return {
        "version": 1,
        "name": "wisconsin",
        "validation": {"features": ["x0", "x1"]},
        "members": [member_entry(member_id, identities[member_id]) for member_id in chosen],
    }


def member_entry(member_id: str, identity: MemberIdentity) -> dict[str, str]:
    return {
        "id": member_id,
        "fingerprint": identity.fingerprint,
        "certificate": identity.certificate_pem.decode(),
    }


def with_changes(document: Document, **sections: Any) -> Document:
    """A deep copy of ``document`` with tables merged in (``plan={...}``) or keys replaced."""
    changed = copy.deepcopy(document)
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(changed.get(key), dict):
            changed[key] = {**changed[key], **value}
        else:
            changed[key] = value
    return changed


def scalar(value: object) -> str:
    """A TOML literal, written independently of homolr's own template code."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        if "\n" in value:
            return '"""\n' + value + '"""'
        return json.dumps(value)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(scalar(item) for item in value) + "]"
    raise TypeError(type(value))


def to_toml(document: Mapping[str, Any]) -> str:
    """Top-level scalars, then ``[tables]``, then ``[[arrays of tables]]``."""
    lines: list[str] = []
    tables: list[tuple[str, Mapping[str, Any]]] = []
    arrays: list[tuple[str, list[Mapping[str, Any]]]] = []
    for key, value in document.items():
        if isinstance(value, dict):
            tables.append((key, value))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            arrays.append((key, value))
        else:
            lines.append(f"{key} = {scalar(value)}")
    for key, table in tables:
        lines.append(f"\n[{key}]")
        lines += [f"{name} = {scalar(value)}" for name, value in table.items()]
    for key, entries in arrays:
        for entry in entries:
            lines.append(f"\n[[{key}]]")
            lines += [f"{name} = {scalar(value)}" for name, value in entry.items()]
    return "\n".join(lines) + "\n"


def parse(document: Mapping[str, Any]) -> Federation:
    return parse_federation(to_toml(document), SOURCE)


def pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def make_certificate(
    common_name: str | Sequence[str],
    *,
    key: ec.EllipticCurvePrivateKey | Any | None = None,
    signer: CertificateIssuerPrivateKeyTypes | None = None,
    issuer: x509.Name | None = None,
    ca: bool | None = False,
    san_uri: str | None = None,
    key_usage: bool | None = True,
    cert_sign: bool | None = None,
    client_auth: bool | None = True,
    authority_key_id: x509.AuthorityKeyIdentifier | None = None,
    hash_algorithm: hashes.HashAlgorithm | None = None,
) -> tuple[x509.Certificate, Any]:
    """A certificate with every property a federation check looks at under the caller's control.

    Returns the certificate and its subject key (``key`` or a fresh EC P-256 key).
    """
    subject_key = key if key is not None else ec.generate_private_key(ec.SECP256R1())
    names = [common_name] if isinstance(common_name, str) else list(common_name)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name) for name in names])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer if issuer is not None else subject)
        .public_key(subject_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
    )
    if ca is not None:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True
        )
    if san_uri is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(san_uri)]), critical=False
        )
    if key_usage is not None:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=key_usage,
                content_commitment=False,
                key_encipherment=not key_usage,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=bool(ca) if cert_sign is None else cert_sign,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    if client_auth is not None:
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client_auth else ExtendedKeyUsageOID.SERVER_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if authority_key_id is not None:
        builder = builder.add_extension(authority_key_id, critical=False)
    signing_key = signer if signer is not None else subject_key
    algorithm = None if _is_edwards(signing_key) else (hash_algorithm or hashes.SHA256())
    return builder.sign(signing_key, algorithm), subject_key


def _is_edwards(key: object) -> bool:
    from cryptography.hazmat.primitives.asymmetric import ed448, ed25519

    return isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey)


def key_pem(key: Any) -> bytes:
    return bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
