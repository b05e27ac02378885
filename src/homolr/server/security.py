"""What attestation and TLS contribute to the PS: the quote, server credentials, client checks.

The quote's report data binds the Paillier public key, the TLS public key and the federation file's
hash (:func:`~homolr.enclave.binding.report_data_for_federation`), so a member that checks the quote
knows all three belong to the measured enclave. With TLS, a client must present one of the
federation's member certificates (the trust bundle), and every call's member id must be the one
whose certificate fingerprint the client presented: no CA takes part in admission.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc import aio

from homolr.crypto import PublicKey
from homolr.enclave import (
    GramineQuoteProvider,
    QuoteProvider,
    ServerIdentity,
    SimulatedQuoteProvider,
    report_data_for_federation,
)
from homolr.server.servicer import Authenticator

#: Maps a peer's auth context (grpc ``context.auth_context()``) to the member id its certificate
#: proves, or raises PolicyError.
Identify = Callable[[Mapping[str, object]], str]


@dataclass(frozen=True)
class ServerSecurity:
    """What the transport and the attestation contribute to the PS (TLS, quote, client auth)."""

    credentials: grpc.ServerCredentials | None = None
    tls_certificate: bytes = b""
    quote: bytes = b""
    attestation_type: str = "none"
    authenticate: Authenticator | None = None


def quote_provider(
    kind: str, attestation_dir: Path, simulated_mrenclave: bytes
) -> QuoteProvider | None:
    """The quote source for ``--attestation`` ``dcap`` (Gramine), ``simulated`` (tests) or ``none``."""
    if kind == "dcap":
        return GramineQuoteProvider(attestation_dir)
    if kind == "simulated":
        return SimulatedQuoteProvider(simulated_mrenclave, bytes(32), isv_prod_id=0, isv_svn=0)
    return None


def certificate_authenticator(identify: Identify) -> Authenticator:
    """Authenticate a call by the client certificate of its TLS connection."""

    def authenticate(context: aio.ServicerContext[object, object]) -> str:
        return identify(context.auth_context())

    return authenticate


def make_server_security(
    *,
    public_key: PublicKey,
    provider: QuoteProvider | None,
    attestation: str,
    tls_identity: ServerIdentity | None,
    federation_hash: bytes,
    client_roots: bytes | None,
    identify: Identify | None,
) -> ServerSecurity:
    """The PS's quote (over its keys and the federation hash) and, with TLS, mutual-TLS
    credentials that admit exactly the certificates in ``client_roots``."""
    tls_public_key = tls_identity.public_key_der if tls_identity is not None else b""
    quote = b""
    if provider is not None:
        quote = provider.quote_for(
            report_data_for_federation(public_key.to_bytes(), tls_public_key, federation_hash)
        )
    if tls_identity is None or client_roots is None or identify is None:
        return ServerSecurity(quote=quote, attestation_type=attestation)
    credentials = grpc.ssl_server_credentials(
        [(tls_identity.private_key_pem, tls_identity.certificate_pem)],
        root_certificates=client_roots,
        require_client_auth=True,
    )
    return ServerSecurity(
        credentials=credentials,
        tls_certificate=tls_identity.certificate_pem,
        quote=quote,
        attestation_type=attestation,
        authenticate=certificate_authenticator(identify),
    )


__all__ = [
    "Identify",
    "ServerSecurity",
    "certificate_authenticator",
    "make_server_security",
    "quote_provider",
]
