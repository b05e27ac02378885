"""Servicer helpers that need no server: what a refused update is told."""

from __future__ import annotations

import pytest

from homolr.protocol.messages import UpdateHeader
from homolr.server.servicer import Servicer


def _header(round_: int) -> UpdateHeader:
    return UpdateHeader("host", "r" * 32, round_, 31, 48, 64, 10, 2)


@pytest.mark.parametrize(
    ("submitted", "last", "is_open", "expected"),
    [
        (4, None, False, "member 'host' submitted for round 4 but no round is open"),
        (3, 5, True, "member 'host' submitted for round 3 (late); round 5 is the current one"),
        (7, 5, True, "member 'host' submitted for round 7 (early); round 5 is the current one"),
        # Between two rounds: the latest one is closed (being aggregated), the next not open.
        (
            5,
            5,
            False,
            "member 'host' submitted for round 5 (late); round 5 is closed; the next one is not "
            "open yet",
        ),
        (
            6,
            5,
            False,
            "member 'host' submitted for round 6 (early); round 5 is closed; the next one is not "
            "open yet",
        ),
    ],
)
def test_a_refused_update_is_told_which_round_is_open(
    submitted: int, last: int | None, is_open: bool, expected: str
) -> None:
    assert Servicer._wrong_round(_header(submitted), last, is_open) == expected
