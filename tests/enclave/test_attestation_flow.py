"""The attested key exchange end to end on loopback, including a man in the middle.

A tiny gRPC service stands in for the PS's key-exchange RPC (the real one is the lead's):
it returns JSON with the Paillier public key, the TLS certificate and the quote. The
worker side follows the documented sequence: unverified handshake to learn the
certificate, pinned mTLS channel, key exchange, pinned-certificate check, then
verify_attestation over the pinned certificate's key and the received Paillier key.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from concurrent import futures

import grpc
import pytest

from homolr.crypto import PublicKey, generate_keypair
from homolr.enclave import (
    CHANNEL_OPTIONS,
    AttestationPolicy,
    DevPki,
    ServerIdentity,
    SimulatedQuoteProvider,
    SimulatedQuoteVerifier,
    certificate_public_key_der,
    check_pinned_certificate,
    fetch_server_certificate,
    generate_server_identity,
    pinned_channel_credentials,
    report_data_for,
    server_credentials,
    verify_attestation,
    write_dev_pki,
)
from homolr.errors import AttestationError
from tests.enclave.support import ISV_PROD_ID, ISV_SVN, MRENCLAVE, MRSIGNER

METHOD = "/homolr.test.KeyExchange/Get"
Reply = Callable[[], bytes]


def _serve(identity: ServerIdentity, ca_pem: bytes, reply: Reply) -> tuple[grpc.Server, int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    handler = grpc.method_handlers_generic_handler(
        "homolr.test.KeyExchange",
        {"Get": grpc.unary_unary_rpc_method_handler(lambda request, context: reply())},
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_secure_port("127.0.0.1:0", server_credentials(identity, ca_pem))
    server.start()
    return server, port


def _reply(public_key: bytes, certificate: bytes, quote: bytes) -> Reply:
    document = {"pk": public_key.hex(), "cert": certificate.decode(), "quote": quote.hex()}
    return lambda: json.dumps(document).encode()


class Ps:
    """The parameter server's attestation material (simulated enclave)."""

    def __init__(self) -> None:
        self.public_key, _ = generate_keypair(512, insecure_small_key=True)
        self.identity = generate_server_identity()
        provider = SimulatedQuoteProvider(MRENCLAVE, MRSIGNER, ISV_PROD_ID, ISV_SVN)
        self.quote = provider.quote_for(
            report_data_for(self.public_key.to_bytes(), self.identity.public_key_der)
        )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    return write_dev_pki(tmp_path_factory.mktemp("pki"), ["w1"])


@pytest.fixture(scope="module")
def ps() -> Ps:
    return Ps()


@pytest.fixture
def serve(pki: DevPki) -> Iterator[Callable[[ServerIdentity, Reply], int]]:
    servers: list[grpc.Server] = []

    def start(identity: ServerIdentity, reply: Reply) -> int:
        server, port = _serve(identity, pki.ca_certificate_path.read_bytes(), reply)
        servers.append(server)
        return port

    yield start
    for server in servers:
        server.stop(grace=None)


def _worker_attests(port: int, pki: DevPki, policy: AttestationPolicy) -> PublicKey:
    """The worker's sequence; returns the Paillier key it may encrypt under."""
    credentials = pki.workers["w1"]
    cert, key = credentials.certificate_path.read_bytes(), credentials.private_key_path.read_bytes()
    pinned = fetch_server_certificate(
        "127.0.0.1", port, client_cert_pem=cert, client_key_pem=key, timeout=5
    )
    channel_credentials = pinned_channel_credentials(pinned, cert, key)
    with grpc.secure_channel(f"127.0.0.1:{port}", channel_credentials, CHANNEL_OPTIONS) as channel:
        reply = json.loads(channel.unary_unary(METHOD)(b"", timeout=10))
    check_pinned_certificate(pinned, reply["cert"].encode())
    public_key_bytes = bytes.fromhex(reply["pk"])
    verify_attestation(
        bytes.fromhex(reply["quote"]),
        policy,
        public_key_bytes,
        certificate_public_key_der(pinned),
        SimulatedQuoteVerifier(),
    )
    return PublicKey.from_bytes(public_key_bytes, insecure_small_key=True)


def test_honest_ps_is_attested(
    ps: Ps,
    pki: DevPki,
    serve: Callable[[ServerIdentity, Reply], int],
    mrenclave_policy: AttestationPolicy,
) -> None:
    port = serve(
        ps.identity, _reply(ps.public_key.to_bytes(), ps.identity.certificate_pem, ps.quote)
    )
    assert _worker_attests(port, pki, mrenclave_policy) == ps.public_key


def test_relay_with_own_tls_key_is_caught_by_the_pinned_certificate(
    ps: Ps,
    pki: DevPki,
    serve: Callable[[ServerIdentity, Reply], int],
    mrenclave_policy: AttestationPolicy,
) -> None:
    # The attacker terminates TLS with its own key and relays the PS's genuine reply.
    mitm = generate_server_identity()
    port = serve(mitm, _reply(ps.public_key.to_bytes(), ps.identity.certificate_pem, ps.quote))
    with pytest.raises(AttestationError) as info:
        _worker_attests(port, pki, mrenclave_policy)
    assert info.value.check == "tls-certificate"


def test_relay_claiming_its_own_certificate_is_caught_by_the_report_data(
    ps: Ps,
    pki: DevPki,
    serve: Callable[[ServerIdentity, Reply], int],
    mrenclave_policy: AttestationPolicy,
) -> None:
    mitm = generate_server_identity()
    port = serve(mitm, _reply(ps.public_key.to_bytes(), mitm.certificate_pem, ps.quote))
    with pytest.raises(AttestationError) as info:
        _worker_attests(port, pki, mrenclave_policy)
    assert info.value.check == "report-data"


def test_substituted_paillier_key_is_caught_by_the_report_data(
    ps: Ps,
    pki: DevPki,
    serve: Callable[[ServerIdentity, Reply], int],
    mrenclave_policy: AttestationPolicy,
) -> None:
    # Same TLS endpoint, but the reply carries a key whose private half the attacker owns.
    attacker_key, _ = generate_keypair(512, insecure_small_key=True)
    port = serve(
        ps.identity, _reply(attacker_key.to_bytes(), ps.identity.certificate_pem, ps.quote)
    )
    with pytest.raises(AttestationError) as info:
        _worker_attests(port, pki, mrenclave_policy)
    assert info.value.check == "report-data"
