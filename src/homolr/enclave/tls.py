"""TLS identities for the gRPC channel: the attested server key and certificate pinning.

Server side. Inside the enclave the PS generates a fresh EC key and a self-signed
certificate (:func:`generate_server_identity`); the SubjectPublicKeyInfo of that key is
bound into the quote's report data (:mod:`homolr.enclave.binding`). Workers do not need
a CA for the server: they *pin* its certificate.

How a worker learns the certificate safely. :func:`fetch_server_certificate` performs a
TLS handshake **without verification** to read the server's certificate (trust on first
use), then the worker opens a gRPC channel that trusts only that certificate
(:func:`pinned_channel_credentials` + :data:`CHANNEL_OPTIONS`), asks for the key
exchange, and checks that (a) the certificate returned by the RPC is the pinned one
(:func:`check_pinned_certificate`) and (b) the quote's report data binds the pinned
certificate's public key and the Paillier key (``verify_attestation``). TOFU is made
safe by (b): a man in the middle can present its own certificate, but it cannot obtain a
genuine quote binding its key, because only the attested enclave chooses report data.
Nothing is encrypted to the PS before both checks pass.

Client side. Members authenticate with their own self-signed certificates, listed in the
federation file (:mod:`homolr.enclave.identity`); no CA takes part.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from homolr.errors import AttestationError, ConfigError, TransportError
from homolr.files import write_atomically

#: Name the PS certificate is issued for; workers override the TLS target name to it.
SERVER_NAME = "homolr-ps"
#: gRPC channel options a worker uses with :func:`pinned_channel_credentials`.
CHANNEL_OPTIONS: tuple[tuple[str, str], ...] = (("grpc.ssl_target_name_override", SERVER_NAME),)


_CURVES: dict[str, ec.EllipticCurve] = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1()}
_CLOCK_SKEW = datetime.timedelta(minutes=5)
#: KeyUsage of every homolr certificate (all are leaves: no CA takes part in admission).
_DIGITAL_SIGNATURE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)
_KEY_MODE = 0o600


class ServerIdentity(NamedTuple):
    """The PS's TLS identity: PEM private key, self-signed PEM certificate, SPKI DER."""

    private_key_pem: bytes
    certificate_pem: bytes
    public_key_der: bytes


def _new_key(curve: str) -> ec.EllipticCurvePrivateKey:
    try:
        return ec.generate_private_key(_CURVES[curve])
    except KeyError:
        raise ConfigError(f"TLS curve {curve!r}: expected one of {sorted(_CURVES)}") from None


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def self_signed_certificate(
    key: ec.EllipticCurvePrivateKey,
    common_name: str,
    alt_names: list[x509.GeneralName],
    usage: x509.ObjectIdentifier,
    days: int,
) -> x509.Certificate:
    """A self-signed X.509 v3 leaf certificate for ``key`` (the PS's and every member's).

    Subject = issuer = ``CN=<common_name>``, the given subjectAltName, BasicConstraints
    ``ca=False`` (critical), KeyUsage digitalSignature (critical), ExtendedKeyUsage ``usage``
    (serverAuth or clientAuth) and a SubjectKeyIdentifier; valid from 5 minutes ago (clock skew)
    for ``days`` days, signed with SHA-256.

    Raises
    ------
    ConfigError
        ``days < 1``.
    """
    if days < 1:
        raise ConfigError(f"certificate validity: expected >= 1 day, got {days}")
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_DIGITAL_SIGNATURE, critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def certificate_public_key_der(certificate_pem: bytes) -> bytes:
    """Return the DER SubjectPublicKeyInfo of a PEM certificate (the bound TLS key).

    Raises
    ------
    TransportError
        when ``certificate_pem`` is not a PEM certificate (e.g. garbage from a peer).
    """
    certificate = _load_certificate(certificate_pem)
    return certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _load_certificate(certificate_pem: bytes) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(certificate_pem)
    except (ValueError, TypeError) as error:
        raise TransportError(f"not a PEM X.509 certificate: {error}") from None


def generate_server_identity(
    hostnames: Sequence[str] = (SERVER_NAME, "localhost"),
    ip: str | None = "127.0.0.1",
    *,
    curve: str = "P-256",
    days: int = 365,
) -> ServerIdentity:
    """Generate the PS's TLS key and a self-signed server certificate.

    Parameters
    ----------
    hostnames
        DNS names in the subjectAltName; the first one is also the common name.
    ip
        Optional IP address in the subjectAltName.
    curve
        ``"P-256"`` (default) or ``"P-384"``.
    days
        Validity period.

    Returns
    -------
    ServerIdentity
        (private key PEM, certificate PEM, public key SPKI DER).
    """
    if not hostnames:
        raise ConfigError("server identity: at least one hostname is required")
    key = _new_key(curve)
    alt_names: list[x509.GeneralName] = [x509.DNSName(name) for name in hostnames]
    if ip is not None:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(ip)))
        except ValueError:
            raise ConfigError(f"server identity: not an IP address: {ip!r}") from None
    certificate = self_signed_certificate(
        key, hostnames[0], alt_names, ExtendedKeyUsageOID.SERVER_AUTH, days
    )
    return ServerIdentity(
        private_key_pem=_key_pem(key),
        certificate_pem=certificate.public_bytes(serialization.Encoding.PEM),
        public_key_der=key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )


def check_pinned_certificate(pinned_pem: bytes, received_pem: bytes) -> None:
    """Check that the certificate sent in the key-exchange reply is the pinned one.

    Raises
    ------
    AttestationError
        check ``tls-certificate`` with both SHA-256 fingerprints.
    """
    pinned = _load_certificate(pinned_pem).fingerprint(hashes.SHA256())
    try:
        received = _load_certificate(received_pem).fingerprint(hashes.SHA256())
    except TransportError as exc:
        raise AttestationError(
            "tls-certificate",
            f"the pinned server certificate (SHA-256 {pinned.hex()})",
            "something that is no PEM certificate",
            str(exc),
        ) from None
    if pinned != received:
        raise AttestationError(
            "tls-certificate",
            f"the pinned server certificate (SHA-256 {pinned.hex()})",
            f"a certificate with SHA-256 {received.hex()}",
            "the key-exchange reply names another certificate than the TLS handshake",
        )


def fetch_server_certificate(
    host: str,
    port: int,
    *,
    client_cert_pem: bytes | None = None,
    client_key_pem: bytes | None = None,
    timeout: float = 10.0,
) -> bytes:
    """Learn the server's certificate with an UNVERIFIED TLS handshake (ALPN ``h2``).

    This is trust on first use on purpose: the certificate is afterwards pinned and its
    key must be bound by the attested quote (see the module docstring); nothing is sent
    over this connection.

    Returns
    -------
    bytes
        The server's leaf certificate, PEM.

    Raises
    ------
    TransportError
        naming ``host:port`` when the connection or handshake fails.
    """
    if (client_cert_pem is None) != (client_key_pem is None):
        raise ConfigError("fetch_server_certificate: give both client certificate and key")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["h2"])
    try:
        if client_cert_pem is not None and client_key_pem is not None:
            _load_client_chain(context, client_cert_pem, client_key_pem)
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=SERVER_NAME) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
            if client_cert_pem is not None:
                _check_client_accepted(tls, host, port)
    except ClientCertificateRefused:
        raise
    except ssl.SSLError as error:
        raise TransportError(f"TLS handshake with {host}:{port} failed: {error}") from None
    except OSError as error:
        raise TransportError(f"TLS handshake with {host}:{port} failed: {error}") from None
    if not der:
        raise TransportError(f"TLS handshake with {host}:{port}: server sent no certificate")
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)


class ClientCertificateRefused(TransportError):
    """The PS completed the handshake, then refused this worker's client certificate: retrying
    cannot help."""


_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def _check_client_accepted(tls: ssl.SSLSocket, host: str, port: int) -> None:
    """In TLS 1.3 the server judges the client certificate after the client's handshake is done:
    send the HTTP/2 preface and read the server's first frame, so a refusal shows up here as the
    server's alert (e.g. unknown CA) instead of as an anonymous closed socket later."""
    tls.sendall(_HTTP2_PREFACE)
    try:
        first = tls.recv(1)
    except ssl.SSLError as error:
        raise ClientCertificateRefused(
            f"the PS at {host}:{port} refused this worker's client certificate ({error.reason or error})"
        ) from None
    if not first:
        raise ClientCertificateRefused(
            f"the PS at {host}:{port} refused this worker's client certificate: it closed the "
            "connection after the TLS handshake (is this member's certificate in the PS's federation file?)"
        )


def _load_client_chain(context: ssl.SSLContext, cert_pem: bytes, key_pem: bytes) -> None:
    """``ssl`` only loads certificate chains from files: use a private temporary dir."""
    with tempfile.TemporaryDirectory(prefix="homolr-tls-") as directory:
        cert_path = Path(directory) / "client.pem"
        key_path = Path(directory) / "client.key"
        write_atomically(key_path, key_pem, _KEY_MODE)
        write_atomically(cert_path, cert_pem, _KEY_MODE)
        try:
            context.load_cert_chain(cert_path, key_path)
        except ssl.SSLError as error:
            raise ConfigError(f"client certificate/key rejected by ssl: {error}") from None


def pinned_channel_credentials(
    server_cert_pem: bytes, client_cert_pem: bytes, client_key_pem: bytes
) -> grpc.ChannelCredentials:
    """gRPC channel credentials trusting only ``server_cert_pem``, presenting a client cert.

    Use with ``options=CHANNEL_OPTIONS`` so the name checked is :data:`SERVER_NAME`.
    """
    return grpc.ssl_channel_credentials(
        root_certificates=server_cert_pem,
        private_key=client_key_pem,
        certificate_chain=client_cert_pem,
    )


__all__ = [
    "CHANNEL_OPTIONS",
    "SERVER_NAME",
    "ClientCertificateRefused",
    "ServerIdentity",
    "certificate_public_key_der",
    "check_pinned_certificate",
    "fetch_server_certificate",
    "generate_server_identity",
    "pinned_channel_credentials",
    "self_signed_certificate",
]
