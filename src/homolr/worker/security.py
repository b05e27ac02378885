"""The member's checks on the PS before it encrypts anything: pin, attest, compare federations.

With TLS the member learns the PS's certificate in an unverified handshake and pins it; the
key-exchange reply must name the same certificate. Then, in order:

1. federation: the canonical federation document the PS announces must be byte-identical to the
   canonical form of the member's own copy (otherwise the member stops and names every field that
   differs: an added member, a lowered ``min_workers``, another participation policy, ...);
2. attestation: the enclave's quote must bind exactly the Paillier key received, the pinned
   certificate's public key and the hash of the member's own federation file, satisfy the policy
   (MRENCLAVE, or MRSIGNER + product id + minimum SVN, debug off) and carry a valid signature chain.

Any failure raises :class:`~homolr.errors.AttestationError` naming the check, the expected and the
received value. Before connecting, :func:`check_membership` makes sure the member's own id and
certificate are the ones its federation file lists.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
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
    report_data_for_federation,
    verify_attestation,
)
from homolr.errors import AttestationError, ConfigError, TransportError
from homolr.federation import (
    Federation,
    canonical_bytes,
    describe_differences,
    federation_from_canonical,
    federation_hash_hex,
    spki_fingerprint,
)
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


def check_membership(federation: Federation, member_id: str, security: WorkerSecurity) -> None:
    """The member's id must be in its federation file, with the certificate it presents."""
    member = federation.member(member_id)
    if member is None:
        raise ConfigError(
            f"'{member_id}' is not a member of federation '{federation.name}' (members: "
            f"{', '.join(federation.member_ids)}); check --id and --federation"
        )
    if security.identity is not None:
        presented = spki_fingerprint(security.identity.certificate_pem)
        if presented != member.fingerprint:
            raise ConfigError(
                f"--cert has key fingerprint {presented}, but federation '{federation.name}' lists "
                f"{member.fingerprint} for '{member_id}'"
            )


def fetch_pinned_certificate(
    target: str, identity: ClientIdentity, retry_budget_s: float, log: Callable[[str], None]
) -> bytes:
    """The PS's certificate, retrying while the PS is not up yet (like UNAVAILABLE)."""
    host, port = split_target(target)
    started = time.monotonic()
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
        except TransportError as exc:
            used = time.monotonic() - started
            if used + delay > retry_budget_s:
                raise
            log(f"{exc}; retrying in {delay:.1f} s, {used:.0f} s of {retry_budget_s:g} s used")
            time.sleep(delay)
    raise AssertionError("unreachable")


def open_connection(
    target: str,
    security: WorkerSecurity,
    *,
    retry_budget_s: float,
    log: Callable[[str], None] = lambda text: None,
) -> tuple[Connection, bytes | None]:
    """A connection to the PS and the pinned certificate (None without TLS)."""
    if security.identity is None:
        return Connection(target, retry_budget_s=retry_budget_s, log=log), None
    pinned = fetch_pinned_certificate(target, security.identity, retry_budget_s, log)
    credentials = pinned_channel_credentials(
        pinned, security.identity.certificate_pem, security.identity.private_key_pem
    )
    connection = Connection(
        target,
        credentials=credentials,
        target_name_override=SERVER_NAME,
        retry_budget_s=retry_budget_s,
        log=log,
    )
    return connection, pinned


def check_federation(info: ServerInfo, federation: Federation) -> bytes:
    """The PS must announce exactly the member's federation; return its canonical bytes."""
    mine = canonical_bytes(federation)
    if info.federation == mine:
        return mine
    if not info.federation:
        raise AttestationError(
            "federation",
            f"federation '{federation.name}' sha256:{federation_hash_hex(federation)}",
            "none (the PS runs without a federation file)",
        )
    theirs = federation_from_canonical(info.federation, "the PS's federation")
    differences = describe_differences(federation, theirs)
    raise AttestationError(
        "federation",
        f"sha256:{federation_hash_hex(federation)} (your file)",
        f"sha256:{hashlib.sha256(info.federation).hexdigest()} (the PS's)",
        "; ".join(differences) or "the files differ",
    )


def verify_server(
    info: ServerInfo,
    pinned: bytes | None,
    security: WorkerSecurity,
    federation: Federation | None,
) -> str:
    """Check the PS's announcement; return a one-line description of what was verified."""
    if pinned is not None:
        check_pinned_certificate(pinned, info.tls_certificate)
    described = "open membership (no federation file)"
    fed_hash = b""
    if federation is not None:
        fed_hash = hashlib.sha256(check_federation(info, federation)).digest()
        described = (
            f"federation '{federation.name}' sha256:{fed_hash.hex()}; members: "
            + ", ".join(f"{m.id} ({m.fingerprint[:19]}...)" for m in federation.members)
        )
    if security.policy is None or security.verifier is None:
        return f"PS NOT verified (--attestation none); {described}"
    if info.attestation_type == "none" or not info.quote:
        raise AttestationError(
            "attestation-type",
            "an SGX quote from the PS",
            f"none (the PS runs with --attestation {info.attestation_type})",
        )
    tls_public_key = certificate_public_key_der(pinned) if pinned is not None else b""
    expected = report_data_for_federation(info.public_key, tls_public_key, fed_hash)
    outcome = verify_attestation(info.quote, security.policy, expected, security.verifier)
    return (
        f"PS attested: {outcome.quote.summary()}; verifier {outcome.verification.status}; "
        f"the quote binds {described}"
    )


__all__ = [
    "ClientIdentity",
    "WorkerSecurity",
    "check_federation",
    "check_membership",
    "open_connection",
    "split_target",
    "verify_server",
]
