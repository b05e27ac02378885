"""Shared fixtures: the reference data live beside the repository, in ../shared/data."""

from __future__ import annotations

from pathlib import Path

import pytest

from homolr.learning import Dataset, load_csv

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
REFERENCE_FILES = ("guest", "host", "test")


def _reference_path(name: str) -> Path:
    return SHARED_DATA / f"breast_homo_{name}.csv"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of the reference files; skips when it is absent."""
    if not all(_reference_path(n).is_file() for n in REFERENCE_FILES):
        pytest.skip(
            f"reference data not found in {SHARED_DATA} (expected breast_homo_guest/host/test.csv "
            "in ../shared/data beside the repository root)"
        )
    return SHARED_DATA


@pytest.fixture(scope="session")
def reference_sets(shared_data: Path) -> tuple[Dataset, Dataset, Dataset]:
    """guest, host, test loaded from the reference files."""
    guest, host, test = (load_csv(shared_data / f"breast_homo_{n}.csv") for n in REFERENCE_FILES)
    return guest, host, test
