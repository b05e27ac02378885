"""Fixtures of the integration tests: a cluster of real processes, stopped after each test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.attack import RunResult, run_reference
from tests.integration.harness import Cluster


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    yield c
    c.stop_all()


@pytest.fixture(scope="session")
def clean_run(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunResult]:
    """The reference plan run once without any attack: what every attacked run must reproduce."""
    tmp = tmp_path_factory.mktemp("clean-run")
    c = Cluster(tmp)
    try:
        yield run_reference(c, shared_data, tmp / "out")
    finally:
        c.stop_all()
