"""TLS identities, development PKI and mTLS / pinning against a real gRPC server."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import stat
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from homolr.enclave.tls import (
    CHANNEL_OPTIONS,
    DevPki,
    ServerIdentity,
    authorize_worker,
    build_dev_ca,
    build_worker_certificate,
    certificate_public_key_der,
    check_pinned_certificate,
    fetch_server_certificate,
    generate_server_identity,
    issue_worker_certificate,
    load_dev_ca,
    pinned_channel_credentials,
    server_credentials,
    worker_id_from_auth_context,
    write_dev_pki,
)
from homolr.errors import AttestationError, ConfigError, PolicyError, TransportError

ALLOWED = frozenset({"w1"})
METHOD = "/homolr.test.Identity/WhoAmI"


# --- certificates ----------------------------------------------------------------------------


def test_server_identity_is_self_signed_for_the_pinned_name() -> None:
    identity = generate_server_identity()
    certificate = x509.load_pem_x509_certificate(identity.certificate_pem)
    san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["homolr-ps", "localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert certificate.issuer == certificate.subject
    certificate.verify_directly_issued_by(certificate)
    assert certificate_public_key_der(identity.certificate_pem) == identity.public_key_der
    key = serialization.load_pem_private_key(identity.private_key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"


def test_server_identity_options() -> None:
    identity = generate_server_identity(("ps.example",), ip=None, curve="P-384", days=2)
    certificate = x509.load_pem_x509_certificate(identity.certificate_pem)
    assert certificate.public_key().curve.name == "secp384r1"  # type: ignore[union-attr]
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert datetime.timedelta(days=2) < lifetime < datetime.timedelta(days=2, minutes=10)
    with pytest.raises(ConfigError, match="P-521"):
        generate_server_identity(curve="P-521")
    with pytest.raises(ConfigError, match="not an IP address"):
        generate_server_identity(ip="localhost")


def test_each_identity_has_its_own_key() -> None:
    assert generate_server_identity().public_key_der != generate_server_identity().public_key_der


def test_dev_pki_files_and_permissions(tmp_path: Path) -> None:
    pki = write_dev_pki(tmp_path / "pki", ["w1", "w2"], days=30)
    assert sorted(pki.workers) == ["w1", "w2"]
    ca_certificate = x509.load_pem_x509_certificate(pki.ca_certificate_path.read_bytes())
    assert stat.S_IMODE(pki.ca_private_key_path.stat().st_mode) == 0o600
    for worker_id, credentials in pki.workers.items():
        assert stat.S_IMODE(credentials.private_key_path.stat().st_mode) == 0o600
        certificate = x509.load_pem_x509_certificate(credentials.certificate_path.read_bytes())
        certificate.verify_directly_issued_by(ca_certificate)
        common_name = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        assert common_name == worker_id
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
            f"homolr-worker:{worker_id}"
        ]
    assert list(pki.ca_private_key_path.parent.glob("*.tmp")) == []


def test_dev_pki_refuses_to_replace_a_ca(tmp_path: Path) -> None:
    first = write_dev_pki(tmp_path, ["w1"])
    before = first.ca_certificate_path.read_bytes()
    with pytest.raises(ConfigError, match="refusing to replace the CA"):
        write_dev_pki(tmp_path, ["w2"])
    assert first.ca_certificate_path.read_bytes() == before
    replaced = write_dev_pki(tmp_path, ["w2"], overwrite=True)
    assert replaced.ca_certificate_path.read_bytes() != before


@pytest.mark.parametrize("ids", [["w1", "w1"], ["../evil"], [""], ["a" * 65], ["-x"]])
def test_dev_pki_rejects_bad_worker_ids(tmp_path: Path, ids: list[str]) -> None:
    with pytest.raises(ConfigError, match="worker id"):
        write_dev_pki(tmp_path, ids)
    assert not (tmp_path / "ca.key").exists()


def test_loaded_ca_issues_more_workers(tmp_path: Path) -> None:
    write_dev_pki(tmp_path, ["w1"])
    ca = load_dev_ca(tmp_path)
    credentials = issue_worker_certificate(ca, "w9", tmp_path)
    certificate = x509.load_pem_x509_certificate(credentials.certificate_path.read_bytes())
    certificate.verify_directly_issued_by(x509.load_pem_x509_certificate(ca.certificate_pem))
    with pytest.raises(ConfigError, match="development CA"):
        load_dev_ca(tmp_path / "nowhere")


def test_pinned_certificate_check() -> None:
    one, other = generate_server_identity(), generate_server_identity()
    check_pinned_certificate(one.certificate_pem, one.certificate_pem)
    with pytest.raises(AttestationError) as info:
        check_pinned_certificate(one.certificate_pem, other.certificate_pem)
    assert info.value.check == "tls-certificate"
    with pytest.raises(TransportError, match="not a PEM"):
        check_pinned_certificate(one.certificate_pem, b"garbage")


# --- worker identity from grpc's auth context ------------------------------------------------


def _certificate_with(common_name: str, uri: str | None) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    if uri is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]), critical=False
        )
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def test_worker_id_from_auth_context_variants() -> None:
    ca = build_dev_ca()
    certificate_pem, _key = build_worker_certificate(ca, "w7")
    assert worker_id_from_auth_context({"x509_pem_cert": [certificate_pem]}) == "w7"
    assert worker_id_from_auth_context({"x509_common_name": [b"w8"]}) == "w8"
    assert worker_id_from_auth_context({}) is None
    assert worker_id_from_auth_context({"transport_security_type": [b"insecure"]}) is None
    mismatch = _certificate_with("w1", "homolr-worker:w2")
    assert worker_id_from_auth_context({"x509_pem_cert": [mismatch]}) is None
    assert worker_id_from_auth_context({"x509_pem_cert": [_certificate_with("w3", None)]}) == "w3"
    bad_name = _certificate_with("../../etc", None)
    assert worker_id_from_auth_context({"x509_pem_cert": [bad_name]}) is None
    assert worker_id_from_auth_context({"x509_pem_cert": [b"not a certificate"]}) is None


def test_authorize_worker() -> None:
    assert authorize_worker({"x509_common_name": [b"w1"]}, ALLOWED) == "w1"
    with pytest.raises(PolicyError, match="'w2' is not in the allow-list"):
        authorize_worker({"x509_common_name": [b"w2"]}, ALLOWED)
    with pytest.raises(PolicyError, match="no usable worker client certificate"):
        authorize_worker({}, ALLOWED)


# --- real gRPC server on 127.0.0.1 -------------------------------------------------------------


def _who_am_i(request: bytes, context: grpc.ServicerContext) -> bytes:
    try:
        return authorize_worker(context.auth_context(), ALLOWED).encode()
    except PolicyError as error:
        context.abort(grpc.StatusCode.PERMISSION_DENIED, str(error))


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    return write_dev_pki(tmp_path_factory.mktemp("pki"), ["w1", "w2"])


@pytest.fixture(scope="module")
def identity() -> ServerIdentity:
    return generate_server_identity()


@pytest.fixture(scope="module")
def server_port(pki: DevPki, identity: ServerIdentity) -> Iterator[int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    handler = grpc.method_handlers_generic_handler(
        "homolr.test.Identity", {"WhoAmI": grpc.unary_unary_rpc_method_handler(_who_am_i)}
    )
    server.add_generic_rpc_handlers((handler,))
    credentials = server_credentials(identity, pki.ca_certificate_path.read_bytes())
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    yield port
    server.stop(grace=None)


def _call(port: int, server_cert: bytes, client_cert: bytes, client_key: bytes) -> bytes:
    credentials = pinned_channel_credentials(server_cert, client_cert, client_key)
    with grpc.secure_channel(f"127.0.0.1:{port}", credentials, options=CHANNEL_OPTIONS) as channel:
        call = channel.unary_unary(METHOD)
        response: bytes = call(b"", timeout=10)
        return response


def _worker(pki: DevPki, worker_id: str) -> tuple[bytes, bytes]:
    credentials = pki.workers[worker_id]
    return credentials.certificate_path.read_bytes(), credentials.private_key_path.read_bytes()


def test_known_worker_is_accepted(server_port: int, pki: DevPki, identity: ServerIdentity) -> None:
    assert _call(server_port, identity.certificate_pem, *_worker(pki, "w1")) == b"w1"


def test_worker_outside_the_allow_list_is_denied(
    server_port: int, pki: DevPki, identity: ServerIdentity
) -> None:
    with pytest.raises(grpc.RpcError) as info:
        _call(server_port, identity.certificate_pem, *_worker(pki, "w2"))
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]


def test_client_certificate_from_another_ca_is_refused(
    server_port: int, identity: ServerIdentity
) -> None:
    rogue_certificate, rogue_key = build_worker_certificate(build_dev_ca(), "w1")
    with pytest.raises(grpc.RpcError) as info:
        _call(server_port, identity.certificate_pem, rogue_certificate, rogue_key)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]


def test_worker_pinning_another_server_certificate_refuses(server_port: int, pki: DevPki) -> None:
    impostor_expected = generate_server_identity().certificate_pem
    with pytest.raises(grpc.RpcError) as info:
        _call(server_port, impostor_expected, *_worker(pki, "w1"))
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]


def test_fetched_certificate_is_the_server_one_and_pins(
    server_port: int, pki: DevPki, identity: ServerIdentity
) -> None:
    client_certificate, client_key = _worker(pki, "w1")
    fetched = fetch_server_certificate(
        "127.0.0.1",
        server_port,
        client_cert_pem=client_certificate,
        client_key_pem=client_key,
        timeout=5,
    )
    check_pinned_certificate(identity.certificate_pem, fetched)
    assert certificate_public_key_der(fetched) == identity.public_key_der
    assert _call(server_port, fetched, client_certificate, client_key) == b"w1"


def test_fetch_without_client_certificate_still_learns_the_certificate(
    server_port: int, identity: ServerIdentity
) -> None:
    fetched = fetch_server_certificate("127.0.0.1", server_port, timeout=5)
    check_pinned_certificate(identity.certificate_pem, fetched)


def test_fetch_from_a_closed_port_is_a_transport_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(TransportError, match=f"127.0.0.1:{port}"):
        fetch_server_certificate("127.0.0.1", port, timeout=2)
