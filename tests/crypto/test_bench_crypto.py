"""The crypto benchmark runs end to end and reports every row (no speed is asserted)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_crypto.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_crypto", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_quick_benchmark_prints_a_complete_json_report(capsys: pytest.CaptureFixture[str]) -> None:
    assert _load().main(["--quick", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    names = [row["name"] for row in report["rows"]]
    for expected in (
        "encrypt (float",
        "decrypt (",
        "add (",
        "encrypt + homomorphic pack",
        "31x31 plaintext matrix",
        "ciphertext on the wire",
    ):
        assert any(name.startswith(expected) for name in names), expected
    assert report["bits"] == 2048 and report["targets_total"] == 3
    for row in report["rows"]:
        assert row["ours"] > 0
        if row["peer"] is not None:
            assert row["ratio"] > 0
        if row["target"] is not None:
            assert isinstance(row["passed"], bool)


def test_row_ratio_follows_the_direction_of_better() -> None:
    row_type = _load().Row
    faster = row_type("x", "ops/s", 300.0, 100.0, True, 2.0)
    assert faster.ratio == 3.0 and faster.passed
    quicker = row_type("y", "ms", 10.0, 50.0, False, 10.0)
    assert quicker.ratio == 5.0 and quicker.passed is False
    assert row_type("z", "B", 1.0).ratio is None


def test_pairs_alternate_the_two_sides_and_honour_each_repeat_count() -> None:
    calls: list[str] = []
    ours, peer = _load()._best_pair(
        lambda: calls.append("ours"), lambda: calls.append("peer"), 3, peer_repeats=2
    )
    assert calls == ["ours", "peer", "ours", "peer", "ours"]
    assert 0 <= ours < 1 and 0 <= peer < 1
