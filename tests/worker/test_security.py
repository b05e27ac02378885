"""The worker's verdict on the PS: pinned certificate, quote binding, policy, development mode."""

from __future__ import annotations

import pytest

from homolr.crypto import generate_keypair
from homolr.enclave import (
    AttestationPolicy,
    SimulatedQuoteProvider,
    SimulatedQuoteVerifier,
    generate_server_identity,
    report_data_for,
)
from homolr.errors import AttestationError
from homolr.protocol.messages import PROTOCOL_VERSION, ServerInfo, TrainingPlan
from homolr.worker.security import WorkerSecurity, verify_server

MRENCLAVE = bytes.fromhex("5a" * 32)
PK = generate_keypair(512, insecure_small_key=True)[0].to_bytes()
TLS = generate_server_identity()


def _info(
    quote: bytes, cert: bytes = TLS.certificate_pem, kind: str = "simulated", pk: bytes = PK
) -> ServerInfo:
    return ServerInfo(PROTOCOL_VERSION, "run", pk, TrainingPlan(n_features=1), kind, quote, cert)


def _quote(
    pk: bytes = PK, tls_der: bytes = TLS.public_key_der, mrenclave: bytes = MRENCLAVE
) -> bytes:
    provider = SimulatedQuoteProvider(mrenclave, bytes(32), isv_prod_id=0, isv_svn=0)
    return provider.quote_for(report_data_for(pk, tls_der))


def _security() -> WorkerSecurity:
    return WorkerSecurity(
        None,
        AttestationPolicy(mrenclave=MRENCLAVE, mrsigner=None, isv_prod_id=None, min_isv_svn=None),
        SimulatedQuoteVerifier(),
    )


def test_a_quote_binding_the_pinned_certificate_and_the_key_is_accepted() -> None:
    verdict = verify_server(_info(_quote()), TLS.certificate_pem, _security())
    assert verdict.startswith("PS attested") and MRENCLAVE.hex() in verdict


def test_another_certificate_than_the_pinned_one_is_refused() -> None:
    other = generate_server_identity()
    with pytest.raises(AttestationError, match="'tls-certificate'"):
        verify_server(_info(_quote(), cert=other.certificate_pem), TLS.certificate_pem, _security())


def test_a_man_in_the_middle_with_its_own_paillier_key_is_refused() -> None:
    mitm_pk = generate_keypair(512, insecure_small_key=True)[0].to_bytes()
    with pytest.raises(AttestationError, match="'report-data'"):
        verify_server(_info(_quote(), pk=mitm_pk), TLS.certificate_pem, _security())


def test_wrong_mrenclave_names_expected_and_received() -> None:
    other = bytes.fromhex("77" * 32)
    with pytest.raises(AttestationError, match="'mrenclave'") as err:
        verify_server(_info(_quote(mrenclave=other)), TLS.certificate_pem, _security())
    assert MRENCLAVE.hex() in str(err.value) and other.hex() in str(err.value)


def test_a_ps_in_development_mode_is_refused_by_an_attesting_worker() -> None:
    with pytest.raises(AttestationError, match="'attestation-type'"):
        verify_server(_info(b"", kind="none"), TLS.certificate_pem, _security())


def test_development_mode_still_checks_the_pin_and_says_it_verified_nothing() -> None:
    dev = WorkerSecurity(None, None, None)
    assert "NOT verified" in verify_server(_info(b"", kind="none"), TLS.certificate_pem, dev)
    with pytest.raises(AttestationError, match="'tls-certificate'"):
        verify_server(
            _info(b"", cert=generate_server_identity().certificate_pem), TLS.certificate_pem, dev
        )
