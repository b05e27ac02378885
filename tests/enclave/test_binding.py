"""Report data binding: the documented, unambiguous SHA-512 over both public keys."""

from __future__ import annotations

import hashlib

import pytest

from homolr.enclave.binding import report_data_for, report_data_for_federation


def test_matches_the_documented_definition() -> None:
    pk, spki = b"\x01\x02\x03", b"\x30\x59" + b"\xaa" * 89
    expected = hashlib.sha512(
        b"homolr/report-data/v1\x00" + (3).to_bytes(4, "big") + pk + (91).to_bytes(4, "big") + spki
    ).digest()
    assert report_data_for(pk, spki) == expected
    assert len(expected) == 64


def test_every_key_byte_matters() -> None:
    pk, spki = b"paillier" * 10, b"tls" * 10
    reference = report_data_for(pk, spki)
    assert report_data_for(pk[:-1] + b"X", spki) != reference
    assert report_data_for(pk, spki[:-1] + b"X") != reference
    assert report_data_for(spki, pk) != reference  # order matters


def test_split_point_is_unambiguous() -> None:
    # Plain concatenation would make these two pairs collide.
    assert report_data_for(b"ab", b"c") != report_data_for(b"a", b"bc")


def test_empty_or_non_bytes_parts_are_refused() -> None:
    with pytest.raises(ValueError, match="paillier_public_key_bytes is empty"):
        report_data_for(b"", b"tls")
    with pytest.raises(ValueError, match="tls_public_key_der is empty"):
        report_data_for(b"pk", b"")
    with pytest.raises(TypeError, match="must be bytes"):
        report_data_for("pk", b"tls")  # type: ignore[arg-type]


# --- version 2: the PS's keys and its federation -----------------------------------------------

FEDERATION_HASH = bytes(range(32))


def test_v2_matches_the_documented_definition() -> None:
    pk, spki = b"\x01\x02\x03", b"\x30\x59" + b"\xbb" * 89
    expected = hashlib.sha512(
        b"homolr/report-data/v2\x00"
        + b"\x00\x00\x00\x03"
        + pk
        + b"\x00\x00\x00\x5b"
        + spki
        + b"\x00\x00\x00\x20"
        + FEDERATION_HASH
    ).digest()
    assert report_data_for_federation(pk, spki, FEDERATION_HASH) == expected
    assert len(expected) == 64


def test_v2_known_answer() -> None:
    # Frozen output (SHA-512 computed by hand once): changing the encoding (domain, prefixes,
    # order) must break this test, because deployed workers recompute exactly these bytes.
    value = report_data_for_federation(b"pk", b"spki", b"\x00" * 32)
    assert value.hex() == (
        "55943eeeee8d3e6a18799f326ced3d287b9fc85dd4c51f4cbab5eabead855804"
        "81753057e6beca5a1222e28f79c5fa0543e69ddf612dad7ce2a67bb8a961df4e"
    )


def test_v2_is_domain_separated_from_v1() -> None:
    pk, spki = b"paillier" * 10, b"tls" * 10
    assert report_data_for_federation(pk, spki, FEDERATION_HASH) != report_data_for(pk, spki)
    # Not even v1 over the same bytes with the federation hash appended to the TLS key.
    assert report_data_for_federation(pk, spki, FEDERATION_HASH) != report_data_for(
        pk, spki + b"\x00\x00\x00\x20" + FEDERATION_HASH
    )


def test_v2_every_input_matters() -> None:
    pk, spki = b"paillier" * 10, b"tls" * 10
    reference = report_data_for_federation(pk, spki, FEDERATION_HASH)
    other_hash = FEDERATION_HASH[:-1] + b"\xff"
    variants = {
        report_data_for_federation(pk[:-1] + b"X", spki, FEDERATION_HASH),
        report_data_for_federation(pk, spki[:-1] + b"X", FEDERATION_HASH),
        report_data_for_federation(pk, spki, other_hash),
        report_data_for_federation(spki, pk, FEDERATION_HASH),
        report_data_for_federation(b"ab", b"c", FEDERATION_HASH),
        report_data_for_federation(b"a", b"bc", FEDERATION_HASH),
    }
    assert reference not in variants and len(variants) == 6


def test_v2_refuses_bad_parts() -> None:
    with pytest.raises(ValueError, match="federation_hash must be 32 bytes, got 31"):
        report_data_for_federation(b"pk", b"tls", b"\x00" * 31)
    with pytest.raises(ValueError, match="federation_hash must be 32 bytes, got 0"):
        report_data_for_federation(b"pk", b"tls", b"")
    with pytest.raises(ValueError, match="report_data_for_federation: tls_public_key_der is empty"):
        report_data_for_federation(b"pk", b"", FEDERATION_HASH)
    with pytest.raises(ValueError, match="paillier_public_key_bytes is empty"):
        report_data_for_federation(b"", b"tls", FEDERATION_HASH)
    with pytest.raises(TypeError, match="federation_hash must be bytes"):
        report_data_for_federation(b"pk", b"tls", FEDERATION_HASH.hex())  # type: ignore[arg-type]
