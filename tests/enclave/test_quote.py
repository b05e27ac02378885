"""Quote layout: synthetic quotes checked against Intel's documented byte offsets."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from homolr.enclave.quote import (
    INTEL_QE_VENDOR_ID,
    SYNTHETIC_CERT_DATA,
    build_quote,
    parse_quote,
)
from homolr.errors import AttestationError
from tests.enclave.support import MRENCLAVE, MRSIGNER

REPORT_DATA = bytes(range(64))
BODY = 48  # the ISV enclave report starts after the 48-byte header


def _quote(**overrides: object) -> bytes:
    fields: dict[str, object] = {
        "mr_enclave": MRENCLAVE,
        "mr_signer": MRSIGNER,
        "isv_prod_id": 0x1234,
        "isv_svn": 0xBEEF,
        "report_data": REPORT_DATA,
    }
    fields.update(overrides)
    return build_quote(**fields)  # type: ignore[arg-type]


def _ecdsa_section(auth: bytes, cert_type: int, cert: bytes) -> bytes:
    fixed = b"\x11" * 64 + b"\x22" * 64 + bytes(384) + b"\x33" * 64
    return (
        fixed
        + struct.pack("<H", len(auth))
        + auth
        + struct.pack("<HI", cert_type, len(cert))
        + cert
    )


def test_fields_sit_at_the_documented_offsets() -> None:
    quote = _quote(debug=True, qe_svn=9, pce_svn=11)
    assert struct.unpack_from("<HHI", quote, 0) == (3, 2, 0)
    assert struct.unpack_from("<HH", quote, 8) == (9, 11)
    assert quote[12:28] == INTEL_QE_VENDOR_ID
    flags, _xfrm = struct.unpack_from("<QQ", quote, BODY + 48)
    assert flags & 0x02
    assert quote[BODY + 64 : BODY + 96] == MRENCLAVE
    assert quote[BODY + 128 : BODY + 160] == MRSIGNER
    assert struct.unpack_from("<HH", quote, BODY + 256) == (0x1234, 0xBEEF)
    assert quote[BODY + 320 : BODY + 384] == REPORT_DATA
    (sig_len,) = struct.unpack_from("<I", quote, 432)
    assert len(quote) == 436 + sig_len


def test_parse_reads_back_every_field() -> None:
    quote = parse_quote(_quote(qe_svn=5, pce_svn=6, cpu_svn=b"\x07" * 16, misc_select=9))
    assert (quote.version, quote.att_key_type, quote.tee_type) == (3, 2, 0)
    assert (quote.qe_svn, quote.pce_svn) == (5, 6)
    assert quote.qe_vendor_id == INTEL_QE_VENDOR_ID
    assert quote.cpu_svn == b"\x07" * 16
    assert quote.misc_select == 9
    assert quote.mr_enclave == MRENCLAVE
    assert quote.mr_signer == MRSIGNER
    assert (quote.isv_prod_id, quote.isv_svn) == (0x1234, 0xBEEF)
    assert quote.report_data == REPORT_DATA
    assert not quote.is_debug
    assert quote.attributes.flags == 0x05  # INITTED | MODE64BIT
    assert quote.is_synthetic
    assert quote.ecdsa.certification_data == SYNTHETIC_CERT_DATA
    assert len(quote.signed_data) == 432
    assert MRENCLAVE.hex() in quote.summary()


def test_debug_bit_is_reported() -> None:
    assert parse_quote(_quote(debug=True)).is_debug
    assert not parse_quote(_quote(debug=False)).is_debug


@settings(max_examples=40, deadline=None)
@given(
    mr_enclave=st.binary(min_size=32, max_size=32),
    mr_signer=st.binary(min_size=32, max_size=32),
    prod=st.integers(0, 0xFFFF),
    svn=st.integers(0, 0xFFFF),
    report_data=st.binary(min_size=64, max_size=64),
    debug=st.booleans(),
)
def test_build_parse_roundtrip(
    mr_enclave: bytes, mr_signer: bytes, prod: int, svn: int, report_data: bytes, debug: bool
) -> None:
    quote = parse_quote(
        build_quote(
            mr_enclave=mr_enclave,
            mr_signer=mr_signer,
            isv_prod_id=prod,
            isv_svn=svn,
            report_data=report_data,
            debug=debug,
        )
    )
    assert (quote.mr_enclave, quote.mr_signer) == (mr_enclave, mr_signer)
    assert (quote.isv_prod_id, quote.isv_svn) == (prod, svn)
    assert quote.report_data == report_data
    assert quote.is_debug == debug


def test_ecdsa_pieces_are_parsed() -> None:
    section = _ecdsa_section(b"auth-data", 5, b"-----BEGIN CERTIFICATE-----")
    quote = parse_quote(_quote(signature_data=section))
    assert quote.ecdsa.isv_report_signature == b"\x11" * 64
    assert quote.ecdsa.attestation_key == b"\x22" * 64
    assert quote.ecdsa.qe_report_signature == b"\x33" * 64
    assert quote.ecdsa.qe_auth_data == b"auth-data"
    assert quote.ecdsa.certification_data_type == 5
    assert quote.ecdsa.certification_data == b"-----BEGIN CERTIFICATE-----"
    assert not quote.is_synthetic


@pytest.mark.parametrize("length", [0, 1, 47, 48, 200, 431, 435])
def test_short_quote_is_refused_with_its_size(length: int) -> None:
    with pytest.raises(AttestationError) as info:
        parse_quote(_quote()[:length])
    assert info.value.check == "quote-format"
    assert f"{length} bytes" in str(info.value)
    assert "436" in str(info.value)


def test_truncated_signature_section_names_the_offset() -> None:
    quote = _quote()
    with pytest.raises(AttestationError) as info:
        parse_quote(quote[:-10])
    assert info.value.check == "quote-format"
    assert "offset 436" in str(info.value)
    assert "truncated" in str(info.value)


def test_trailing_bytes_are_refused() -> None:
    with pytest.raises(AttestationError, match="trailing"):
        parse_quote(_quote() + b"\x00")


def test_declared_ecdsa_length_mismatch_names_the_field() -> None:
    # A consistent signature_data_len, but a section too short for the ECDSA structure.
    with pytest.raises(AttestationError) as info:
        parse_quote(_quote(signature_data=b"\x00" * 200))
    assert info.value.check == "quote-format"
    assert "qe_report" in str(info.value)
    assert "offset 564" in str(info.value)  # 436 + 128


def test_certification_data_size_overflow_is_refused() -> None:
    section = _ecdsa_section(b"", 5, b"abc")[:-3] + b"a"  # declares 3 bytes, holds 1
    with pytest.raises(AttestationError, match=r"certification_data\.data"):
        parse_quote(_quote(signature_data=section))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"version": 4}, "unsupported quote version"),
        ({"version": 2}, "unsupported quote version"),
        ({"att_key_type": 3}, "unsupported attestation key type"),
        ({"tee_type": 0x81}, "unsupported TEE type"),
    ],
)
def test_unsupported_header_values(override: dict[str, int], message: str) -> None:
    with pytest.raises(AttestationError, match=message) as info:
        parse_quote(_quote(**override))
    assert info.value.check == "quote-format"


def test_garbage_is_refused() -> None:
    garbage = bytes((i * 37 + 11) % 256 for i in range(1200))
    with pytest.raises(AttestationError) as info:
        parse_quote(garbage)
    assert info.value.check == "quote-format"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=1500))
def test_arbitrary_bytes_never_escape_as_other_errors(data: bytes) -> None:
    try:
        parse_quote(data)
    except AttestationError as error:
        assert error.check == "quote-format"


# version, att_key_type, tee_type, signature_data_len, certification data size
STRUCTURAL_BYTES = [0, 1, 2, 3, 4, 5, 6, 7, 432, 433, 434, 435, 1016, 1017, 1018, 1019]


@settings(max_examples=100, deadline=None)
@given(position=st.sampled_from(STRUCTURAL_BYTES), flip=st.integers(1, 255))
def test_corrupting_a_structural_byte_is_always_caught(position: int, flip: int) -> None:
    quote = bytearray(_quote())
    quote[position] ^= flip
    with pytest.raises(AttestationError) as info:
        parse_quote(bytes(quote))
    assert info.value.check == "quote-format"


def test_build_quote_rejects_wrong_sizes() -> None:
    with pytest.raises(ValueError, match="mr_enclave must be 32 bytes"):
        _quote(mr_enclave=b"short")
    with pytest.raises(ValueError, match="report_data must be 64 bytes"):
        _quote(report_data=b"x" * 63)
