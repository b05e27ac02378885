"""Quote providers: Gramine's /dev/attestation (faked with files) and the simulated one."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from homolr.enclave.binding import report_data_for, report_data_for_federation
from homolr.enclave.policy import AttestationPolicy
from homolr.enclave.provider import GramineQuoteProvider, QuoteProvider, SimulatedQuoteProvider
from homolr.enclave.quote import parse_quote
from homolr.enclave.verifier import SimulatedQuoteVerifier, verify_attestation
from homolr.errors import AttestationError
from tests.enclave.support import (
    ISV_PROD_ID,
    ISV_SVN,
    MRENCLAVE,
    MRSIGNER,
    PAILLIER_PK,
    TLS_SPKI,
    make_quote,
)

REPORT_DATA = report_data_for(PAILLIER_PK, TLS_SPKI)


def _fake_gramine(root: Path, kind: str = "dcap\n", quote: bytes | None = None) -> Path:
    """A directory shaped like Gramine's /dev/attestation, with ordinary files."""
    root.mkdir(exist_ok=True)
    (root / "attestation_type").write_text(kind)
    (root / "user_report_data").write_bytes(bytes(64))
    if quote is not None:
        (root / "quote").write_bytes(quote)
    return root


def test_gramine_provider_writes_report_data_and_reads_the_quote(tmp_path: Path) -> None:
    quote = make_quote()
    root = _fake_gramine(tmp_path / "attestation", quote=quote)
    provider = GramineQuoteProvider(root)
    assert isinstance(provider, QuoteProvider)
    assert provider.quote_for(REPORT_DATA) == quote
    assert (root / "user_report_data").read_bytes() == REPORT_DATA


@pytest.mark.parametrize("kind", ["none\n", "epid", ""])
def test_gramine_provider_requires_dcap(tmp_path: Path, kind: str) -> None:
    root = _fake_gramine(tmp_path / "attestation", kind=kind, quote=make_quote())
    with pytest.raises(AttestationError) as info:
        GramineQuoteProvider(root).quote_for(REPORT_DATA)
    assert info.value.check == "attestation-type"
    assert repr(kind.strip()) in str(info.value)
    assert 'sgx.remote_attestation = "dcap"' in str(info.value)
    assert (root / "user_report_data").read_bytes() == bytes(64)  # nothing written


def test_gramine_provider_outside_gramine(tmp_path: Path) -> None:
    with pytest.raises(AttestationError) as info:
        GramineQuoteProvider(tmp_path / "missing").quote_for(REPORT_DATA)
    assert info.value.check == "attestation-type"
    assert "gramine-sgx" in str(info.value)


def test_gramine_provider_missing_quote_file(tmp_path: Path) -> None:
    root = _fake_gramine(tmp_path / "attestation")
    with pytest.raises(AttestationError) as info:
        GramineQuoteProvider(root).quote_for(REPORT_DATA)
    assert info.value.check == "quote-generation"
    assert "quote" in str(info.value)


def test_gramine_provider_checks_the_returned_quote(tmp_path: Path) -> None:
    stale = make_quote(paillier_pk=b"an older key")
    root = _fake_gramine(tmp_path / "attestation", quote=stale)
    with pytest.raises(AttestationError) as info:
        GramineQuoteProvider(root).quote_for(REPORT_DATA)
    assert info.value.check == "report-data"
    (root / "quote").write_bytes(b"\x00" * 20)
    with pytest.raises(AttestationError) as garbage:
        GramineQuoteProvider(root).quote_for(REPORT_DATA)
    assert garbage.value.check == "quote-format"


@pytest.mark.parametrize("size", [0, 32, 63, 65])
def test_report_data_must_be_64_bytes(tmp_path: Path, size: int) -> None:
    root = _fake_gramine(tmp_path / "attestation", quote=make_quote())
    for provider in (
        GramineQuoteProvider(root),
        SimulatedQuoteProvider(MRENCLAVE, MRSIGNER, ISV_PROD_ID, ISV_SVN),
    ):
        with pytest.raises(AttestationError) as info:
            provider.quote_for(b"x" * size)
        assert info.value.check == "report-data-size"


def test_simulated_provider_builds_parseable_quotes(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="homolr.enclave.provider"):
        provider = SimulatedQuoteProvider(MRENCLAVE, MRSIGNER, ISV_PROD_ID, ISV_SVN, debug=True)
        quote = parse_quote(provider.quote_for(REPORT_DATA))
    assert "SIMULATED" in caplog.text
    assert (quote.mr_enclave, quote.mr_signer) == (MRENCLAVE, MRSIGNER)
    assert (quote.isv_prod_id, quote.isv_svn) == (ISV_PROD_ID, ISV_SVN)
    assert quote.report_data == REPORT_DATA
    assert quote.is_debug and quote.is_synthetic


def test_simulated_provider_rejects_bad_identity() -> None:
    with pytest.raises(ValueError, match="mr_enclave must be 32 bytes"):
        SimulatedQuoteProvider(b"short", MRSIGNER, 1, 1)


def test_ps_to_worker_round_trip(mrenclave_policy: AttestationPolicy) -> None:
    # PS side: bind its keys and its federation, get a quote. Worker side: recompute the report data
    # from the keys it received and its own federation file's hash, then verify.
    federation_hash = bytes(range(100, 132))
    provider = SimulatedQuoteProvider(MRENCLAVE, MRSIGNER, ISV_PROD_ID, ISV_SVN)
    quote = provider.quote_for(report_data_for_federation(PAILLIER_PK, TLS_SPKI, federation_hash))
    expected = report_data_for_federation(PAILLIER_PK, TLS_SPKI, federation_hash)
    outcome = verify_attestation(quote, mrenclave_policy, expected, SimulatedQuoteVerifier())
    assert outcome.quote.report_data == expected
    other_federation = report_data_for_federation(PAILLIER_PK, TLS_SPKI, bytes(32))
    with pytest.raises(AttestationError) as info:
        verify_attestation(quote, mrenclave_policy, other_federation, SimulatedQuoteVerifier())
    assert info.value.check == "report-data"
