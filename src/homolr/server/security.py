"""What attestation and TLS contribute to the PS: the quote, server credentials, client checks.

The quote's report data binds the Paillier public key and the TLS public key
(:func:`~homolr.enclave.binding.report_data_for`), so a worker that checks the quote knows both keys
belong to the measured enclave. With TLS, workers must present a client certificate signed by the
configured CA whose worker id is on the allow-list.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import grpc

from homolr.crypto import PublicKey
from homolr.enclave import (
    GramineQuoteProvider,
    QuoteProvider,
    ServerIdentity,
    SimulatedQuoteProvider,
    authorize_worker,
    report_data_for,
    server_credentials,
)
from homolr.server.servicer import Authenticator


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


def allow_list_authenticator(allowed: Collection[str]) -> Authenticator:
    """Authenticate a call by its client certificate; PolicyError unless allow-listed."""
    frozen = frozenset(allowed)

    def authenticate(context: grpc.ServicerContext) -> str | None:
        return authorize_worker(context.auth_context(), frozen)

    return authenticate


def make_server_security(
    *,
    public_key: PublicKey,
    provider: QuoteProvider | None,
    attestation: str,
    tls_identity: ServerIdentity | None,
    client_ca_pem: bytes | None,
    allowed_workers: Collection[str],
) -> ServerSecurity:
    tls_public_key = tls_identity.public_key_der if tls_identity is not None else b""
    quote = b""
    if provider is not None:
        quote = provider.quote_for(report_data_for(public_key.to_bytes(), tls_public_key))
    if tls_identity is None or client_ca_pem is None:
        return ServerSecurity(quote=quote, attestation_type=attestation)
    return ServerSecurity(
        credentials=server_credentials(tls_identity, client_ca_pem),
        tls_certificate=tls_identity.certificate_pem,
        quote=quote,
        attestation_type=attestation,
        authenticate=allow_list_authenticator(allowed_workers),
    )


__all__ = ["ServerSecurity", "allow_list_authenticator", "make_server_security", "quote_provider"]
