"""The plaintext replay reproduces the reference solution's published log digit for digit.

The expected lines are read from ``shared/data/README.md`` itself (not copied here), so the test
checks the replay against the published log, whitespace-normalised: the README shows single
spaces, the reference program prints two (``format_eval_line``).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from homolr.learning import (
    Dataset,
    add_bias,
    evaluate,
    format_eval_line,
    replay_reference,
    taylor_gradient,
)

LOG_LINE = re.compile(r"^\s*(iter: \d+\s+acc: \d\.\d{3}\s+loss: \d\.\d{3})\s*$", re.MULTILINE)


def normalise(line: str) -> str:
    return " ".join(line.split())


@pytest.fixture(scope="module")
def published_lines(shared_data: Path) -> list[str]:
    lines = [normalise(m) for m in LOG_LINE.findall((shared_data / "README.md").read_text())]
    assert len(lines) == 5, f"expected the five published log lines in README.md, got {lines}"
    return lines


def printed(history: list[tuple[int, object]]) -> list[str]:
    return [normalise(format_eval_line(t, m)) for t, m in history]  # type: ignore[arg-type]


def test_replay_prints_the_published_lines(
    reference_sets: tuple[Dataset, Dataset, Dataset], published_lines: list[str]
) -> None:
    guest, host, test = reference_sets
    history = replay_reference([guest, host], test)
    assert [t for t, _ in history] == list(range(0, 341, 10))
    lines = printed(history)
    for line in published_lines:
        assert line in lines


def test_replay_with_24_bit_fixed_point_prints_the_same_lines(
    reference_sets: tuple[Dataset, Dataset, Dataset], published_lines: list[str]
) -> None:
    guest, host, test = reference_sets
    lines = printed(replay_reference([guest, host], test, quantize_bits=24))
    for line in published_lines:
        assert line in lines


def test_coarse_fixed_point_does_change_the_log(
    reference_sets: tuple[Dataset, Dataset, Dataset], published_lines: list[str]
) -> None:
    """Guards the 24-bit test against a quantize_bits that silently does nothing."""
    guest, host, test = reference_sets
    lines = printed(replay_reference([guest, host], test, quantize_bits=12))
    assert not all(line in lines for line in published_lines)


def test_replay_equals_an_independent_loop_and_one_based_t_does_not_match(
    reference_sets: tuple[Dataset, Dataset, Dataset], published_lines: list[str]
) -> None:
    guest, host, test = reference_sets
    workers = [(add_bias(d.X), d.y) for d in (guest, host)]
    Xv = add_bias(test.X)

    def loop(t_offset: int) -> dict[int, str]:
        w = np.ones(31)
        out = {}
        for i in range(341):
            lr = 0.15 / math.sqrt(1 + i + t_offset)
            w = np.mean([w - lr * taylor_gradient(w, X, y, 0.01) for X, y in workers], axis=0)
            if i % 10 == 0:
                out[i] = normalise(format_eval_line(i, evaluate(w, Xv, test.y)))
        return out

    zero_based = loop(0)
    replay = dict(
        zip(range(0, 341, 10), printed(replay_reference([guest, host], test)), strict=True)
    )
    assert replay == zero_based
    one_based = loop(1)
    assert not all(line in one_based.values() for line in published_lines)
