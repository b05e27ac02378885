"""The worker's side of the wire: one channel, a deadline on every call, retries that ride out a
slow or unreachable PS.

Every call carries a deadline. ``UNAVAILABLE`` (PS down or restarting, network cut),
``DEADLINE_EXCEEDED`` (PS frozen or slow, packet loss) and ``RESOURCE_EXHAUSTED`` (a call of ours
still in flight at the PS) are retried with exponential backoff and jitter until the retry budget is
spent; the budget counts the time the PS stays silent (not the member's own work between calls), so
a long run survives any number of short outages. gRPC's own "message larger than max"
RESOURCE_EXHAUSTED is not retried (retrying cannot shrink the message). Each wait is logged (``PS at host:port not answering
(DEADLINE_EXCEEDED); retrying in 1.6 s, 12 s of 120 s used``). A TLS handshake failure is not
retried (retrying cannot fix a certificate). Every other status becomes the domain error that the
worker acts on (see :data:`STATUS_ERRORS` and docs/protocol.md, "Status codes").
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import grpc

from homolr.errors import (
    HomolrError,
    PolicyError,
    PreconditionError,
    ProtocolError,
    RoundError,
    TransportError,
)
from homolr.protocol import serde
from homolr.protocol.messages import GlobalModel, JoinRequest, ServerInfo, Update
from homolr.protocol.service import make_stub, pb

T = TypeVar("T")

#: Largest message a worker sends or accepts (a 4096-ciphertext data message at 4096 bits + room).
MAX_MESSAGE_BYTES = 5 * 1024 * 1024
#: Deadline of the short calls (GetServerInfo, Join).
CALL_TIMEOUT_S = 10.0
#: The PS answers a long poll within 10 s; the call's deadline leaves room for the transfer.
POLL_S = 10.0
POLL_MARGIN_S = 20.0
#: An upload's deadline: 30 s plus its size at 256 KiB/s (the PS's own limit, see ServerLimits).
UPLOAD_BASE_S = 30.0
UPLOAD_BYTES_PER_S = 256 * 1024
RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)
#: Statuses that carry a verdict of the PS, and the error the worker raises for each.
STATUS_ERRORS: dict[grpc.StatusCode, type[HomolrError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: ProtocolError,
    grpc.StatusCode.PERMISSION_DENIED: PolicyError,
    grpc.StatusCode.UNAUTHENTICATED: PolicyError,
    grpc.StatusCode.FAILED_PRECONDITION: PreconditionError,
    grpc.StatusCode.ABORTED: RoundError,
}
_TLS_HINTS = ("ssl", "handshake", "certificate", "tls")


def channel_options(target_name_override: str | None = None) -> list[tuple[str, int | str]]:
    options: list[tuple[str, int | str]] = [
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        # Keepalive pings only while a call is active, and never more often than the PS allows.
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 0),
        # Reconnect quickly after a cut: the default backoff grows to 120 s.
        ("grpc.initial_reconnect_backoff_ms", 200),
        ("grpc.max_reconnect_backoff_ms", 5_000),
    ]
    if target_name_override:
        options.append(("grpc.ssl_target_name_override", target_name_override))
    return options


def upload_timeout_s(payload_bytes: int) -> float:
    return UPLOAD_BASE_S + payload_bytes / UPLOAD_BYTES_PER_S


class Connection:
    """A worker's connection to the PS (see the module docstring)."""

    def __init__(
        self,
        target: str,
        *,
        credentials: grpc.ChannelCredentials | None = None,
        target_name_override: str | None = None,
        retry_budget_s: float = 120.0,
        log: Callable[[str], None] = lambda text: None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.target = target
        options = channel_options(target_name_override)
        if credentials is None:
            self._channel = grpc.insecure_channel(target, options=options)
        else:
            self._channel = grpc.secure_channel(target, credentials, options=options)
        self._stub = make_stub(self._channel)
        self._retry_budget_s = retry_budget_s
        self._log = log
        self._sleep = sleep
        self._clock = clock
        self._last_answer = clock()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def server_info(self) -> ServerInfo:
        msg = self._call(
            "GetServerInfo",
            lambda: self._stub.GetServerInfo(pb.ServerInfoRequest(), timeout=CALL_TIMEOUT_S),
        )
        return serde.server_info_from_proto(msg)

    def join(self, request: JoinRequest) -> int:
        msg = self._call(
            "Join",
            lambda: self._stub.Join(serde.join_request_to_proto(request), timeout=CALL_TIMEOUT_S),
        )
        return int(msg.round)

    def model(
        self,
        worker_id: str,
        run_id: str,
        round_: int,
        *,
        have_scaler: bool,
        max_payload_bytes: int,
    ) -> GlobalModel:
        """Long-poll the model of round >= ``round_`` (the answer may be ``header.pending``).

        A payload announced above ``max_payload_bytes`` (the plan's model size) is refused before
        any of it is read.
        """
        request = pb.ModelRequest(
            worker_id=worker_id, run_id=run_id, round=round_, have_scaler=have_scaler
        )
        return self._call(
            "GetModel",
            lambda: serde.model_from_chunks(
                self._stub.GetModel(request, timeout=POLL_S + POLL_MARGIN_S), max_payload_bytes
            ),
        )

    def submit(self, update: Update, chunk_bytes: int) -> int:
        """Send one update (retried byte for byte on a transient failure); return how many
        complete updates the PS holds for the round."""
        timeout = upload_timeout_s(len(update.payload))
        msg = self._call(
            "SubmitUpdate",
            lambda: self._stub.SubmitUpdate(
                serde.update_to_chunks(update, chunk_bytes), timeout=timeout
            ),
        )
        return int(msg.received)

    def _call(self, name: str, call: Callable[[], T]) -> T:
        delays = backoff_delays()
        # The budget counts PS silence: from the last answer, but never the member's own work
        # between two calls.
        silent_since = max(self._last_answer, self._clock())
        while True:
            try:
                result = call()
            except grpc.RpcError as exc:
                code, details = _status(exc)
                self._raise_unless_retryable(name, code, details)
                delay = next(delays)
                used = self._clock() - silent_since
                if used + delay > self._retry_budget_s:
                    raise TransportError(
                        f"{name} to the PS at {self.target} failed: {code.name}: {details}; "
                        f"gave up after {used:.0f} s without an answer (retry budget "
                        f"{self._retry_budget_s:g} s)"
                    ) from None
                self._log(
                    f"PS at {self.target} not answering ({code.name}); retrying in {delay:.1f} s, "
                    f"{used:.0f} s of {self._retry_budget_s:g} s used"
                )
                self._sleep(delay)
                continue
            self._last_answer = self._clock()
            return result

    def _raise_unless_retryable(self, name: str, code: grpc.StatusCode, details: str) -> None:
        if code == grpc.StatusCode.UNAVAILABLE and _is_tls_failure(details):
            raise TransportError(
                f"TLS handshake with the PS at {self.target} failed ({details}); not retrying: "
                "check the certificates (is this member's certificate in the PS's federation "
                "file?)"
            )
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in details:
            raise ProtocolError(
                f"{name}: a message exceeded gRPC's size limit ({details}); not retrying"
            )
        if code in RETRYABLE:
            return
        error = STATUS_ERRORS.get(code)
        if error is not None:
            raise error(details)
        raise TransportError(f"{name} to the PS at {self.target} failed: {code.name}: {details}")


def backoff_delays(
    base_s: float = 0.2, cap_s: float = 5.0, rng: random.Random | None = None
) -> Iterator[float]:
    """Exponential backoff with jitter: the k-th delay is uniform in ``[c/2, c]``,
    ``c = min(cap_s, base_s * 2**k)``; endless."""
    rng = rng or random.Random()
    k = 0
    while True:
        ceiling = min(cap_s, base_s * 2**k)
        yield rng.uniform(ceiling / 2, ceiling)
        k = min(k + 1, 30)


def _status(exc: grpc.RpcError) -> tuple[grpc.StatusCode, str]:
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = exc.details() if hasattr(exc, "details") else str(exc)
    return code, details or ""


def _is_tls_failure(details: str) -> bool:
    lowered = details.lower()
    return any(hint in lowered for hint in _TLS_HINTS)


__all__ = [
    "CALL_TIMEOUT_S",
    "MAX_MESSAGE_BYTES",
    "POLL_S",
    "RETRYABLE",
    "STATUS_ERRORS",
    "Connection",
    "backoff_delays",
    "channel_options",
    "upload_timeout_s",
]
