"""Test helpers for homolr.enclave: enclave identities and synthetic quotes."""

from __future__ import annotations

import hashlib

from homolr.enclave.binding import report_data_for
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
) -> bytes:
    """A synthetic quote binding the given keys."""
    return build_quote(
        mr_enclave=mr_enclave,
        mr_signer=mr_signer,
        isv_prod_id=isv_prod_id,
        isv_svn=isv_svn,
        report_data=report_data_for(paillier_pk, tls_spki),
        debug=debug,
    )
