"""Deadlines, retries and error mapping of the worker's connection, with a scripted stub."""

from __future__ import annotations

import itertools
import random

import grpc
import pytest

from homolr.errors import RoundError, TransportError
from homolr.worker.transport import Connection, backoff_delays


class FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


def _connection(budget: float = 5.0) -> tuple[Connection, list[float]]:
    slept: list[float] = []
    return Connection("127.0.0.1:1", retry_budget_s=budget, sleep=slept.append), slept


def _script(*outcomes: object) -> object:
    it = iter(outcomes)

    def call() -> object:
        outcome = next(it)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    return call


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    delays = list(itertools.islice(backoff_delays(0.2, 5.0, random.Random(1)), 12))
    assert 0.1 <= delays[0] <= 0.2 and all(d <= 5.0 for d in delays)
    assert delays[8] >= 2.5  # capped ceiling 5 s, jitter keeps at least half


def test_unavailable_is_retried_until_it_succeeds() -> None:
    conn, slept = _connection()
    unavailable = FakeRpcError(grpc.StatusCode.UNAVAILABLE, "connection refused")
    assert conn._call("Join", _script(unavailable, unavailable, "ok")) == "ok"  # type: ignore[arg-type]
    assert len(slept) == 2
    conn.close()


def test_unavailable_past_the_budget_names_the_peer() -> None:
    conn, _ = _connection(budget=0.0)
    with pytest.raises(TransportError, match=r"Join to the PS at 127.0.0.1:1 failed: UNAVAILABLE"):
        conn._call("Join", _script(FakeRpcError(grpc.StatusCode.UNAVAILABLE, "refused")))  # type: ignore[arg-type]
    conn.close()


def test_failed_precondition_becomes_a_round_error_without_retry() -> None:
    conn, slept = _connection()
    with pytest.raises(RoundError, match="late"):
        conn._call(
            "SubmitUpdate", _script(FakeRpcError(grpc.StatusCode.FAILED_PRECONDITION, "late"))
        )  # type: ignore[arg-type]
    assert slept == []
    conn.close()


def test_tls_failures_are_not_retried() -> None:
    conn, slept = _connection()
    error = FakeRpcError(
        grpc.StatusCode.UNAVAILABLE, "Ssl handshake failed: CERTIFICATE_VERIFY_FAILED"
    )
    with pytest.raises(TransportError, match="not retrying: check the certificates"):
        conn._call("GetServerInfo", _script(error))  # type: ignore[arg-type]
    assert slept == []
    conn.close()


def test_other_errors_carry_the_status_and_the_ps_message() -> None:
    conn, _ = _connection()
    error = FakeRpcError(
        grpc.StatusCode.INVALID_ARGUMENT, "field 'length' is 30; the plan requires 31"
    )
    with pytest.raises(TransportError, match="INVALID_ARGUMENT: field 'length' is 30"):
        conn._call("SubmitUpdate", _script(error))  # type: ignore[arg-type]
    conn.close()
