"""The PS's allocator settings (the effect on memory is measured by benchmarks/bench_aggregate.py
and tests/integration/test_scale.py)."""

from __future__ import annotations

import platform
import sys

import pytest

from homolr.server import memory


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="mallopt is glibc's",
)
def test_glibc_takes_both_settings() -> None:
    assert memory.tune_allocator() is True


def test_other_platforms_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory.sys, "platform", "darwin")
    assert memory.tune_allocator() is False


def test_a_c_library_without_mallopt_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    class NoMallopt:
        def __init__(self, name: object) -> None:
            pass

    monkeypatch.setattr(memory.ctypes, "CDLL", NoMallopt)
    assert memory.tune_allocator() is False
