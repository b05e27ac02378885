"""The member's verdict on the PS: pinned certificate, federation, quote binding, policy, dev mode."""

from __future__ import annotations

import hashlib

import pytest

from homolr.crypto import generate_keypair
from homolr.enclave import (
    AttestationPolicy,
    MemberIdentity,
    SimulatedQuoteProvider,
    SimulatedQuoteVerifier,
    generate_member_identity,
    generate_server_identity,
    report_data_for,
    report_data_for_federation,
)
from homolr.errors import AttestationError, ConfigError
from homolr.federation import (
    Federation,
    canonical_bytes,
    federation_hash,
    parse_federation,
    plan_from_federation,
    render_template,
)
from homolr.federation.schema import federation_from_document
from homolr.protocol.messages import PROTOCOL_VERSION, ServerInfo
from homolr.worker.security import (
    ClientIdentity,
    WorkerSecurity,
    check_federation,
    check_membership,
    verify_server,
)

MRENCLAVE = bytes.fromhex("5a" * 32)
PK = generate_keypair(512, insecure_small_key=True)[0].to_bytes()
TLS = generate_server_identity()
MEMBERS = {member_id: generate_member_identity(member_id) for member_id in ("guest", "host")}


def _federation(members: dict[str, MemberIdentity], name: str = "wisconsin") -> Federation:
    listed = [(i, m.fingerprint, m.certificate_pem) for i, m in members.items()]
    return parse_federation(render_template(name, listed), f"{name}.toml")


FEDERATION = _federation(MEMBERS)


def _quorum(federation: Federation) -> Federation:
    """``federation`` with participation lowered from 'all' to a quorum of 2 (what an operator
    would like: rounds over subsets of members, whose differences are single updates)."""
    document = federation.to_document()
    document["participation"] = {
        **document["participation"],
        "policy": "quorum",
        "min_workers": 2,
        "accept_subset_leakage": True,
    }
    if document["privacy"] is None:
        del document["privacy"]
    return federation_from_document(document, "operator's federation")


QUORUM = _quorum(FEDERATION)


def _info(
    quote: bytes,
    cert: bytes = TLS.certificate_pem,
    kind: str = "simulated",
    pk: bytes = PK,
    federation: Federation | None = FEDERATION,
) -> ServerInfo:
    plan = plan_from_federation(federation or FEDERATION)
    announced = canonical_bytes(federation) if federation is not None else b""
    return ServerInfo(PROTOCOL_VERSION, "run", pk, plan, kind, quote, cert, announced)


def _quote(
    pk: bytes = PK,
    tls_der: bytes = TLS.public_key_der,
    mrenclave: bytes = MRENCLAVE,
    federation: Federation = FEDERATION,
) -> bytes:
    provider = SimulatedQuoteProvider(mrenclave, bytes(32), isv_prod_id=0, isv_svn=0)
    return provider.quote_for(report_data_for_federation(pk, tls_der, federation_hash(federation)))


def _security(identity: ClientIdentity | None = None) -> WorkerSecurity:
    return WorkerSecurity(
        identity,
        AttestationPolicy(mrenclave=MRENCLAVE, mrsigner=None, isv_prod_id=None, min_isv_svn=None),
        SimulatedQuoteVerifier(),
    )


def test_a_quote_binding_the_pinned_certificate_the_key_and_the_federation_is_accepted() -> None:
    verdict = verify_server(_info(_quote()), TLS.certificate_pem, _security(), FEDERATION)
    assert verdict.startswith("PS attested") and MRENCLAVE.hex() in verdict
    assert federation_hash(FEDERATION).hex() in verdict
    assert "guest" in verdict and "host" in verdict


def test_another_certificate_than_the_pinned_one_is_refused() -> None:
    other = generate_server_identity()
    with pytest.raises(AttestationError, match="'tls-certificate'"):
        verify_server(
            _info(_quote(), cert=other.certificate_pem),
            TLS.certificate_pem,
            _security(),
            FEDERATION,
        )


def test_a_man_in_the_middle_with_its_own_paillier_key_is_refused() -> None:
    mitm_pk = generate_keypair(512, insecure_small_key=True)[0].to_bytes()
    with pytest.raises(AttestationError, match="'report-data'"):
        verify_server(_info(_quote(), pk=mitm_pk), TLS.certificate_pem, _security(), FEDERATION)


def test_wrong_mrenclave_names_expected_and_received() -> None:
    other = bytes.fromhex("77" * 32)
    with pytest.raises(AttestationError, match="'mrenclave'") as err:
        verify_server(_info(_quote(mrenclave=other)), TLS.certificate_pem, _security(), FEDERATION)
    assert MRENCLAVE.hex() in str(err.value) and other.hex() in str(err.value)


def test_a_ps_in_development_mode_is_refused_by_an_attesting_worker() -> None:
    with pytest.raises(AttestationError, match="'attestation-type'"):
        verify_server(_info(b"", kind="none"), TLS.certificate_pem, _security(), FEDERATION)


def test_development_mode_still_checks_the_pin_and_says_it_verified_nothing() -> None:
    dev = WorkerSecurity(None, None, None)
    assert "NOT verified" in verify_server(_info(b"", kind="none"), TLS.certificate_pem, dev, None)
    with pytest.raises(AttestationError, match="'tls-certificate'"):
        verify_server(
            _info(b"", cert=generate_server_identity().certificate_pem),
            TLS.certificate_pem,
            dev,
            None,
        )


def test_development_mode_still_compares_the_federations() -> None:
    dev = WorkerSecurity(None, None, None)
    with pytest.raises(AttestationError, match="'federation'"):
        verify_server(_info(b"", kind="none", federation=QUORUM), None, dev, FEDERATION)


# --- the federation the PS announces -----------------------------------------------------------


def test_a_ps_announcing_a_weaker_participation_rule_is_refused_and_told_what_differs() -> None:
    lowered = QUORUM
    with pytest.raises(AttestationError) as err:
        verify_server(
            _info(_quote(federation=lowered), federation=lowered),
            TLS.certificate_pem,
            _security(),
            FEDERATION,
        )
    assert err.value.check == "federation"
    text = str(err.value)
    assert "participation.policy: 'all' (yours) vs 'quorum' (PS)" in text
    assert federation_hash(FEDERATION).hex() in text
    assert hashlib.sha256(canonical_bytes(lowered)).hexdigest() in text


def test_a_ps_announcing_an_extra_member_is_refused_and_the_member_is_named() -> None:
    padded = _federation({**MEMBERS, "mallory": generate_member_identity("mallory")})
    with pytest.raises(AttestationError) as err:
        check_federation(_info(b"", federation=padded), FEDERATION)
    assert err.value.check == "federation" and "mallory" in str(err.value)


def test_a_ps_without_a_federation_is_refused_by_a_member_with_one() -> None:
    with pytest.raises(AttestationError) as err:
        verify_server(
            _info(_quote(), federation=None), TLS.certificate_pem, _security(), FEDERATION
        )
    assert err.value.check == "federation" and "without a federation file" in str(err.value)


def test_the_members_federation_announced_over_a_quote_of_another_federation_is_refused() -> None:
    # The PS replays the member's own canonical file, but its enclave was started with another.
    operators = _federation(MEMBERS, name="wisconsin-operator")
    with pytest.raises(AttestationError) as err:
        verify_server(
            _info(_quote(federation=operators)), TLS.certificate_pem, _security(), FEDERATION
        )
    assert err.value.check == "report-data"


def test_a_quote_binding_only_the_keys_is_refused_under_a_federation() -> None:
    provider = SimulatedQuoteProvider(MRENCLAVE, bytes(32), isv_prod_id=0, isv_svn=0)
    v1 = provider.quote_for(report_data_for(PK, TLS.public_key_der))
    with pytest.raises(AttestationError, match="'report-data'"):
        verify_server(_info(v1), TLS.certificate_pem, _security(), FEDERATION)


def test_check_federation_returns_the_canonical_bytes() -> None:
    assert check_federation(_info(b""), FEDERATION) == canonical_bytes(FEDERATION)


# --- the member's own identity --------------------------------------------------------------------


def _identity(member: MemberIdentity) -> ClientIdentity:
    return ClientIdentity(member.certificate_pem, member.private_key_pem)


def test_a_listed_member_with_its_own_certificate_passes_the_membership_check() -> None:
    check_membership(FEDERATION, "guest", _security(_identity(MEMBERS["guest"])))
    check_membership(FEDERATION, "host", WorkerSecurity(None, None, None))


def test_an_id_outside_the_federation_is_a_config_error_listing_the_members() -> None:
    with pytest.raises(ConfigError, match="'mallory' is not a member") as err:
        check_membership(FEDERATION, "mallory", _security())
    assert "guest, host" in str(err.value)


def test_another_members_certificate_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="lists") as err:
        check_membership(FEDERATION, "guest", _security(_identity(MEMBERS["host"])))
    assert MEMBERS["guest"].fingerprint in str(err.value)
    assert MEMBERS["host"].fingerprint in str(err.value)
