"""The worker's checks on the PS before it encrypts anything: pin, attest, then trust.

With TLS the worker learns the PS's certificate in an unverified handshake and pins it; the
key-exchange reply must name the same certificate, and the enclave's quote must bind exactly the
Paillier key received and the pinned certificate's public key, satisfy the policy (MRENCLAVE, or
MRSIGNER + product id + minimum SVN, debug off) and carry a valid signature chain. Any failure raises
:class:`~homolr.errors.AttestationError` naming the check, the expected and the received value.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from homolr.enclave import (
    SERVER_NAME,
    AttestationPolicy,
    ClientCertificateRefused,
    QuoteVerifier,
    certificate_public_key_der,
    check_pinned_certificate,
    fetch_server_certificate,
    pinned_channel_credentials,
    verify_attestation,
)
from homolr.errors import AttestationError, TransportError
from homolr.protocol.messages import ServerInfo
from homolr.worker.transport import Connection, backoff_delays


@dataclass(frozen=True)
class ClientIdentity:
    certificate_pem: bytes
    private_key_pem: bytes


@dataclass(frozen=True)
class WorkerSecurity:
    """``identity`` None means --insecure; ``policy``/``verifier`` None means --attestation none."""

    identity: ClientIdentity | None
    policy: AttestationPolicy | None
    verifier: QuoteVerifier | None


def split_target(target: str) -> tuple[str, int]:
    host, _, port = target.rpartition(":")
    return host.strip("[]"), int(port)


def fetch_pinned_certificate(target: str, identity: ClientIdentity, retry_budget_s: float) -> bytes:
    """The PS's certificate, retrying while the PS is not up yet (like UNAVAILABLE)."""
    host, port = split_target(target)
    give_up = time.monotonic() + retry_budget_s
    for delay in backoff_delays():
        try:
            return fetch_server_certificate(
                host,
                port,
                client_cert_pem=identity.certificate_pem,
                client_key_pem=identity.private_key_pem,
            )
        except ClientCertificateRefused:
            raise
        except TransportError:
            if time.monotonic() + delay > give_up:
                raise
            time.sleep(delay)
    raise AssertionError("unreachable")


def open_connection(
    target: str, security: WorkerSecurity, *, retry_budget_s: float
) -> tuple[Connection, bytes | None]:
    """A connection to the PS and the pinned certificate (None without TLS)."""
    if security.identity is None:
        return Connection(target, retry_budget_s=retry_budget_s), None
    pinned = fetch_pinned_certificate(target, security.identity, retry_budget_s)
    credentials = pinned_channel_credentials(
        pinned, security.identity.certificate_pem, security.identity.private_key_pem
    )
    connection = Connection(
        target,
        credentials=credentials,
        target_name_override=SERVER_NAME,
        retry_budget_s=retry_budget_s,
    )
    return connection, pinned


def verify_server(info: ServerInfo, pinned: bytes | None, security: WorkerSecurity) -> str:
    """Check the PS's announcement; return a one-line description of what was verified."""
    if pinned is not None:
        check_pinned_certificate(pinned, info.tls_certificate)
    if security.policy is None or security.verifier is None:
        return "PS NOT verified (--attestation none)"
    if info.attestation_type == "none" or not info.quote:
        raise AttestationError(
            "attestation-type",
            "an SGX quote from the PS",
            f"none (the PS runs with --attestation {info.attestation_type})",
        )
    tls_public_key = certificate_public_key_der(pinned) if pinned is not None else b""
    outcome = verify_attestation(
        info.quote, security.policy, info.public_key, tls_public_key, security.verifier
    )
    return f"PS attested: {outcome.quote.summary()}; verifier {outcome.verification.status}"


__all__ = ["ClientIdentity", "WorkerSecurity", "open_connection", "split_target", "verify_server"]
