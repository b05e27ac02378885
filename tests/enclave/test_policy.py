"""Attestation policy: construction from CLI strings and every branch of check_quote."""

from __future__ import annotations

import pytest

from homolr.enclave.binding import report_data_for
from homolr.enclave.policy import AttestationPolicy, check_quote
from homolr.enclave.quote import parse_quote
from homolr.errors import AttestationError, ConfigError
from tests.enclave.support import (
    ISV_PROD_ID,
    ISV_SVN,
    MRENCLAVE,
    MRSIGNER,
    PAILLIER_PK,
    TLS_SPKI,
    make_quote,
)

EXPECTED = report_data_for(PAILLIER_PK, TLS_SPKI)
OTHER = bytes(reversed(MRENCLAVE))


def _fails(quote: bytes, policy: AttestationPolicy, expected: bytes = EXPECTED) -> AttestationError:
    with pytest.raises(AttestationError) as info:
        check_quote(parse_quote(quote), policy, expected)
    return info.value


# --- construction -----------------------------------------------------------------------


def test_from_strings_parses_hex_and_integers() -> None:
    policy = AttestationPolicy.from_strings(
        mrsigner="0x" + MRSIGNER.hex().upper(), isv_prod_id="7", min_isv_svn="0x3"
    )
    assert policy.mrsigner == MRSIGNER
    assert (policy.isv_prod_id, policy.min_isv_svn) == (7, 3)
    assert policy.mrenclave is None and not policy.allow_debug
    assert "ISVSVN>=3" in policy.describe()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mrenclave": "zz" * 32}, "--mrenclave: not a hex string"),
        ({"mrenclave": "ab" * 31}, "--mrenclave: expected 32 bytes"),
        ({"mrsigner": "ab" * 33, "isv_prod_id": 1}, "--mrsigner: expected 32 bytes"),
        ({"mrsigner": MRSIGNER.hex()}, "--mrsigner needs --isv-prod-id"),
        ({}, "give --mrenclave, or --mrsigner"),
        ({"isv_prod_id": 1, "min_isv_svn": 2}, "give --mrenclave, or --mrsigner"),
        ({"mrenclave": MRENCLAVE.hex(), "isv_prod_id": "70000"}, "--isv-prod-id: expected"),
        ({"mrenclave": MRENCLAVE.hex(), "min_isv_svn": "-1"}, "--min-isv-svn: expected"),
        ({"mrenclave": MRENCLAVE.hex(), "min_isv_svn": "three"}, "--min-isv-svn: not an integer"),
    ],
)
def test_bad_policies_name_the_option(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        AttestationPolicy.from_strings(**kwargs)  # type: ignore[arg-type]


def test_direct_construction_is_validated_too() -> None:
    with pytest.raises(ConfigError, match="--mrenclave: expected 32 bytes"):
        AttestationPolicy(mrenclave=b"x", mrsigner=None, isv_prod_id=None, min_isv_svn=None)


# --- check_quote --------------------------------------------------------------------------


def test_good_quote_passes_both_policy_styles(
    good_quote: bytes, mrenclave_policy: AttestationPolicy, mrsigner_policy: AttestationPolicy
) -> None:
    check_quote(parse_quote(good_quote), mrenclave_policy, EXPECTED)
    check_quote(parse_quote(good_quote), mrsigner_policy, EXPECTED)


def test_wrong_mrenclave(mrenclave_policy: AttestationPolicy) -> None:
    error = _fails(make_quote(mr_enclave=OTHER), mrenclave_policy)
    assert error.check == "mrenclave"
    assert error.expected == MRENCLAVE.hex() and error.received == OTHER.hex()
    assert MRENCLAVE.hex() in str(error) and OTHER.hex() in str(error)


def test_wrong_mrsigner(mrsigner_policy: AttestationPolicy) -> None:
    error = _fails(make_quote(mr_signer=OTHER), mrsigner_policy)
    assert (error.check, error.received) == ("mrsigner", OTHER.hex())


def test_wrong_product(mrsigner_policy: AttestationPolicy) -> None:
    error = _fails(make_quote(isv_prod_id=ISV_PROD_ID + 1), mrsigner_policy)
    assert (error.check, error.expected, error.received) == (
        "isv-prod-id",
        ISV_PROD_ID,
        ISV_PROD_ID + 1,
    )


def test_svn_below_minimum_is_refused_and_equal_accepted(
    mrsigner_policy: AttestationPolicy,
) -> None:
    error = _fails(make_quote(isv_svn=ISV_SVN - 1), mrsigner_policy)
    assert (error.check, error.received) == ("isv-svn", ISV_SVN - 1)
    assert f">= {ISV_SVN}" in str(error)
    check_quote(parse_quote(make_quote(isv_svn=ISV_SVN)), mrsigner_policy, EXPECTED)
    check_quote(parse_quote(make_quote(isv_svn=ISV_SVN + 5)), mrsigner_policy, EXPECTED)


def test_both_identities_are_checked_when_both_given() -> None:
    policy = AttestationPolicy(
        mrenclave=MRENCLAVE, mrsigner=MRSIGNER, isv_prod_id=None, min_isv_svn=None
    )
    assert _fails(make_quote(mr_signer=OTHER), policy).check == "mrsigner"


def test_debug_enclave_refused_unless_allowed(mrenclave_policy: AttestationPolicy) -> None:
    debug_quote = make_quote(debug=True)
    error = _fails(debug_quote, mrenclave_policy)
    assert error.check == "debug"
    assert "flags=0x7" in str(error)
    permissive = AttestationPolicy(
        mrenclave=MRENCLAVE, mrsigner=None, isv_prod_id=None, min_isv_svn=None, allow_debug=True
    )
    check_quote(parse_quote(debug_quote), permissive, EXPECTED)


@pytest.mark.parametrize(
    ("pk", "spki"),
    [(b"mitm-paillier-key", TLS_SPKI), (PAILLIER_PK, b"mitm-tls-key"), (b"mitm", b"mitm")],
)
def test_quote_over_other_keys_is_refused(
    pk: bytes, spki: bytes, mrenclave_policy: AttestationPolicy
) -> None:
    # A genuine quote of the PS (binding its own keys) relayed by a man in the middle who
    # hands out its own keys: the worker recomputes report data from what it received.
    genuine = make_quote()
    error = _fails(genuine, mrenclave_policy, report_data_for(pk, spki))
    assert error.check == "report-data"
    assert error.expected == report_data_for(pk, spki).hex()
    assert error.received == EXPECTED.hex()
    assert "man in the middle" in str(error)


def test_report_data_is_checked_before_identity(mrenclave_policy: AttestationPolicy) -> None:
    quote = make_quote(mr_enclave=OTHER, debug=True)
    assert _fails(quote, mrenclave_policy, report_data_for(b"x", b"y")).check == "report-data"


def test_malformed_expected_report_data(
    good_quote: bytes, mrenclave_policy: AttestationPolicy
) -> None:
    error = _fails(good_quote, mrenclave_policy, EXPECTED[:32])
    assert error.check == "report-data" and "32 bytes" in str(error)
