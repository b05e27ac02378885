"""Member certificates: SPKI fingerprints and the checks a federation file applies to them.

A member *is* its key pair. The federation file lists each member's self-signed certificate and
the fingerprint of its public key::

    fingerprint = "sha256:" + hex(SHA-256(DER SubjectPublicKeyInfo of the certificate's key))

which is what ``openssl x509 -in member.pem -pubkey -noout | openssl pkey -pubin -outform DER |
sha256sum`` prints. The fingerprint names the key, not the certificate: a member who re-issues
its certificate with the same key keeps its fingerprint.

:func:`check_member_certificate` accepts only what the PS can use as a client-certificate trust
anchor for exactly one member: a single PEM certificate, self-signed (its signature verifies
with its own key), not a CA, with common name equal to the member id, a key and signature that
TLS accepts, and key usages that allow TLS client authentication but not signing certificates.
"""

from __future__ import annotations

import hashlib
import re

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from homolr.errors import ConfigError

#: Prefix of every fingerprint; the only hash this format knows.
FINGERPRINT_PREFIX = "sha256:"
#: SAN URI scheme that names the member in a member certificate.
MEMBER_URI_PREFIX = "homolr-member:"
#: Allowed member ids (also used in file names and URIs).
MEMBER_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")

_FINGERPRINT = re.compile(r"sha256:[0-9a-fA-F]{64}")
_PEM_BEGIN = "-----BEGIN CERTIFICATE-----"
_PEM_END = "-----END CERTIFICATE-----"
_EC_CURVES = ("secp256r1", "secp384r1", "secp521r1")
_MIN_RSA_BITS = 2048
_SIGNATURE_HASHES = (hashes.SHA256, hashes.SHA384, hashes.SHA512)


def validate_member_id(member_id: object) -> str:
    """Return ``member_id`` if it is a valid member id.

    Raises
    ------
    ConfigError
        unless it is a string matching ``[A-Za-z0-9][A-Za-z0-9_.-]{0,63}``.
    """
    if not isinstance(member_id, str) or not MEMBER_ID_PATTERN.fullmatch(member_id):
        raise ConfigError(
            f"member id {member_id!r}: expected 1-64 characters from letters, digits, '_', '.', "
            "'-', starting with a letter or digit"
        )
    return member_id


def normalize_fingerprint(fingerprint: object) -> str:
    """Return ``fingerprint`` as ``sha256:`` + 64 lower-case hex digits.

    Raises
    ------
    ConfigError
        unless it is ``sha256:`` followed by 64 hex digits (either case).
    """
    if not isinstance(fingerprint, str) or not _FINGERPRINT.fullmatch(fingerprint):
        raise ConfigError(
            f"fingerprint {fingerprint!r}: expected 'sha256:' followed by 64 hex digits"
        )
    return fingerprint.lower()


def load_certificate(certificate_pem: bytes | str) -> x509.Certificate:
    """Parse exactly one PEM certificate with nothing around it.

    Raises
    ------
    ConfigError
        when the text is not a single PEM ``CERTIFICATE`` block.
    """
    text = (
        certificate_pem.decode("ascii", "replace")
        if isinstance(certificate_pem, bytes)
        else certificate_pem
    )
    stripped = text.strip()
    if not (stripped.startswith(_PEM_BEGIN) and stripped.endswith(_PEM_END)):
        raise ConfigError(
            f"not a PEM certificate: expected text from {_PEM_BEGIN} to {_PEM_END} and nothing else"
        )
    try:
        certificates = x509.load_pem_x509_certificates(stripped.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as error:
        raise ConfigError(f"not a PEM certificate: {error}") from None
    if len(certificates) != 1:
        raise ConfigError(f"expected one PEM certificate, found {len(certificates)}")
    return certificates[0]


def spki_der(certificate: x509.Certificate) -> bytes:
    """DER SubjectPublicKeyInfo of the certificate's public key."""
    return certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def fingerprint_of(certificate: x509.Certificate) -> str:
    """``sha256:<hex>`` of the certificate's DER SubjectPublicKeyInfo."""
    return FINGERPRINT_PREFIX + hashlib.sha256(spki_der(certificate)).hexdigest()


def spki_fingerprint(certificate_pem: bytes | str) -> str:
    """Return ``"sha256:"`` + 64 lower-case hex digits of SHA-256 over the DER SPKI.

    Raises
    ------
    ConfigError
        when ``certificate_pem`` is not a single PEM certificate.
    """
    return fingerprint_of(load_certificate(certificate_pem))


def certificate_pem_text(certificate: x509.Certificate) -> str:
    """The certificate's normalized PEM: 64-column base64, ``\\n`` line ends, one final ``\\n``."""
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


def check_member_certificate(certificate_pem: bytes | str, member_id: str) -> x509.Certificate:
    """Parse ``certificate_pem`` and check that it can stand for member ``member_id``.

    Checks: one PEM certificate; self-signed (issuer equals subject and the signature verifies
    with the certificate's own key); BasicConstraints, when present, says ``ca=False``; exactly
    one common name, equal to ``member_id``; every ``homolr-member:`` SAN URI names
    ``member_id``; an EC key on P-256/P-384/P-521 or an RSA key of at least 2048 bits; a
    SHA-2 signature; KeyUsage present, with digitalSignature and without keyCertSign;
    ExtendedKeyUsage (when present) allows clientAuth.

    Why KeyUsage is required: as a client-certificate trust anchor, gRPC's TLS (BoringSSL,
    grpcio 1.85.3) ignores the anchor's BasicConstraints, so a ``ca=False`` member certificate
    still lets the member's key sign *other* client certificates that the handshake accepts --
    unless the anchor has a KeyUsage without keyCertSign. (The PS also maps every peer to a
    member by its key, :func:`homolr.enclave.identity.peer_member_id`; this keeps the TLS
    layer tight as well.)

    Returns
    -------
    cryptography.x509.Certificate
        The parsed certificate.

    Raises
    ------
    ConfigError
        naming the first check that fails.
    """
    certificate = load_certificate(certificate_pem)
    _check_key(certificate)
    _check_self_signed(certificate)
    _check_not_ca(certificate)
    _check_names(certificate, member_id)
    _check_usages(certificate)
    return certificate


def _check_self_signed(certificate: x509.Certificate) -> None:
    hash_algorithm = certificate.signature_hash_algorithm
    if not isinstance(hash_algorithm, _SIGNATURE_HASHES):
        name = hash_algorithm.name if hash_algorithm is not None else "none"
        raise ConfigError(f"certificate signed with hash {name}: expected SHA-256, -384 or -512")
    if certificate.issuer != certificate.subject:
        raise ConfigError(
            f"certificate is not self-signed: issuer {certificate.issuer.rfc4514_string()!r} "
            f"differs from subject {certificate.subject.rfc4514_string()!r}; a member makes its "
            "own certificate (homolr keygen), nobody issues it"
        )
    try:
        certificate.verify_directly_issued_by(certificate)
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        raise ConfigError(
            "certificate is not self-signed: its signature does not verify with its own public key"
        ) from None


def _check_not_ca(certificate: x509.Certificate) -> None:
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        return
    if constraints.value.ca:
        raise ConfigError(
            "certificate is a CA certificate (BasicConstraints ca=True): a member certificate "
            "must be a leaf (ca=False), or it could vouch for other keys"
        )


def _check_names(certificate: x509.Certificate, member_id: str) -> None:
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    values = [name.value if isinstance(name.value, str) else name.value.decode() for name in names]
    if values != [member_id]:
        raise ConfigError(
            f"certificate common name {values[0]!r} differs from the member id {member_id!r}"
            if len(values) == 1
            else f"certificate has {len(values)} common names, expected exactly one: {member_id!r}"
        )
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return
    for uri in san.value.get_values_for_type(x509.UniformResourceIdentifier):
        if uri.startswith(MEMBER_URI_PREFIX) and uri != MEMBER_URI_PREFIX + member_id:
            raise ConfigError(
                f"certificate SAN URI {uri!r} names another member than {member_id!r}"
            )


def _check_key(certificate: x509.Certificate) -> None:
    key = certificate.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in _EC_CURVES:
        return
    if isinstance(key, rsa.RSAPublicKey) and key.key_size >= _MIN_RSA_BITS:
        return
    described = (
        f"EC {key.curve.name}"
        if isinstance(key, ec.EllipticCurvePublicKey)
        else f"RSA {key.key_size}-bit"
        if isinstance(key, rsa.RSAPublicKey)
        else type(key).__name__
    )
    raise ConfigError(
        f"certificate key {described}: expected EC P-256, P-384 or P-521, or RSA >= "
        f"{_MIN_RSA_BITS} bits"
    )


def _check_usages(certificate: x509.Certificate) -> None:
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        raise ConfigError(
            "certificate has no KeyUsage extension: a member certificate needs KeyUsage "
            "digitalSignature without keyCertSign, or TLS accepts certificates its key signs"
        ) from None
    if not usage.digital_signature:
        raise ConfigError(
            "certificate KeyUsage lacks digitalSignature: TLS would refuse it as a client "
            "certificate"
        )
    if usage.key_cert_sign:
        raise ConfigError(
            "certificate KeyUsage allows keyCertSign: TLS would accept certificates its key "
            "signs as this member's"
        )
    try:
        extended = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return
    if ExtendedKeyUsageOID.CLIENT_AUTH not in extended:
        raise ConfigError(
            "certificate ExtendedKeyUsage lacks clientAuth: TLS would refuse it as a client "
            "certificate"
        )


__all__ = [
    "FINGERPRINT_PREFIX",
    "MEMBER_ID_PATTERN",
    "MEMBER_URI_PREFIX",
    "certificate_pem_text",
    "check_member_certificate",
    "fingerprint_of",
    "load_certificate",
    "normalize_fingerprint",
    "spki_der",
    "spki_fingerprint",
    "validate_member_id",
]
