"""Report data binding: the documented, unambiguous SHA-512 over both public keys."""

from __future__ import annotations

import hashlib

import pytest

from homolr.enclave.binding import report_data_for


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
