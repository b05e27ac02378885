"""Test helpers for homolr.enclave: enclave identities, synthetic quotes, and a TLS server that
admits the members of a federation."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator
from concurrent import futures

import grpc

from homolr.enclave.binding import report_data_for, report_data_for_federation
from homolr.enclave.identity import member_trust_bundle, peer_member_id
from homolr.enclave.quote import build_quote
from homolr.enclave.tls import ServerIdentity
from homolr.errors import PolicyError
from homolr.federation import Federation

MRENCLAVE = hashlib.sha256(b"homolr test enclave").digest()
MRSIGNER = hashlib.sha256(b"homolr test signer").digest()
ISV_PROD_ID = 7
ISV_SVN = 3
# Stand-ins for PublicKey.to_bytes() and a TLS SubjectPublicKeyInfo: the binding only
# hashes bytes, so any distinct byte strings exercise it.
PAILLIER_PK = b"paillier-public-key:" + bytes(range(200))
TLS_SPKI = b"tls-spki:" + bytes(range(91))


def make_quote(
    *,
    paillier_pk: bytes = PAILLIER_PK,
    tls_spki: bytes = TLS_SPKI,
    mr_enclave: bytes = MRENCLAVE,
    mr_signer: bytes = MRSIGNER,
    isv_prod_id: int = ISV_PROD_ID,
    isv_svn: int = ISV_SVN,
    debug: bool = False,
    federation_hash: bytes | None = None,
) -> bytes:
    """A synthetic quote binding the given keys: v1 report data, or v2 (keys and federation
    hash) when ``federation_hash`` is given."""
    report_data = (
        report_data_for(paillier_pk, tls_spki)
        if federation_hash is None
        else report_data_for_federation(paillier_pk, tls_spki, federation_hash)
    )
    return build_quote(
        mr_enclave=mr_enclave,
        mr_signer=mr_signer,
        isv_prod_id=isv_prod_id,
        isv_svn=isv_svn,
        report_data=report_data,
        debug=debug,
    )


#: The one method of the member-admission test server: answers the caller's member id.
WHO_AM_I = "/homolr.test.Federation/WhoAmI"


class MemberRecorder:
    """The test server's handler: admits a peer only through peer_member_id; records what it
    saw (a member id, or "denied")."""

    def __init__(self, federation: Federation) -> None:
        self.federation = federation
        self.calls: list[str] = []

    def __call__(self, _request: bytes, context: grpc.ServicerContext) -> bytes:
        try:
            member_id = peer_member_id(context.auth_context(), self.federation)
        except PolicyError as error:
            self.calls.append("denied")
            context.abort(grpc.StatusCode.PERMISSION_DENIED, str(error))
        self.calls.append(member_id)
        return member_id.encode()


def start_member_server(
    federation: Federation,
    server_identity: ServerIdentity,
    method: str,
    handler: Callable[[bytes, grpc.ServicerContext], bytes],
) -> tuple[grpc.Server, int]:
    """A started gRPC server on 127.0.0.1 serving ``method`` ("/service/name", bytes in and out)
    over TLS that trusts exactly the federation's member certificates; returns it and its port."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    service, name = method.strip("/").split("/")
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                service, {name: grpc.unary_unary_rpc_method_handler(handler)}
            ),
        )
    )
    credentials = grpc.ssl_server_credentials(
        [(server_identity.private_key_pem, server_identity.certificate_pem)],
        root_certificates=member_trust_bundle(federation),
        require_client_auth=True,
    )
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    return server, port


@contextlib.contextmanager
def serve_members(
    federation: Federation, server_identity: ServerIdentity
) -> Iterator[tuple[int, MemberRecorder]]:
    """``WHO_AM_I`` served to the federation's members (see :func:`start_member_server`);
    yields the port and the recorder."""
    recorder = MemberRecorder(federation)
    server, port = start_member_server(federation, server_identity, WHO_AM_I, recorder)
    try:
        yield port, recorder
    finally:
        server.stop(grace=None)
