"""Shared test fixtures: where the reference data lives."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The reference files (../shared/data beside the repository); never copied into the repo."""
    names = ("guest", "host", "test")
    if not all((SHARED_DATA / f"breast_homo_{n}.csv").is_file() for n in names):
        pytest.skip(
            f"reference data not found in {SHARED_DATA} (expected breast_homo_guest/host/test.csv "
            "in ../shared/data beside the repository root)"
        )
    return SHARED_DATA
