"""Shared fixtures for homolr.enclave tests."""

from __future__ import annotations

import pytest

from homolr.enclave.policy import AttestationPolicy
from tests.enclave.support import ISV_PROD_ID, ISV_SVN, MRENCLAVE, MRSIGNER, make_quote


@pytest.fixture
def good_quote() -> bytes:
    return make_quote()


@pytest.fixture
def mrenclave_policy() -> AttestationPolicy:
    return AttestationPolicy(mrenclave=MRENCLAVE, mrsigner=None, isv_prod_id=None, min_isv_svn=None)


@pytest.fixture
def mrsigner_policy() -> AttestationPolicy:
    return AttestationPolicy(
        mrenclave=None, mrsigner=MRSIGNER, isv_prod_id=ISV_PROD_ID, min_isv_svn=ISV_SVN
    )
