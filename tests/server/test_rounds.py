"""The round state machine, driven from threads as the servicer and the training loop drive it."""

from __future__ import annotations

import threading
import time

import pytest

from homolr.errors import ConfigError, RoundError
from homolr.protocol.messages import GlobalModel, ModelHeader
from homolr.server.rounds import RoundCoordinator


def _coordinator(expected: int = 2) -> RoundCoordinator[str]:
    return RoundCoordinator(n_features=3, expected_workers=expected)


def _model(r: int) -> GlobalModel:
    return GlobalModel(ModelHeader(round=r, length=4), b"m%d" % r)


def test_join_refuses_a_feature_count_mismatch_naming_both_numbers() -> None:
    with pytest.raises(ConfigError, match=r"has 5 features .* has 3"):
        _coordinator().join("a", 5, 10)


def test_join_refuses_more_workers_than_expected() -> None:
    c = _coordinator(2)
    c.join("a", 3, 10)
    c.join("b", 3, 10)
    assert c.join("a", 3, 10) == 0  # a known worker may rejoin
    with pytest.raises(RoundError, match="expects 2 workers"):
        c.join("c", 3, 10)


def test_round_closes_as_soon_as_every_active_worker_submitted() -> None:
    c = _coordinator()
    c.join("a", 3, 10)
    c.join("b", 3, 10)
    c.publish(_model(0))
    assert c.submit("a", 0, "ua") == 1
    threading.Timer(0.05, lambda: c.submit("b", 0, "ub")).start()
    started = time.monotonic()
    result = c.collect(timeout=10)
    assert time.monotonic() - started < 5
    assert result.submissions == {"a": "ua", "b": "ub"} and result.missing == ()


def test_deadline_closes_the_round_and_marks_the_silent_worker_inactive() -> None:
    c = _coordinator()
    c.join("a", 3, 10)
    c.join("b", 3, 10)
    c.publish(_model(0))
    c.submit("a", 0, "ua")
    result = c.collect(timeout=0.2)
    assert result.submissions == {"a": "ua"} and result.missing == ("b",)
    assert c.active_workers() == ("a",)
    c.publish(_model(1))
    c.submit("a", 1, "ua1")
    started = time.monotonic()
    assert c.collect(timeout=10).submissions == {
        "a": "ua1"
    }  # does not wait for the inactive worker
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("worker", "round_", "message"),
    [
        ("zz", 0, "unknown worker 'zz'"),
        ("a", 1, r"round 1 \(early\)"),
        ("a", 0, "already submitted"),
    ],
)
def test_refused_submissions_change_nothing(worker: str, round_: int, message: str) -> None:
    c = _coordinator()
    c.join("a", 3, 10)
    c.join("b", 3, 10)
    c.publish(_model(0))
    if message == "already submitted":
        c.submit("a", 0, "first")
    with pytest.raises(RoundError, match=message):
        c.submit(worker, round_, "bad")
    c.submit("b", 0, "ub")
    subs = c.collect(timeout=0.1).submissions
    assert "bad" not in subs.values()


def test_late_submission_after_the_round_closed_is_refused() -> None:
    c = _coordinator()
    c.join("a", 3, 10)
    c.join("b", 3, 10)
    c.publish(_model(0))
    c.collect(timeout=0.05)
    c.publish(_model(1))
    with pytest.raises(RoundError, match=r"round 0 \(late\); round 1 is open"):
        c.submit("a", 0, "late")


def test_wait_model_blocks_until_published_and_returns_newer_rounds() -> None:
    c = _coordinator()
    c.join("a", 3, 10)
    assert c.wait_model("a", 0, timeout=0.05) is None
    threading.Timer(0.05, lambda: c.publish(_model(2))).start()
    got = c.wait_model("a", 1, timeout=5)
    assert got is not None and got.header.round == 2


def test_finish_wakes_waiters_and_is_tracked_per_worker() -> None:
    c = _coordinator()
    c.join("a", 3, 10)
    c.join("b", 3, 10)
    results: list[GlobalModel | None] = []
    t = threading.Thread(target=lambda: results.append(c.wait_model("a", 0, timeout=10)))
    t.start()
    time.sleep(0.05)
    c.finish("done", 5)
    t.join(5)
    assert results and results[0] is not None and results[0].header.finished
    assert c.wait_finish_seen(timeout=0.05) == ("b",)
    with pytest.raises(RoundError, match="finished"):
        c.submit("a", 5, "x")


def test_collect_returns_early_when_stopped() -> None:
    c = _coordinator()
    c.join("a", 3, 10)
    c.publish(_model(0))
    stop = threading.Event()
    threading.Timer(0.05, stop.set).start()
    started = time.monotonic()
    c.collect(timeout=30, stop=stop)
    assert time.monotonic() - started < 5
    assert c.active_workers() == (
        "a",
    )  # stopping is no fault of the worker: it still gets the end notice


def test_a_worker_ahead_of_a_resumed_ps_is_handed_the_open_round_again() -> None:
    c = _coordinator()
    c.restore_workers({"a": 10, "b": 10})  # a resumed PS: round 4 is open again
    c.publish(_model(4))
    got = c.wait_model("a", 5, timeout=0.05)  # a submitted round 4 to the PS that died
    assert got is not None and got.header.round == 4
    c.submit("a", 4, "again")
    assert c.wait_model("a", 5, timeout=0.05) is None  # now it waits for round 5 as usual
