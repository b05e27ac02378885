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
def test_glibc_takes_both_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in memory.ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    assert memory.tune_allocator() is True


def test_other_platforms_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory.sys, "platform", "darwin")
    assert memory.tune_allocator() is False


def test_a_c_library_without_mallopt_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    import ctypes

    class NoMallopt:
        def __init__(self, name: object) -> None:
            pass

    for name in memory.ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(ctypes, "CDLL", NoMallopt)
    assert memory.tune_allocator() is False


@pytest.mark.parametrize("name", memory.ENVIRONMENT)
def test_an_allocator_the_environment_configures_is_left_alone(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """The enclave's manifest sets the environment; the PS must not load ctypes there."""
    import ctypes

    def refuse(name: object) -> None:
        raise AssertionError("ctypes used although the environment configures the allocator")

    monkeypatch.setenv(name, "2" if name == "MALLOC_ARENA_MAX" else "131072")
    monkeypatch.setattr(ctypes, "CDLL", refuse)
    assert memory.tune_allocator() is False
