"""homolr.federation: the federation file a consortium agrees on, and its hash.

The members of a consortium agree out of band on one federation file (TOML): the training
plan, the participation policy, deadlines, validation columns, differential privacy and the
members, each named by the fingerprint of a key pair it made itself. Every member keeps a copy.
The PS, inside its enclave, binds the hash of the file's canonical form into its quote; workers
refuse unless that hash is the hash of their own copy, and the PS admits only the listed keys
as TLS clients. Nobody, the PS operator included, can change the plan or add a member without
changing the hash.

Flow: ``federation.toml`` -> :func:`load_federation` (:mod:`~homolr.federation.schema`
validates and normalizes) -> :class:`Federation` -> :func:`canonical_bytes` (RFC 8785,
:mod:`~homolr.federation.jcs`) -> :func:`federation_hash` -> report data
(:func:`homolr.enclave.binding.report_data_for_federation`). A worker that receives the PS's
canonical bytes reads them with :func:`federation_from_canonical` and, if the hashes differ,
shows :func:`describe_differences`.
"""

from homolr.federation.canonical import (
    FEDERATION_HASH_SIZE,
    MAX_FEDERATION_BYTES,
    canonical_bytes,
    federation_from_canonical,
    federation_hash,
    federation_hash_hex,
)
from homolr.federation.certificates import (
    FINGERPRINT_PREFIX,
    MEMBER_ID_PATTERN,
    MEMBER_URI_PREFIX,
    check_member_certificate,
    normalize_fingerprint,
    spki_fingerprint,
    validate_member_id,
)
from homolr.federation.diff import describe_differences
from homolr.federation.jcs import canonicalize
from homolr.federation.loading import load_federation, parse_federation
from homolr.federation.plan import override_plan, plan_from_federation
from homolr.federation.schema import (
    FEDERATION_VERSION,
    SCHEMA,
    DeadlinesSection,
    Federation,
    Member,
    ParticipationSection,
    PlanSection,
    PrivacySection,
    ValidationSection,
    plan_defaults,
)
from homolr.federation.template import (
    TEMPLATE,
    federation_member_snippet,
    render_template,
    set_plan_values,
)

__all__ = [
    "FEDERATION_HASH_SIZE",
    "FEDERATION_VERSION",
    "FINGERPRINT_PREFIX",
    "MAX_FEDERATION_BYTES",
    "MEMBER_ID_PATTERN",
    "MEMBER_URI_PREFIX",
    "SCHEMA",
    "TEMPLATE",
    "DeadlinesSection",
    "Federation",
    "Member",
    "ParticipationSection",
    "PlanSection",
    "PrivacySection",
    "ValidationSection",
    "canonical_bytes",
    "canonicalize",
    "check_member_certificate",
    "describe_differences",
    "federation_from_canonical",
    "federation_hash",
    "federation_hash_hex",
    "federation_member_snippet",
    "load_federation",
    "normalize_fingerprint",
    "override_plan",
    "parse_federation",
    "plan_defaults",
    "plan_from_federation",
    "render_template",
    "set_plan_values",
    "spki_fingerprint",
    "validate_member_id",
]
