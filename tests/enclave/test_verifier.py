"""Signature-chain verifiers and the complete worker-side check (verify_attestation)."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import shutil
import subprocess
from pathlib import Path

import pytest

from homolr.enclave.binding import report_data_for, report_data_for_federation
from homolr.enclave.policy import AttestationPolicy
from homolr.enclave.quote import build_quote
from homolr.enclave.verifier import (
    NON_TERMINAL_RESULTS,
    DcapVerifier,
    QuoteVerifier,
    SimulatedQuoteVerifier,
    VerificationResult,
    classify_dcap_result,
    verify_attestation,
)
from homolr.errors import AttestationError, ConfigError
from tests.enclave.support import (
    MRENCLAVE,
    MRSIGNER,
    PAILLIER_PK,
    TLS_SPKI,
    make_quote,
)

TERMINAL = [0xA004, 0xA005, 0xA006, 0xA0FF, 0x1234]
FEDERATION_HASH = bytes(range(32))
#: What a member expects: the keys it received and the hash of its own federation file (v2).
EXPECTED = report_data_for_federation(PAILLIER_PK, TLS_SPKI, FEDERATION_HASH)
#: What make_quote() binds (v1 report data): for tests where the binding is not the point.
V1 = report_data_for(PAILLIER_PK, TLS_SPKI)


#: A synthetic quote binding v2 report data (keys and federation hash).
_quote = functools.partial(make_quote, federation_hash=FEDERATION_HASH)


class RecordingVerifier:
    """A verifier stub that records calls and returns a fixed result."""

    def __init__(self, result: VerificationResult) -> None:
        self.result = result
        self.calls: list[bytes] = []

    def verify(self, quote_bytes: bytes) -> VerificationResult:
        self.calls.append(quote_bytes)
        return self.result


ACCEPT = VerificationResult(verifier="stub", accepted=True, status="OK", code=0)
REVOKED = VerificationResult(
    verifier="stub", accepted=False, status="REVOKED", code=0xA005, detail="terminal"
)


# --- classify_dcap_result ----------------------------------------------------------------


def test_ok_is_accepted() -> None:
    result = classify_dcap_result(0, 0, allow_outdated_tcb=False, allow_expired_collateral=False)
    assert result.accepted and result.status == "OK" and not result.collateral_expired


@pytest.mark.parametrize("code", sorted(NON_TERMINAL_RESULTS))
def test_non_terminal_results_need_the_flag(code: int) -> None:
    strict = classify_dcap_result(code, 0, allow_outdated_tcb=False, allow_expired_collateral=False)
    lenient = classify_dcap_result(code, 0, allow_outdated_tcb=True, allow_expired_collateral=False)
    assert not strict.accepted and lenient.accepted
    assert strict.status == lenient.status != "OK"


@pytest.mark.parametrize("code", TERMINAL)
def test_terminal_results_are_always_rejected(code: int) -> None:
    result = classify_dcap_result(code, 0, allow_outdated_tcb=True, allow_expired_collateral=True)
    assert not result.accepted
    assert "terminal" in result.detail


def test_names_of_results() -> None:
    names = {
        code: classify_dcap_result(
            code, 0, allow_outdated_tcb=True, allow_expired_collateral=True
        ).status
        for code in (0xA002, 0xA004, 0xA005, 0x1234)
    }
    assert names == {
        0xA002: "OUT_OF_DATE",
        0xA004: "INVALID_SIGNATURE",
        0xA005: "REVOKED",
        0x1234: "UNKNOWN_0x1234",
    }


def test_expired_collateral_needs_its_own_flag() -> None:
    strict = classify_dcap_result(0, 1, allow_outdated_tcb=True, allow_expired_collateral=False)
    lenient = classify_dcap_result(0, 1, allow_outdated_tcb=False, allow_expired_collateral=True)
    assert not strict.accepted and strict.collateral_expired
    assert lenient.accepted and "expired" in lenient.detail
    both = classify_dcap_result(0xA002, 1, allow_outdated_tcb=False, allow_expired_collateral=True)
    assert not both.accepted


# --- verify_attestation --------------------------------------------------------------------


def test_good_quote_is_accepted(mrenclave_policy: AttestationPolicy) -> None:
    verifier = RecordingVerifier(ACCEPT)
    quote = _quote()
    outcome = verify_attestation(quote, mrenclave_policy, EXPECTED, verifier)
    assert outcome.quote.mr_enclave == MRENCLAVE
    assert outcome.quote.report_data == EXPECTED
    assert outcome.verification is ACCEPT
    assert verifier.calls == [quote]


@pytest.mark.parametrize(
    ("quote_kwargs", "check"),
    [
        ({"mr_enclave": MRSIGNER}, "mrenclave"),
        ({"debug": True}, "debug"),
        ({"paillier_pk": b"mitm-paillier-key"}, "report-data"),
        ({"tls_spki": b"mitm-tls-key"}, "report-data"),
        ({"federation_hash": bytes(31) + b"\x01"}, "report-data"),
    ],
    ids=["mrenclave", "debug", "paillier-key", "tls-key", "federation"],
)
def test_policy_failures_stop_before_the_signature_check(
    mrenclave_policy: AttestationPolicy, quote_kwargs: dict[str, bytes], check: str
) -> None:
    verifier = RecordingVerifier(ACCEPT)
    with pytest.raises(AttestationError) as info:
        verify_attestation(_quote(**quote_kwargs), mrenclave_policy, EXPECTED, verifier)  # type: ignore[arg-type]
    assert info.value.check == check
    assert verifier.calls == []


def test_a_quote_of_another_federation_names_both_report_data(
    mrenclave_policy: AttestationPolicy,
) -> None:
    theirs = report_data_for_federation(PAILLIER_PK, TLS_SPKI, bytes(32))
    with pytest.raises(AttestationError) as info:
        verify_attestation(
            _quote(federation_hash=bytes(32)), mrenclave_policy, EXPECTED, RecordingVerifier(ACCEPT)
        )
    assert info.value.check == "report-data"
    assert EXPECTED.hex() in str(info.value) and theirs.hex() in str(info.value)
    assert "federation" in str(info.value)


def test_v1_report_data_of_the_same_keys_is_not_v2_report_data(
    mrenclave_policy: AttestationPolicy,
) -> None:
    # An enclave build that binds only the keys (v1) cannot pass for one that binds the federation.
    verifier = RecordingVerifier(ACCEPT)
    with pytest.raises(AttestationError) as info:
        verify_attestation(make_quote(), mrenclave_policy, EXPECTED, verifier)
    assert info.value.check == "report-data"
    assert verifier.calls == []


@pytest.mark.parametrize("size", [0, 32, 63, 65])
def test_a_malformed_expected_report_data_is_refused(
    mrenclave_policy: AttestationPolicy, size: int
) -> None:
    verifier = RecordingVerifier(ACCEPT)
    with pytest.raises(AttestationError) as info:
        verify_attestation(
            _quote(), mrenclave_policy, EXPECTED[:size] + bytes(max(0, size - 64)), verifier
        )
    assert info.value.check == "report-data"
    assert verifier.calls == []


@pytest.mark.parametrize("cut", [0, 100, 435, 436, 600])
def test_truncated_and_garbage_quotes(mrenclave_policy: AttestationPolicy, cut: int) -> None:
    verifier = RecordingVerifier(ACCEPT)
    for data in (make_quote()[:cut], b"\xff" * (cut + 500)):
        with pytest.raises(AttestationError) as info:
            verify_attestation(data, mrenclave_policy, V1, verifier)
        assert info.value.check == "quote-format"
    assert verifier.calls == []


def test_rejected_signature_names_the_status(mrenclave_policy: AttestationPolicy) -> None:
    with pytest.raises(AttestationError) as info:
        verify_attestation(_quote(), mrenclave_policy, EXPECTED, RecordingVerifier(REVOKED))
    assert info.value.check == "quote-signature"
    assert "REVOKED (0xa005)" in str(info.value)


def test_simulated_verifier_accepts_only_synthetic_quotes(
    mrenclave_policy: AttestationPolicy,
) -> None:
    verifier = SimulatedQuoteVerifier()
    assert isinstance(verifier, QuoteVerifier)
    outcome = verify_attestation(_quote(), mrenclave_policy, EXPECTED, verifier)
    assert outcome.verification.status == "SIMULATED"
    looks_real = build_quote(
        mr_enclave=MRENCLAVE,
        mr_signer=MRSIGNER,
        isv_prod_id=7,
        isv_svn=3,
        report_data=EXPECTED,
        signature_data=bytes(576) + b"\x00\x00" + b"\x05\x00" + b"\x03\x00\x00\x00" + b"pem",
    )
    with pytest.raises(AttestationError, match="NOT_SYNTHETIC"):
        verify_attestation(looks_real, mrenclave_policy, EXPECTED, verifier)
    assert not verifier.verify(b"garbage").accepted


# --- DcapVerifier through ctypes --------------------------------------------------------------


def test_missing_dcap_library_is_a_clear_config_error() -> None:
    with pytest.raises(ConfigError, match=r"libsgx_dcap_quoteverify_missing\.so\.1") as info:
        DcapVerifier("libsgx_dcap_quoteverify_missing.so.1")
    assert "--attestation none" in str(info.value)


def test_library_without_the_symbols_is_refused() -> None:
    with pytest.raises(ConfigError, match="cannot load"):
        DcapVerifier(ctypes.util.find_library("c") or "libc.so.6")


FAKE_QVL = r"""
#include <stdint.h>
#include <string.h>
#include <time.h>
static uint32_t g_ret, g_result, g_expired, g_supp_ret;
static uint32_t g_size; static long g_date; static uint8_t g_head[4]; static int g_nulls;
void fake_configure(uint32_t ret, uint32_t result, uint32_t expired, uint32_t supp_ret) {
    g_ret = ret; g_result = result; g_expired = expired; g_supp_ret = supp_ret;
}
uint32_t fake_size(void) { return g_size; }
long fake_date(void) { return g_date; }
uint32_t fake_head(void) {
    return g_head[0] | (g_head[1] << 8) | (g_head[2] << 16) | ((uint32_t)g_head[3] << 24);
}
int fake_nulls(void) { return g_nulls; }
uint32_t sgx_qv_get_quote_supplemental_data_size(uint32_t *size) {
    if (g_supp_ret) return g_supp_ret;
    *size = 16; return 0;
}
uint32_t sgx_qv_verify_quote(const uint8_t *quote, uint32_t size, const void *collateral,
                             time_t date, uint32_t *expired, uint32_t *result,
                             void *qve_report_info, uint32_t supp_size, uint8_t *supp) {
    g_size = size; g_date = (long)date; memcpy(g_head, quote, 4);
    g_nulls = (collateral == NULL) + 2 * (qve_report_info == NULL) + 4 * (supp == NULL);
    if (supp != NULL) memset(supp, 0xAB, supp_size);
    if (g_ret) return g_ret;
    *expired = g_expired; *result = g_result; return 0;
}
"""


@pytest.fixture(scope="module")
def fake_qvl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler to build the fake DCAP library")
    directory = tmp_path_factory.mktemp("fake_qvl")
    source = directory / "fake_qvl.c"
    source.write_text(FAKE_QVL)
    library = directory / "libfake_qvl.so"
    subprocess.run(
        [compiler, "-shared", "-fPIC", "-O1", "-o", str(library), str(source)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return library


def _configure(
    library: Path, ret: int, result: int, expired: int = 0, supp: int = 0
) -> ctypes.CDLL:
    handle = ctypes.CDLL(str(library))
    handle.fake_configure(ret, result, expired, supp)
    handle.fake_date.restype = ctypes.c_long
    handle.fake_head.restype = ctypes.c_uint32
    return handle


def test_dcap_ok_passes_the_quote_and_date(fake_qvl: Path) -> None:
    handle = _configure(fake_qvl, 0, 0)
    quote = make_quote()
    result = DcapVerifier(str(fake_qvl), clock=lambda: 1_700_000_000.7).verify(quote)
    assert result.accepted and result.status == "OK" and result.verifier == "dcap"
    assert handle.fake_size() == len(quote)
    assert handle.fake_head() == int.from_bytes(quote[:4], "little")
    assert handle.fake_date() == 1_700_000_000
    assert handle.fake_nulls() == 3  # no collateral (QPL fetches it), no QvE, supplemental given
    assert result.supplemental_data == b"\xab" * 16


def test_dcap_out_of_date_follows_the_flag(fake_qvl: Path) -> None:
    _configure(fake_qvl, 0, 0xA002)
    assert not DcapVerifier(str(fake_qvl)).verify(make_quote()).accepted
    lenient = DcapVerifier(str(fake_qvl), allow_outdated_tcb=True).verify(make_quote())
    assert lenient.accepted and lenient.status == "OUT_OF_DATE"


def test_dcap_invalid_signature_fails_verify_attestation(
    fake_qvl: Path, mrenclave_policy: AttestationPolicy
) -> None:
    _configure(fake_qvl, 0, 0xA004)
    verifier = DcapVerifier(str(fake_qvl), allow_outdated_tcb=True)
    with pytest.raises(AttestationError, match="INVALID_SIGNATURE") as info:
        verify_attestation(_quote(), mrenclave_policy, EXPECTED, verifier)
    assert info.value.check == "quote-signature"


def test_dcap_call_failure_is_named(fake_qvl: Path) -> None:
    _configure(fake_qvl, 0xE019, 0)
    result = DcapVerifier(str(fake_qvl)).verify(make_quote())
    assert not result.accepted
    assert result.status == "SGX_QL_NETWORK_ERROR"


def test_dcap_without_supplemental_data_still_verifies(fake_qvl: Path) -> None:
    handle = _configure(fake_qvl, 0, 0, supp=0xE001)
    result = DcapVerifier(str(fake_qvl)).verify(make_quote())
    assert result.accepted and result.supplemental_data == b""
    assert handle.fake_nulls() == 7
