"""Deadlines, retries and status mapping of the member's connection, with a fake stub and clock.

The stub stands in for the generated one (the connection builds it with ``make_stub``); the clock
and ``sleep`` are injected, so the retry budget is exercised in simulated seconds.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest

from homolr.errors import (
    HomolrError,
    PolicyError,
    PreconditionError,
    ProtocolError,
    RoundError,
    TransportError,
)
from homolr.protocol import serde
from homolr.protocol.homolr_pb2 import JoinReply, ModelChunk, ServerInfo, SubmitReply, UpdateChunk
from homolr.protocol.messages import (
    GlobalModel,
    JoinRequest,
    ModelHeader,
    TrainingPlan,
    Update,
    UpdateHeader,
)
from homolr.worker import transport
from homolr.worker.transport import (
    CALL_TIMEOUT_S,
    POLL_S,
    Connection,
    backoff_delays,
    upload_timeout_s,
)

TARGET = "127.0.0.1:1"
USED = re.compile(r"retrying in (\d+\.\d) s, (\d+) s of (\S+) s used$")


class FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


def unavailable(details: str = "connection refused") -> FakeRpcError:
    return FakeRpcError(grpc.StatusCode.UNAVAILABLE, details)


class Clock:
    """Simulated monotonic seconds; ``sleep`` advances it and records the wait."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@dataclass
class Attempt:
    method: str
    request: Any
    timeout: float
    at: float


@dataclass
class FakeStub:
    """Plays a script per method. An outcome is an exception (raised), a callable (called with the
    request; its result is returned) or a value (returned). ``cost`` simulated seconds pass per
    call, as if the call ran that long before its outcome."""

    clock: Clock
    scripts: dict[str, Iterator[object]] = field(default_factory=dict)
    attempts: list[Attempt] = field(default_factory=list)
    cost: float = 0.0

    def script(self, method: str, *outcomes: object) -> None:
        self.scripts[method] = iter(outcomes)

    def _play(self, method: str, request: Any, timeout: float) -> Any:
        self.attempts.append(Attempt(method, request, timeout, self.clock.now))
        self.clock.now += self.cost
        outcome = next(self.scripts[method])
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome(request) if callable(outcome) else outcome

    def GetServerInfo(self, request: Any, timeout: float) -> Any:
        return self._play("GetServerInfo", request, timeout)

    def Join(self, request: Any, timeout: float) -> Any:
        return self._play("Join", request, timeout)

    def GetModel(self, request: Any, timeout: float) -> Any:
        return self._play("GetModel", request, timeout)

    def SubmitUpdate(self, request_iterator: Iterable[UpdateChunk], timeout: float) -> Any:
        return self._play("SubmitUpdate", request_iterator, timeout)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def stub(clock: Clock, monkeypatch: pytest.MonkeyPatch) -> FakeStub:
    fake = FakeStub(clock)
    monkeypatch.setattr(transport, "make_stub", lambda channel: fake)
    return fake


@pytest.fixture
def fixed_delays(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every backoff wait is exactly 1 s (the jitter is tested on backoff_delays itself)."""
    monkeypatch.setattr(transport, "backoff_delays", lambda: itertools.repeat(1.0))


Connect = Callable[..., tuple[Connection, list[str]]]


@pytest.fixture
def connect(clock: Clock, stub: FakeStub) -> Iterator[Connect]:
    opened: list[Connection] = []

    def make(budget: float = 10.0) -> tuple[Connection, list[str]]:
        log: list[str] = []
        connection = Connection(
            TARGET, retry_budget_s=budget, log=log.append, sleep=clock.sleep, clock=clock
        )
        opened.append(connection)
        return connection, log

    yield make
    for connection in opened:
        connection.close()


def _server_info_proto() -> ServerInfo:
    plan = serde.plan_to_proto(TrainingPlan(n_features=2).validate())
    return ServerInfo(protocol_version="homolr.v2", run_id="r", plan=plan, attestation_type="none")


# --- backoff -------------------------------------------------------------------------------------


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    delays = list(itertools.islice(backoff_delays(0.2, 5.0, random.Random(1)), 40))
    for k, delay in enumerate(delays):
        ceiling = min(5.0, 0.2 * 2**k)
        assert ceiling / 2 <= delay <= ceiling
    assert len(set(delays[10:])) > 1  # jittered even at the cap


# --- retries and the budget ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    ],
)
def test_transient_statuses_are_retried_and_every_wait_is_logged(
    connect: Connect, stub: FakeStub, clock: Clock, code: grpc.StatusCode
) -> None:
    connection, log = connect(budget=120.0)
    failure = FakeRpcError(code, "PS busy")
    stub.script("GetServerInfo", failure, failure, failure, _server_info_proto())
    info = connection.server_info()
    assert info.run_id == "r" and info.plan.n_features == 2
    assert len(stub.attempts) == 4 and len(clock.slept) == 3
    assert all(a.timeout == CALL_TIMEOUT_S for a in stub.attempts)
    assert len(log) == 3
    for line, slept in zip(log, clock.slept, strict=True):
        assert line.startswith(f"PS at {TARGET} not answering ({code.name}); retrying in ")
        match = USED.search(line)
        assert match is not None, line
        assert match.group(1) == f"{slept:.1f}" and match.group(3) == "120"


def test_the_budget_stops_the_retries_and_names_the_peer_and_the_status(
    connect: Connect, stub: FakeStub, clock: Clock
) -> None:
    connection, log = connect(budget=10.0)
    stub.script("Join", *(unavailable("refused") for _ in range(100)))
    with pytest.raises(TransportError) as err:
        connection.join(JoinRequest("guest", "r", 2, 10))
    text = str(err.value)
    assert f"Join to the PS at {TARGET} failed: UNAVAILABLE: refused" in text
    assert "retry budget 10 s" in text
    # it waited as long as the budget allows, and no longer (the largest wait is 5 s)
    assert 5.0 < sum(clock.slept) <= 10.0
    assert len(log) == len(clock.slept) == len(stub.attempts) - 1


def test_time_spent_in_failing_calls_counts_against_the_budget(
    connect: Connect, stub: FakeStub, clock: Clock, fixed_delays: None
) -> None:
    # A frozen PS: every call runs into its 10 s deadline.
    connection, log = connect(budget=60.0)
    stub.cost = CALL_TIMEOUT_S
    stub.script(
        "GetServerInfo", *(FakeRpcError(grpc.StatusCode.DEADLINE_EXCEEDED, "") for _ in range(20))
    )
    with pytest.raises(TransportError, match="DEADLINE_EXCEEDED"):
        connection.server_info()
    used = [int(m.group(2)) for m in map(USED.search, log) if m is not None]
    assert used == [10, 21, 32, 43, 54] and len(used) == len(log)
    assert clock.now == 65.0  # the sixth call failed at 65 s; 65 s + a 1 s wait > 60 s: gave up


def test_a_success_resets_the_budget(
    connect: Connect, stub: FakeStub, clock: Clock, fixed_delays: None
) -> None:
    connection, log = connect(budget=10.0)
    stub.script("Join", unavailable(), unavailable(), unavailable(), JoinReply(round=4))
    assert connection.join(JoinRequest("guest", "r", 2, 10)) == 4
    answered_at = clock.now
    assert answered_at == 3.0
    log.clear()
    stub.script("GetServerInfo", *(unavailable() for _ in range(100)))
    with pytest.raises(TransportError, match="gave up after 10 s without an answer"):
        connection.server_info()
    # counted from the answer at 3 s, not from the connection's start: ten waits, not seven
    used = [int(m.group(2)) for m in map(USED.search, log) if m is not None]
    assert used == list(range(10))
    assert clock.now == answered_at + 10.0


def test_a_failure_after_long_local_work_is_still_retried(
    connect: Connect, stub: FakeStub, clock: Clock, fixed_delays: None
) -> None:
    connection, _ = connect(budget=10.0)
    stub.script("Join", JoinReply(round=0))
    connection.join(JoinRequest("guest", "r", 2, 10))
    clock.now += 30.0  # the member computes its update for 30 s; the PS restarts meanwhile
    stub.script("SubmitUpdate", unavailable("PS restarting"), SubmitReply(round=0, received=1))
    assert connection.submit(_update(b"\x01" * 8), chunk_bytes=8) == 1


def test_tls_failures_are_not_retried(connect: Connect, stub: FakeStub, clock: Clock) -> None:
    connection, log = connect()
    stub.script(
        "GetServerInfo", unavailable("Ssl handshake failed: CERTIFICATE_VERIFY_FAILED"), None
    )
    with pytest.raises(TransportError, match="not retrying: check the certificates") as err:
        connection.server_info()
    assert "CERTIFICATE_VERIFY_FAILED" in str(err.value)
    assert clock.slept == [] and log == [] and len(stub.attempts) == 1


# --- status -> domain error ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, ProtocolError),
        (grpc.StatusCode.PERMISSION_DENIED, PolicyError),
        (grpc.StatusCode.UNAUTHENTICATED, PolicyError),
        (grpc.StatusCode.FAILED_PRECONDITION, PreconditionError),
        (grpc.StatusCode.ABORTED, RoundError),
    ],
)
def test_verdicts_of_the_ps_become_domain_errors_without_retry(
    connect: Connect, stub: FakeStub, clock: Clock, code: grpc.StatusCode, error: type[HomolrError]
) -> None:
    connection, log = connect()
    details = f"the PS says no ({code.name.lower()})"
    stub.script("SubmitUpdate", FakeRpcError(code, details), SubmitReply(received=1))
    with pytest.raises(error) as err:
        connection.submit(_update(b"\x00" * 4), chunk_bytes=4)
    assert type(err.value) is error  # not a subclass standing in for another meaning
    assert str(err.value) == details
    assert clock.slept == [] and log == [] and len(stub.attempts) == 1


@pytest.mark.parametrize(
    "code",
    [
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.CANCELLED,
    ],
)
def test_other_statuses_are_transport_errors_carrying_the_status_and_the_ps_message(
    connect: Connect, stub: FakeStub, clock: Clock, code: grpc.StatusCode
) -> None:
    connection, _ = connect()
    stub.script("Join", FakeRpcError(code, "field 'length' is 30; the plan requires 31"))
    with pytest.raises(TransportError) as err:
        connection.join(JoinRequest("guest", "r", 2, 10))
    assert f"Join to the PS at {TARGET} failed: {code.name}: field 'length' is 30" in str(err.value)
    assert clock.slept == []


# --- the calls ---------------------------------------------------------------------------------


def _update(payload: bytes) -> Update:
    return Update(UpdateHeader("guest", "r", 5, 3, 48, 64, 10, 1), payload)


def test_a_retried_submit_sends_byte_identical_chunks(
    connect: Connect, stub: FakeStub, clock: Clock
) -> None:
    update = _update(bytes(range(256)) * 3 + b"tail")
    sent: list[list[bytes]] = []

    def broken_after(messages: int) -> Callable[[Iterable[UpdateChunk]], Any]:
        def consume(chunks: Iterable[UpdateChunk]) -> Any:
            taken = [c.SerializeToString() for c in itertools.islice(chunks, messages)]
            sent.append(taken)
            raise unavailable("stream reset")

        return consume

    def complete(chunks: Iterable[UpdateChunk]) -> SubmitReply:
        sent.append([c.SerializeToString() for c in chunks])
        return SubmitReply(round=5, received=2)

    stub.script("SubmitUpdate", broken_after(2), broken_after(100), complete)
    connection, log = connect()
    assert connection.submit(update, chunk_bytes=100) == 2
    assert len(sent) == 3 and len(log) == 2
    assert sent[1] == sent[2]
    assert sent[0] == sent[2][:2]
    parsed = [UpdateChunk.FromString(data) for data in sent[2]]
    assert serde.update_from_chunks(parsed) == update
    assert [len(c.data) for c in parsed[1:]] == [100] * 7 + [72]
    timeout = upload_timeout_s(len(update.payload))
    assert [a.timeout for a in stub.attempts] == [timeout] * 3


def test_get_model_asks_with_the_poll_deadline_and_retries_a_broken_stream(
    connect: Connect, stub: FakeStub
) -> None:
    model = GlobalModel(ModelHeader(round=7, step=6, encrypted=False, length=3), bytes(24))
    chunks = list(serde.model_to_chunks(model, chunk_bytes=10))

    def breaks_midway(request: Any) -> Iterator[ModelChunk]:
        yield chunks[0]
        raise unavailable("stream reset")

    stub.script("GetModel", breaks_midway, lambda request: iter(chunks))
    connection, log = connect()
    got = connection.model("guest", "r", 7, have_scaler=True, max_payload_bytes=24)
    assert got == model and len(log) == 1
    request = stub.attempts[-1].request
    assert (request.worker_id, request.run_id, request.round, request.have_scaler) == (
        "guest",
        "r",
        7,
        True,
    )
    assert all(a.timeout > POLL_S for a in stub.attempts)


def test_an_oversized_model_is_refused_unread_and_not_retried(
    connect: Connect, stub: FakeStub, clock: Clock
) -> None:
    model = GlobalModel(ModelHeader(round=1, encrypted=False, length=3), bytes(25))
    chunks = list(serde.model_to_chunks(model, chunk_bytes=10))

    def stream(request: Any) -> Iterator[ModelChunk]:
        yield chunks[0]
        raise AssertionError("the payload must not be read")

    stub.script("GetModel", stream)
    connection, _ = connect()
    with pytest.raises(ProtocolError, match="25 bytes exceeds the limit of 24"):
        connection.model("guest", "r", 1, have_scaler=True, max_payload_bytes=24)
    assert clock.slept == []


def test_join_sends_the_request_and_returns_the_round(connect: Connect, stub: FakeStub) -> None:
    stub.script("Join", JoinReply(round=12))
    connection, _ = connect()
    assert connection.join(JoinRequest("guest", "run-1", 30, 569)) == 12
    request = stub.attempts[0].request
    assert serde.join_request_from_proto(request) == JoinRequest("guest", "run-1", 30, 569)
    assert stub.attempts[0].timeout == CALL_TIMEOUT_S
