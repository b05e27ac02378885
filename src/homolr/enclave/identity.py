"""Member identities: key pairs the members make themselves, admitted by the federation file.

A member of a consortium is its key pair. ``homolr keygen --id <id>`` runs
:func:`generate_member_identity` on the member's own machine: a fresh EC P-256 key and a
self-signed, non-CA certificate for ``CN=<id>`` (SAN URI ``homolr-member:<id>``). The member
keeps the private key (:func:`write_member_identity`, mode 0600) and sends the
:func:`federation_member_snippet` -- id, fingerprint of the public key, certificate -- to the
consortium, which pastes it into the federation file. Nobody else, the PS operator included,
can make a certificate that passes for the member, because nobody else has its key.

The PS uses the federation file twice (this is the CCF pattern: members register certificates,
operators run nodes but cannot mint members):

* TLS: :func:`member_trust_bundle` is the ``root_certificates`` of
  ``grpc.ssl_server_credentials(..., require_client_auth=True)``, so the handshake fails for a
  client whose certificate is not signed by one of the members' keys.
* Per call: :func:`peer_member_id` maps the peer's certificate to the member whose key
  fingerprint it carries, and refuses anything else; the common name is never trusted.

Why both. Measured with grpcio 1.85.3 (BoringSSL): as a trust anchor, a member certificate's
BasicConstraints ``ca=False`` is ignored, and the handshake accepts a leaf that the member's key
signed for *another* key -- unless the anchor carries a KeyUsage without keyCertSign. The
federation file therefore only admits certificates with such a KeyUsage
(:func:`~homolr.federation.certificates.check_member_certificate`), which makes the handshake
refuse those leaves, and :func:`peer_member_id` refuses them again per call.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from homolr.enclave.tls import _key_pem, _new_key, self_signed_certificate
from homolr.errors import ConfigError, PolicyError
from homolr.federation.certificates import (
    MEMBER_URI_PREFIX,
    check_member_certificate,
    fingerprint_of,
    spki_fingerprint,
    validate_member_id,
)
from homolr.federation.template import federation_member_snippet
from homolr.files import write_atomically

if TYPE_CHECKING:
    from homolr.federation.schema import Federation

#: Default validity of a member certificate (825 days, the CA/Browser Forum's former maximum).
MEMBER_CERTIFICATE_DAYS = 825
_KEY_MODE = 0o600
_CERT_MODE = 0o644


class MemberIdentity(NamedTuple):
    """A member's key pair: PEM private key (PKCS#8), self-signed PEM certificate, fingerprint."""

    private_key_pem: bytes
    certificate_pem: bytes
    fingerprint: str


def generate_member_identity(
    member_id: str, *, days: int = MEMBER_CERTIFICATE_DAYS
) -> MemberIdentity:
    """Make a member's key pair and self-signed client certificate.

    The key is EC P-256. The X.509 v3 certificate has subject = issuer = ``CN=<member_id>``, SAN
    URI ``homolr-member:<member_id>``, BasicConstraints ``ca=False`` (critical), KeyUsage
    digitalSignature (critical), ExtendedKeyUsage clientAuth and a SubjectKeyIdentifier; it is
    valid from 5 minutes ago (clock skew) for ``days`` days.

    Raises
    ------
    ConfigError
        for an invalid member id or ``days < 1``.
    """
    validate_member_id(member_id)
    key = _new_key("P-256")
    certificate = self_signed_certificate(
        key,
        member_id,
        [x509.UniformResourceIdentifier(MEMBER_URI_PREFIX + member_id)],
        ExtendedKeyUsageOID.CLIENT_AUTH,
        days,
    )
    return MemberIdentity(
        private_key_pem=_key_pem(key),
        certificate_pem=certificate.public_bytes(serialization.Encoding.PEM),
        fingerprint=fingerprint_of(certificate),
    )


def member_file_names(member_id: str) -> tuple[str, str]:
    """File names of a member's certificate and key: ``member-<id>.pem``, ``member-<id>.key``."""
    validate_member_id(member_id)
    return f"member-{member_id}.pem", f"member-{member_id}.key"


def write_member_identity(
    identity: MemberIdentity, out_dir: Path, member_id: str, *, overwrite: bool = False
) -> tuple[Path, Path]:
    """Write a member's certificate (0644) and private key (0600, atomically) to ``out_dir``.

    Returns
    -------
    tuple of Path
        ``(certificate path, private key path)``.

    Raises
    ------
    ConfigError
        when ``identity`` is not a valid identity of ``member_id`` (certificate, fingerprint
        and key must belong together), or when the key file exists and ``overwrite`` is False:
        replacing a member's key silently would lock it out of its federation.
    """
    _check_identity(identity, member_id)
    out_dir = Path(out_dir)
    cert_name, key_name = member_file_names(member_id)
    key_path, cert_path = out_dir / key_name, out_dir / cert_name
    if key_path.exists() and not overwrite:
        raise ConfigError(
            f"{key_path} exists: refusing to replace member {member_id!r}'s private key (the "
            "federation file lists the old key's fingerprint); pass overwrite to replace it"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    write_atomically(key_path, identity.private_key_pem, _KEY_MODE)
    write_atomically(cert_path, identity.certificate_pem, _CERT_MODE)
    return cert_path, key_path


def _check_identity(identity: MemberIdentity, member_id: str) -> None:
    certificate = check_member_certificate(identity.certificate_pem, member_id)
    if fingerprint_of(certificate) != identity.fingerprint:
        raise ConfigError(
            f"member {member_id!r}: fingerprint {identity.fingerprint} is not that of its "
            "certificate's key"
        )
    try:
        key = serialization.load_pem_private_key(identity.private_key_pem, password=None)
    except (ValueError, TypeError) as error:
        raise ConfigError(f"member {member_id!r}: private key is not PEM: {error}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        raise ConfigError(f"member {member_id!r}: private key does not match the certificate")


def member_trust_bundle(federation: Federation) -> bytes:
    """The members' certificates, concatenated PEM, sorted by member id.

    Pass it as ``root_certificates`` to ``grpc.ssl_server_credentials(...,
    require_client_auth=True)``: the TLS handshake then refuses every client certificate not
    signed by a member's key. Always pair it with :func:`peer_member_id` per call.
    """
    if not federation.members:
        raise ConfigError(f"federation {federation.name!r} lists no members")
    return b"".join(member.certificate_pem for member in federation.members)


def peer_member_id(auth_context: Mapping[str, object], federation: Federation) -> str:
    """Return the id of the member whose key the TLS peer's certificate carries.

    Parameters
    ----------
    auth_context
        grpc's ``context.auth_context()``; its ``x509_pem_cert`` entry is the peer's leaf
        certificate (grpc verified the handshake against :func:`member_trust_bundle`).
    federation
        The PS's federation.

    Raises
    ------
    PolicyError
        when the peer presented no certificate, or its key's fingerprint is not a member's
        (``peer certificate sha256:... is not a member of federation '<name>'``).
    """
    pem = _first_bytes(auth_context.get("x509_pem_cert"))
    if pem is None:
        raise PolicyError(
            f"peer presented no client certificate; federation {federation.name!r} admits only "
            "its members"
        )
    try:
        fingerprint = spki_fingerprint(pem)
    except ConfigError as error:
        raise PolicyError(f"peer certificate is unusable: {error}") from None
    member = federation.member_by_fingerprint(fingerprint)
    if member is None:
        raise PolicyError(
            f"peer certificate {fingerprint} is not a member of federation {federation.name!r}"
        )
    return member.id


def _first_bytes(values: object) -> bytes | None:
    if isinstance(values, bytes | str):
        values = [values]
    if not isinstance(values, Iterable):
        return None
    for value in values:
        if isinstance(value, str):
            return value.encode()
        if isinstance(value, bytes):
            return value
    return None


__all__ = [
    "MEMBER_CERTIFICATE_DAYS",
    "MEMBER_URI_PREFIX",
    "MemberIdentity",
    "federation_member_snippet",
    "generate_member_identity",
    "member_file_names",
    "member_trust_bundle",
    "peer_member_id",
    "spki_fingerprint",
    "write_member_identity",
]
