"""The PS's TLS identity, certificate pinning and fetching, against a real gRPC server.

Members authenticate with their own certificates listed in the federation file; their admission
is tested in test_identity.py. Here the server admits the federation's members and the tests are
about the member's side: learning the PS's certificate, pinning it, and refusing anything else.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
from collections.abc import Iterator

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from homolr.enclave.identity import (
    MemberIdentity,
    generate_member_identity,
)
from homolr.enclave.tls import (
    CHANNEL_OPTIONS,
    ClientCertificateRefused,
    ServerIdentity,
    certificate_public_key_der,
    check_pinned_certificate,
    fetch_server_certificate,
    generate_server_identity,
    pinned_channel_credentials,
)
from homolr.errors import AttestationError, ConfigError, TransportError
from homolr.federation import Federation, parse_federation, render_template
from tests.enclave.support import WHO_AM_I, serve_members

METHOD = WHO_AM_I


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


def test_pinned_certificate_check() -> None:
    one, other = generate_server_identity(), generate_server_identity()
    check_pinned_certificate(one.certificate_pem, one.certificate_pem)
    with pytest.raises(AttestationError) as info:
        check_pinned_certificate(one.certificate_pem, other.certificate_pem)
    assert info.value.check == "tls-certificate"
    with pytest.raises(AttestationError, match="not a PEM") as garbage:
        check_pinned_certificate(one.certificate_pem, b"garbage")  # from the PS: attestation
    assert garbage.value.check == "tls-certificate"
    with pytest.raises(TransportError, match="not a PEM"):
        check_pinned_certificate(b"garbage", one.certificate_pem)  # our own pin: transport


# --- real gRPC server on 127.0.0.1 -------------------------------------------------------------


@pytest.fixture(scope="module")
def members() -> dict[str, MemberIdentity]:
    return {member_id: generate_member_identity(member_id) for member_id in ("w1", "w2")}


@pytest.fixture(scope="module")
def federation(members: dict[str, MemberIdentity]) -> Federation:
    listed = [(i, m.fingerprint, m.certificate_pem) for i, m in members.items()]
    return parse_federation(render_template("tls-tests", listed), "federation.toml")


@pytest.fixture(scope="module")
def identity() -> ServerIdentity:
    return generate_server_identity()


@pytest.fixture(scope="module")
def server_port(federation: Federation, identity: ServerIdentity) -> Iterator[int]:
    with serve_members(federation, identity) as (port, _):
        yield port


def _call(port: int, server_cert: bytes, client_cert: bytes, client_key: bytes) -> bytes:
    credentials = pinned_channel_credentials(server_cert, client_cert, client_key)
    with grpc.secure_channel(f"127.0.0.1:{port}", credentials, options=CHANNEL_OPTIONS) as channel:
        call = channel.unary_unary(METHOD)  # type: ignore[call-arg]
        response: bytes = call(b"", timeout=10)
        return response


def _member(members: dict[str, MemberIdentity], member_id: str) -> tuple[bytes, bytes]:
    identity = members[member_id]
    return identity.certificate_pem, identity.private_key_pem


def test_a_member_pinning_the_ps_certificate_gets_through(
    server_port: int, members: dict[str, MemberIdentity], identity: ServerIdentity
) -> None:
    assert _call(server_port, identity.certificate_pem, *_member(members, "w1")) == b"w1"


def test_member_pinning_another_server_certificate_refuses(
    server_port: int, members: dict[str, MemberIdentity]
) -> None:
    impostor_expected = generate_server_identity().certificate_pem
    with pytest.raises(grpc.RpcError) as info:
        _call(server_port, impostor_expected, *_member(members, "w1"))
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_fetched_certificate_is_the_server_one_and_pins(
    server_port: int, members: dict[str, MemberIdentity], identity: ServerIdentity
) -> None:
    client_certificate, client_key = _member(members, "w2")
    fetched = fetch_server_certificate(
        "127.0.0.1",
        server_port,
        client_cert_pem=client_certificate,
        client_key_pem=client_key,
        timeout=5,
    )
    check_pinned_certificate(identity.certificate_pem, fetched)
    assert certificate_public_key_der(fetched) == identity.public_key_der
    assert _call(server_port, fetched, client_certificate, client_key) == b"w2"


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


def test_fetch_with_a_certificate_outside_the_federation_is_refused_at_once(
    server_port: int,
) -> None:
    # The PS completes the handshake, then rejects the client certificate: the member learns it
    # was refused (not retried as an outage), with the reason.
    outsider = generate_member_identity("w1")
    with pytest.raises(ClientCertificateRefused, match=f"127.0.0.1:{server_port}"):
        fetch_server_certificate(
            "127.0.0.1",
            server_port,
            client_cert_pem=outsider.certificate_pem,
            client_key_pem=outsider.private_key_pem,
            timeout=5,
        )


def test_fetch_needs_both_client_certificate_and_key(members: dict[str, MemberIdentity]) -> None:
    certificate, key = _member(members, "w1")
    with pytest.raises(ConfigError, match="both client certificate and key"):
        fetch_server_certificate("127.0.0.1", 1, client_cert_pem=certificate)
    with pytest.raises(ConfigError, match="both client certificate and key"):
        fetch_server_certificate("127.0.0.1", 1, client_key_pem=key)
