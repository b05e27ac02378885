"""The attested key exchange end to end on loopback, including a man in the middle.

A tiny gRPC service stands in for the PS's key-exchange RPC (the real one is the lead's): it
returns JSON with the Paillier public key, the TLS certificate and the quote, and admits exactly
the federation's member certificates (no CA). The member side follows the documented sequence:
unverified handshake to learn the certificate, pinned mTLS channel with its own self-made
certificate, key exchange, pinned-certificate check, then verify_attestation against report data
it computes itself from the pinned certificate's key, the received Paillier key and the hash of
its own copy of the federation file.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import grpc
import pytest

from homolr.crypto import PublicKey, generate_keypair
from homolr.enclave import (
    CHANNEL_OPTIONS,
    AttestationPolicy,
    MemberIdentity,
    ServerIdentity,
    SimulatedQuoteProvider,
    SimulatedQuoteVerifier,
    certificate_public_key_der,
    check_pinned_certificate,
    fetch_server_certificate,
    generate_member_identity,
    generate_server_identity,
    pinned_channel_credentials,
    report_data_for_federation,
    verify_attestation,
)
from homolr.errors import AttestationError
from homolr.federation import Federation, federation_hash, parse_federation, render_template
from tests.enclave.support import (
    ISV_PROD_ID,
    ISV_SVN,
    MRENCLAVE,
    MRSIGNER,
    start_member_server,
)

METHOD = "/homolr.test.KeyExchange/Get"
Reply = Callable[[], bytes]
Serve = Callable[[ServerIdentity, Reply], int]


def _federation(name: str, members: dict[str, MemberIdentity]) -> Federation:
    listed = [(i, m.fingerprint, m.certificate_pem) for i, m in members.items()]
    return parse_federation(render_template(name, listed), f"{name}.toml")


def _reply(public_key: bytes, certificate: bytes, quote: bytes) -> Reply:
    document = {"pk": public_key.hex(), "cert": certificate.decode(), "quote": quote.hex()}
    return lambda: json.dumps(document).encode()


class Ps:
    """The parameter server's attestation material (simulated enclave) for one federation."""

    def __init__(self, federation: Federation) -> None:
        self.public_key, _ = generate_keypair(512, insecure_small_key=True)
        self.identity = generate_server_identity()
        provider = SimulatedQuoteProvider(MRENCLAVE, MRSIGNER, ISV_PROD_ID, ISV_SVN)
        self.quote = provider.quote_for(
            report_data_for_federation(
                self.public_key.to_bytes(),
                self.identity.public_key_der,
                federation_hash(federation),
            )
        )

    def honest_reply(self) -> Reply:
        return _reply(self.public_key.to_bytes(), self.identity.certificate_pem, self.quote)


@pytest.fixture(scope="module")
def members() -> dict[str, MemberIdentity]:
    return {member_id: generate_member_identity(member_id) for member_id in ("guest", "host")}


@pytest.fixture(scope="module")
def federation(members: dict[str, MemberIdentity]) -> Federation:
    return _federation("wisconsin", members)


@pytest.fixture(scope="module")
def ps(federation: Federation) -> Ps:
    return Ps(federation)


@pytest.fixture
def serve(federation: Federation) -> Iterator[Serve]:
    servers: list[grpc.Server] = []

    def start(identity: ServerIdentity, reply: Reply) -> int:
        server, port = start_member_server(
            federation, identity, METHOD, lambda request, context: reply()
        )
        servers.append(server)
        return port

    yield start
    for server in servers:
        server.stop(grace=None)


def _member_attests(
    port: int, member: MemberIdentity, federation: Federation, policy: AttestationPolicy
) -> PublicKey:
    """The member's sequence; returns the Paillier key it may encrypt under."""
    cert, key = member.certificate_pem, member.private_key_pem
    pinned = fetch_server_certificate(
        "127.0.0.1", port, client_cert_pem=cert, client_key_pem=key, timeout=5
    )
    channel_credentials = pinned_channel_credentials(pinned, cert, key)
    with grpc.secure_channel(f"127.0.0.1:{port}", channel_credentials, CHANNEL_OPTIONS) as channel:
        call = channel.unary_unary(METHOD)  # type: ignore[call-arg]
        reply = json.loads(call(b"", timeout=10))
    check_pinned_certificate(pinned, reply["cert"].encode())
    public_key_bytes = bytes.fromhex(reply["pk"])
    expected = report_data_for_federation(
        public_key_bytes, certificate_public_key_der(pinned), federation_hash(federation)
    )
    verify_attestation(bytes.fromhex(reply["quote"]), policy, expected, SimulatedQuoteVerifier())
    return PublicKey.from_bytes(public_key_bytes, insecure_small_key=True)


def test_honest_ps_is_attested_by_every_member(
    ps: Ps,
    members: dict[str, MemberIdentity],
    federation: Federation,
    serve: Serve,
    mrenclave_policy: AttestationPolicy,
) -> None:
    port = serve(ps.identity, ps.honest_reply())
    for member in members.values():
        assert _member_attests(port, member, federation, mrenclave_policy) == ps.public_key


def test_relay_with_own_tls_key_is_caught_by_the_pinned_certificate(
    ps: Ps,
    members: dict[str, MemberIdentity],
    federation: Federation,
    serve: Serve,
    mrenclave_policy: AttestationPolicy,
) -> None:
    # The attacker terminates TLS with its own key and relays the PS's genuine reply.
    mitm = generate_server_identity()
    port = serve(mitm, ps.honest_reply())
    with pytest.raises(AttestationError) as info:
        _member_attests(port, members["guest"], federation, mrenclave_policy)
    assert info.value.check == "tls-certificate"


def test_relay_claiming_its_own_certificate_is_caught_by_the_report_data(
    ps: Ps,
    members: dict[str, MemberIdentity],
    federation: Federation,
    serve: Serve,
    mrenclave_policy: AttestationPolicy,
) -> None:
    mitm = generate_server_identity()
    port = serve(mitm, _reply(ps.public_key.to_bytes(), mitm.certificate_pem, ps.quote))
    with pytest.raises(AttestationError) as info:
        _member_attests(port, members["guest"], federation, mrenclave_policy)
    assert info.value.check == "report-data"


def test_substituted_paillier_key_is_caught_by_the_report_data(
    ps: Ps,
    members: dict[str, MemberIdentity],
    federation: Federation,
    serve: Serve,
    mrenclave_policy: AttestationPolicy,
) -> None:
    # Same TLS endpoint, but the reply carries a key whose private half the attacker owns.
    attacker_key, _ = generate_keypair(512, insecure_small_key=True)
    port = serve(
        ps.identity, _reply(attacker_key.to_bytes(), ps.identity.certificate_pem, ps.quote)
    )
    with pytest.raises(AttestationError) as info:
        _member_attests(port, members["guest"], federation, mrenclave_policy)
    assert info.value.check == "report-data"


def test_genuine_enclave_serving_another_federation_is_refused(
    members: dict[str, MemberIdentity],
    federation: Federation,
    serve: Serve,
    mrenclave_policy: AttestationPolicy,
) -> None:
    # The operator starts the same measured enclave with a federation file it wrote (here: other
    # name, the same members); the quote is genuine, but it binds that file's hash.
    operators_file = _federation("wisconsin-operator", members)
    assert federation_hash(operators_file) != federation_hash(federation)
    rogue = Ps(operators_file)
    port = serve(rogue.identity, rogue.honest_reply())
    with pytest.raises(AttestationError) as info:
        _member_attests(port, members["guest"], federation, mrenclave_policy)
    assert info.value.check == "report-data"
