"""Test helpers for homolr.enclave: enclave identities and synthetic quotes."""

from __future__ import annotations

import hashlib

from homolr.enclave.binding import report_data_for, report_data_for_federation
from homolr.enclave.quote import build_quote

MRENCLAVE = hashlib.sha256(b"homolr test enclave").digest()
MRSIGNER = hashlib.sha256(b"homolr test signer").digest()
ISV_PROD_ID = 7
ISV_SVN = 3
# Stand-ins for PublicKey.to_bytes() and a TLS SubjectPublicKeyInfo: the binding only
# hashes bytes, so any distinct byte strings exercise it.
PAILLIER_PK = b"paillier-public-key:" + bytes(range(200))
TLS_SPKI = b"tls-spki:" + bytes(range(91))


def make_quote(
    *,
    paillier_pk: bytes = PAILLIER_PK,
    tls_spki: bytes = TLS_SPKI,
    mr_enclave: bytes = MRENCLAVE,
    mr_signer: bytes = MRSIGNER,
    isv_prod_id: int = ISV_PROD_ID,
    isv_svn: int = ISV_SVN,
    debug: bool = False,
    federation_hash: bytes | None = None,
) -> bytes:
    """A synthetic quote binding the given keys: v1 report data, or v2 (keys and federation
    hash) when ``federation_hash`` is given."""
    report_data = (
        report_data_for(paillier_pk, tls_spki)
        if federation_hash is None
        else report_data_for_federation(paillier_pk, tls_spki, federation_hash)
    )
    return build_quote(
        mr_enclave=mr_enclave,
        mr_signer=mr_signer,
        isv_prod_id=isv_prod_id,
        isv_svn=isv_svn,
        report_data=report_data,
        debug=debug,
    )
