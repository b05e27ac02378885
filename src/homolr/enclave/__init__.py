"""homolr.enclave: attestation, sealed state and TLS identities of the parameter server.

The PS (inside an SGX enclave under Gramine) binds its Paillier public key and TLS key into
the report data of an SGX quote (:mod:`~homolr.enclave.binding`,
:mod:`~homolr.enclave.provider`); workers parse the quote (:mod:`~homolr.enclave.quote`),
check it against a policy (:mod:`~homolr.enclave.policy`) and verify its signature chain
(:mod:`~homolr.enclave.verifier`) before encrypting anything. :mod:`~homolr.enclave.tls`
holds the attested server identity, certificate pinning and the development PKI for
worker client certificates; :mod:`~homolr.enclave.identity` the members' own key pairs and
their admission through the federation file; :mod:`~homolr.enclave.sealing` the PS's atomic
checkpoints.
"""

from homolr.enclave.binding import (
    REPORT_DATA_DOMAIN,
    REPORT_DATA_DOMAIN_V2,
    report_data_for,
    report_data_for_federation,
)
from homolr.enclave.identity import (
    MemberIdentity,
    federation_member_snippet,
    generate_member_identity,
    member_trust_bundle,
    peer_member_id,
    spki_fingerprint,
    write_member_identity,
)
from homolr.enclave.policy import AttestationPolicy, check_quote, parse_measurement, parse_u16
from homolr.enclave.provider import (
    GRAMINE_ATTESTATION_DIR,
    GramineQuoteProvider,
    QuoteProvider,
    SimulatedQuoteProvider,
)
from homolr.enclave.quote import (
    SGX_FLAGS_DEBUG,
    SYNTHETIC_CERT_DATA,
    Attributes,
    EcdsaSignatureData,
    Quote,
    ReportBody,
    build_quote,
    parse_quote,
)
from homolr.enclave.sealing import (
    SealedStore,
    private_key_from_document,
    private_key_to_document,
)
from homolr.enclave.tls import (
    CHANNEL_OPTIONS,
    SERVER_NAME,
    ClientCertificateRefused,
    ServerIdentity,
    certificate_public_key_der,
    check_pinned_certificate,
    fetch_server_certificate,
    generate_server_identity,
    pinned_channel_credentials,
)
from homolr.enclave.verifier import (
    AttestationOutcome,
    DcapVerifier,
    QuoteVerifier,
    SimulatedQuoteVerifier,
    VerificationResult,
    classify_dcap_result,
    verify_attestation,
)

#: Printed by every party when ``--attestation none`` is chosen.
NO_ATTESTATION_WARNING = (
    "WARNING: --attestation none: the parameter server is NOT verified to run in an SGX "
    "enclave; whoever runs it can read the model and decrypt every aggregate. Development only."
)
#: Printed when ``--insecure`` disables TLS.
INSECURE_TRANSPORT_WARNING = (
    "WARNING: --insecure: gRPC traffic is neither encrypted nor authenticated. Development only."
)

__all__ = [
    "CHANNEL_OPTIONS",
    "GRAMINE_ATTESTATION_DIR",
    "INSECURE_TRANSPORT_WARNING",
    "NO_ATTESTATION_WARNING",
    "REPORT_DATA_DOMAIN",
    "REPORT_DATA_DOMAIN_V2",
    "SERVER_NAME",
    "SGX_FLAGS_DEBUG",
    "SYNTHETIC_CERT_DATA",
    "AttestationOutcome",
    "AttestationPolicy",
    "Attributes",
    "ClientCertificateRefused",
    "DcapVerifier",
    "EcdsaSignatureData",
    "GramineQuoteProvider",
    "MemberIdentity",
    "Quote",
    "QuoteProvider",
    "QuoteVerifier",
    "ReportBody",
    "SealedStore",
    "ServerIdentity",
    "SimulatedQuoteProvider",
    "SimulatedQuoteVerifier",
    "VerificationResult",
    "build_quote",
    "certificate_public_key_der",
    "check_pinned_certificate",
    "check_quote",
    "classify_dcap_result",
    "federation_member_snippet",
    "fetch_server_certificate",
    "generate_member_identity",
    "generate_server_identity",
    "member_trust_bundle",
    "parse_measurement",
    "parse_quote",
    "parse_u16",
    "peer_member_id",
    "pinned_channel_credentials",
    "private_key_from_document",
    "private_key_to_document",
    "report_data_for",
    "report_data_for_federation",
    "spki_fingerprint",
    "verify_attestation",
    "write_member_identity",
]
