"""Shared fixtures: the reference data live beside the repository, in ../shared/data."""

from __future__ import annotations

from pathlib import Path

import pytest

from homolr.learning import Dataset, load_csv

REFERENCE_FILES = ("guest", "host", "test")


@pytest.fixture(scope="session")
def reference_sets(shared_data: Path) -> tuple[Dataset, Dataset, Dataset]:
    """guest, host, test loaded from the reference files."""
    guest, host, test = (load_csv(shared_data / f"breast_homo_{n}.csv") for n in REFERENCE_FILES)
    return guest, host, test
