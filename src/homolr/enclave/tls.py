"""TLS identities for the gRPC channel: attested server key, development PKI for workers.

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

Client side. Workers authenticate with client certificates (mTLS) issued by a CA the PS
trusts; the worker id is the certificate's common name (also a SAN URI
``homolr-worker:<id>``) and the servicer checks it against an allow-list
(:func:`worker_id_from_auth_context`, :func:`authorize_worker`). ``homolr certs`` creates
a development CA and worker certificates (:func:`write_dev_pki`); private key files are
written with mode 0600.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
import socket
import ssl
import tempfile
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from homolr.errors import AttestationError, ConfigError, PolicyError, TransportError

#: Name the PS certificate is issued for; workers override the TLS target name to it.
SERVER_NAME = "homolr-ps"
#: gRPC channel options a worker uses with :func:`pinned_channel_credentials`.
CHANNEL_OPTIONS: tuple[tuple[str, str], ...] = (("grpc.ssl_target_name_override", SERVER_NAME),)
#: SAN URI scheme that carries the worker id in worker certificates.
WORKER_URI_PREFIX = "homolr-worker:"

CA_CERT_FILE = "ca.pem"
CA_KEY_FILE = "ca.key"

_WORKER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_CURVES: dict[str, ec.EllipticCurve] = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1()}
_CLOCK_SKEW = datetime.timedelta(minutes=5)
_KEY_MODE = 0o600
_CERT_MODE = 0o644


class ServerIdentity(NamedTuple):
    """The PS's TLS identity: PEM private key, self-signed PEM certificate, SPKI DER."""

    private_key_pem: bytes
    certificate_pem: bytes
    public_key_der: bytes


@dataclass(frozen=True)
class DevCA:
    """A development certificate authority (PEM certificate and private key)."""

    certificate_pem: bytes
    private_key_pem: bytes


@dataclass(frozen=True)
class WorkerCredentials:
    """Files of one worker's client identity."""

    worker_id: str
    certificate_path: Path
    private_key_path: Path


@dataclass(frozen=True)
class DevPki:
    """Everything ``homolr certs`` wrote: the CA files and each worker's credentials."""

    ca_certificate_path: Path
    ca_private_key_path: Path
    workers: dict[str, WorkerCredentials]


def validate_worker_id(worker_id: str) -> str:
    """Return ``worker_id`` if it is a safe identifier (used in file names and URIs).

    Raises
    ------
    ConfigError
        unless it matches ``[A-Za-z0-9][A-Za-z0-9_.-]{0,63}``.
    """
    if not isinstance(worker_id, str) or not _WORKER_ID.fullmatch(worker_id):
        raise ConfigError(
            f"worker id {worker_id!r}: expected 1-64 characters from letters, digits, "
            "'_', '.', '-', starting with a letter or digit"
        )
    return worker_id


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


def _validity(days: int) -> tuple[datetime.datetime, datetime.datetime]:
    if days < 1:
        raise ConfigError(f"certificate validity: expected >= 1 day, got {days}")
    now = datetime.datetime.now(datetime.UTC)
    return now - _CLOCK_SKEW, now + datetime.timedelta(days=days)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


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
    not_before, not_after = _validity(days)
    alt_names: list[x509.GeneralName] = [x509.DNSName(name) for name in hostnames]
    if ip is not None:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(ip)))
        except ValueError:
            raise ConfigError(f"server identity: not an IP address: {ip!r}") from None
    name = _name(hostnames[0])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return ServerIdentity(
        private_key_pem=_key_pem(key),
        certificate_pem=certificate.public_bytes(serialization.Encoding.PEM),
        public_key_der=key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )


def _key_usage(*, digital_signature: bool = False, cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _write_file(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` atomically with permissions ``mode`` (set before any byte lands)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def build_dev_ca(*, days: int = 365, common_name: str = "homolr development CA") -> DevCA:
    """Create a development CA in memory (EC P-256, pathlen 0)."""
    key = _new_key("P-256")
    not_before, not_after = _validity(days)
    name = _name(common_name)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return DevCA(
        certificate_pem=certificate.public_bytes(serialization.Encoding.PEM),
        private_key_pem=_key_pem(key),
    )


def create_dev_ca(out_dir: Path, *, days: int = 365) -> DevCA:
    """Create a development CA and write ``ca.pem`` and ``ca.key`` (0600) to ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ca = build_dev_ca(days=days)
    _write_file(out_dir / CA_KEY_FILE, ca.private_key_pem, _KEY_MODE)
    _write_file(out_dir / CA_CERT_FILE, ca.certificate_pem, _CERT_MODE)
    return ca


def load_dev_ca(directory: Path) -> DevCA:
    """Read ``ca.pem`` and ``ca.key`` written by :func:`create_dev_ca`.

    Raises
    ------
    ConfigError
        naming the file when it is missing or not PEM.
    """
    directory = Path(directory)
    try:
        certificate_pem = (directory / CA_CERT_FILE).read_bytes()
        key_pem = (directory / CA_KEY_FILE).read_bytes()
    except OSError as error:
        raise ConfigError(f"development CA in {directory}: {error}") from None
    try:
        x509.load_pem_x509_certificate(certificate_pem)
        serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as error:
        raise ConfigError(f"development CA in {directory}: not PEM: {error}") from None
    return DevCA(certificate_pem=certificate_pem, private_key_pem=key_pem)


def build_worker_certificate(ca: DevCA, worker_id: str, *, days: int = 365) -> tuple[bytes, bytes]:
    """Issue a client certificate for ``worker_id`` in memory: (certificate PEM, key PEM)."""
    validate_worker_id(worker_id)
    ca_certificate = x509.load_pem_x509_certificate(ca.certificate_pem)
    ca_key = serialization.load_pem_private_key(ca.private_key_pem, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ConfigError("development CA: expected an EC private key")
    key = _new_key("P-256")
    not_before, not_after = _validity(days)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(worker_id))
        .issuer_name(ca_certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(min(not_after, ca_certificate.not_valid_after_utc))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(WORKER_URI_PREFIX + worker_id)]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def worker_file_names(worker_id: str) -> tuple[str, str]:
    """File names of a worker's certificate and key: ``worker-<id>.pem``, ``worker-<id>.key``."""
    validate_worker_id(worker_id)
    return f"worker-{worker_id}.pem", f"worker-{worker_id}.key"


def issue_worker_certificate(
    ca: DevCA, worker_id: str, out_dir: Path, *, days: int = 365
) -> WorkerCredentials:
    """Issue a worker client certificate and write it (key 0600) to ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    certificate_pem, key_pem = build_worker_certificate(ca, worker_id, days=days)
    cert_name, key_name = worker_file_names(worker_id)
    _write_file(out_dir / key_name, key_pem, _KEY_MODE)
    _write_file(out_dir / cert_name, certificate_pem, _CERT_MODE)
    return WorkerCredentials(worker_id, out_dir / cert_name, out_dir / key_name)


def write_dev_pki(
    out_dir: Path, worker_ids: Iterable[str], *, days: int = 365, overwrite: bool = False
) -> DevPki:
    """Create a development CA and one client certificate per worker (``homolr certs``).

    Raises
    ------
    ConfigError
        on an invalid or duplicate worker id, or when ``out_dir`` already holds a CA
        and ``overwrite`` is False (re-running would invalidate issued certificates).
    """
    out_dir = Path(out_dir)
    ids = [validate_worker_id(worker_id) for worker_id in worker_ids]
    duplicates = sorted({worker_id for worker_id in ids if ids.count(worker_id) > 1})
    if duplicates:
        raise ConfigError(f"worker ids: duplicates {duplicates}")
    if not overwrite and (out_dir / CA_KEY_FILE).exists():
        raise ConfigError(
            f"{out_dir / CA_KEY_FILE} exists: refusing to replace the CA (certificates it "
            "issued would stop working); pass overwrite to replace it"
        )
    ca = create_dev_ca(out_dir, days=days)
    workers = {
        worker_id: issue_worker_certificate(ca, worker_id, out_dir, days=days) for worker_id in ids
    }
    return DevPki(out_dir / CA_CERT_FILE, out_dir / CA_KEY_FILE, workers)


def _first(values: object) -> bytes | None:
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


def worker_id_from_auth_context(auth_context: Mapping[str, object]) -> str | None:
    """Return the worker id of an mTLS peer, or None when there is none.

    ``auth_context`` is grpc's ``context.auth_context()``, e.g.
    ``{'x509_common_name': [b'w1'], 'x509_pem_cert': [b'-----BEGIN ...'], ...}``. The id is
    the certificate's common name; when the certificate also carries a
    ``homolr-worker:`` SAN URI, both must agree. grpc has already verified the chain to
    the CA before the servicer runs (``require_client_auth=True``).
    """
    pem = _first(auth_context.get("x509_pem_cert"))
    if pem is not None:
        try:
            certificate = x509.load_pem_x509_certificate(pem)
        except ValueError:
            return None
        names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if len(names) != 1:
            return None
        common_name = names[0].value
        common_name = common_name if isinstance(common_name, str) else common_name.decode()
        try:
            san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            uris = [
                uri.removeprefix(WORKER_URI_PREFIX)
                for uri in san.value.get_values_for_type(x509.UniformResourceIdentifier)
                if uri.startswith(WORKER_URI_PREFIX)
            ]
        except x509.ExtensionNotFound:
            uris = []
        if uris and uris != [common_name]:
            return None
    else:
        raw = _first(auth_context.get("x509_common_name"))
        if raw is None:
            return None
        common_name = raw.decode("utf-8", errors="replace")
    return common_name if _WORKER_ID.fullmatch(common_name) else None


def authorize_worker(auth_context: Mapping[str, object], allowed: Collection[str]) -> str:
    """Return the peer's worker id if it is in ``allowed``.

    Raises
    ------
    PolicyError
        when the peer presented no usable client certificate or is not allow-listed.
    """
    worker_id = worker_id_from_auth_context(auth_context)
    if worker_id is None:
        raise PolicyError("peer presented no usable worker client certificate")
    if worker_id not in allowed:
        raise PolicyError(f"worker {worker_id!r} is not in the allow-list {sorted(allowed)}")
    return worker_id


def check_pinned_certificate(pinned_pem: bytes, received_pem: bytes) -> None:
    """Check that the certificate sent in the key-exchange reply is the pinned one.

    Raises
    ------
    AttestationError
        check ``tls-certificate`` with both SHA-256 fingerprints.
    """
    pinned = _load_certificate(pinned_pem).fingerprint(hashes.SHA256())
    received = _load_certificate(received_pem).fingerprint(hashes.SHA256())
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
            "connection after the TLS handshake (certificate not signed by the PS's --client-ca?)"
        )


def _load_client_chain(context: ssl.SSLContext, cert_pem: bytes, key_pem: bytes) -> None:
    """``ssl`` only loads certificate chains from files: use a private temporary dir."""
    with tempfile.TemporaryDirectory(prefix="homolr-tls-") as directory:
        cert_path = Path(directory) / "client.pem"
        key_path = Path(directory) / "client.key"
        _write_file(key_path, key_pem, _KEY_MODE)
        _write_file(cert_path, cert_pem, _KEY_MODE)
        try:
            context.load_cert_chain(cert_path, key_path)
        except ssl.SSLError as error:
            raise ConfigError(f"client certificate/key rejected by ssl: {error}") from None


def server_credentials(identity: ServerIdentity, client_ca_pem: bytes) -> grpc.ServerCredentials:
    """gRPC server credentials: the attested identity, client certificates required."""
    return grpc.ssl_server_credentials(
        [(identity.private_key_pem, identity.certificate_pem)],
        root_certificates=client_ca_pem,
        require_client_auth=True,
    )


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
    "CA_CERT_FILE",
    "CA_KEY_FILE",
    "CHANNEL_OPTIONS",
    "SERVER_NAME",
    "WORKER_URI_PREFIX",
    "ClientCertificateRefused",
    "DevCA",
    "DevPki",
    "ServerIdentity",
    "WorkerCredentials",
    "authorize_worker",
    "build_dev_ca",
    "build_worker_certificate",
    "certificate_public_key_der",
    "check_pinned_certificate",
    "create_dev_ca",
    "fetch_server_certificate",
    "generate_server_identity",
    "issue_worker_certificate",
    "load_dev_ca",
    "pinned_channel_credentials",
    "server_credentials",
    "validate_worker_id",
    "worker_file_names",
    "worker_id_from_auth_context",
]
