"""Shared key fixtures for the crypto tests (keys are expensive: generate once per session)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from homolr.crypto import PrivateKey, PublicKey, generate_keypair, parallel

KeyPair = tuple[PublicKey, PrivateKey]


@pytest.fixture(scope="session")
def keypair() -> KeyPair:
    """A 512-bit key pair (insecure: unit tests only)."""
    return generate_keypair(512, insecure_small_key=True)


@pytest.fixture(scope="session")
def other_keypair() -> KeyPair:
    """A second, unrelated 512-bit key pair (for key-mismatch tests)."""
    return generate_keypair(512, insecure_small_key=True)


@pytest.fixture(scope="session")
def keypair_1024() -> KeyPair:
    """A 1024-bit key pair (insecure: unit tests only)."""
    return generate_keypair(1024, insecure_small_key=True)


@pytest.fixture(scope="session")
def keypair_2048() -> KeyPair:
    """A real 2048-bit key pair (generated once per session, ~0.1-2 s)."""
    return generate_keypair(2048)


@pytest.fixture(scope="session", autouse=True)
def _stop_pool_at_end() -> Iterator[None]:
    yield
    parallel.shutdown()
