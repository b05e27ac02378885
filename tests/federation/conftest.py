"""Member identities shared by the federation tests (EC keys: milliseconds each)."""

from __future__ import annotations

import pytest

from homolr.enclave.identity import MemberIdentity, generate_member_identity
from tests.federation.support import Document, base_document


@pytest.fixture(scope="session")
def identities() -> dict[str, MemberIdentity]:
    return {
        member_id: generate_member_identity(member_id) for member_id in ("guest", "host", "third")
    }


@pytest.fixture
def document(identities: dict[str, MemberIdentity]) -> Document:
    """A valid two-member document (guest, host), fresh for every test."""
    return base_document(identities, ["guest", "host"])


@pytest.fixture
def document3(identities: dict[str, MemberIdentity]) -> Document:
    """A valid three-member document."""
    return base_document(identities)
