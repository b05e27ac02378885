"""The worker's side of the wire: one channel, deadlines on every call, retries with backoff.

Every call carries a deadline. ``UNAVAILABLE`` (PS not up yet, restarting, network blip) is retried
with exponential backoff and jitter until ``retry_budget_s`` runs out; a TLS handshake failure
is not retried (retrying cannot fix a certificate) and says so. ``FAILED_PRECONDITION`` becomes a
:class:`~homolr.errors.RoundError` (e.g. a late submission); every other failure becomes a
:class:`~homolr.errors.TransportError` naming the peer, the status and the PS's message.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import grpc

from homolr.errors import RoundError, TransportError
from homolr.protocol import serde
from homolr.protocol.messages import PENDING_REASON, GlobalModel, JoinRequest, ServerInfo, Update
from homolr.protocol.service import make_stub, pb

T = TypeVar("T")

MAX_MESSAGE_BYTES = 8 * 1024 * 1024
_TLS_HINTS = ("ssl", "handshake", "certificate", "tls")


def channel_options(target_name_override: str | None = None) -> list[tuple[str, int | str]]:
    options: list[tuple[str, int | str]] = [
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.keepalive_time_ms", 30_000),
    ]
    if target_name_override:
        options.append(("grpc.ssl_target_name_override", target_name_override))
    return options


class Connection:
    """A worker's connection to the PS."""

    def __init__(
        self,
        target: str,
        *,
        credentials: grpc.ChannelCredentials | None = None,
        target_name_override: str | None = None,
        rpc_timeout_s: float = 30.0,
        retry_budget_s: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.target = target
        options = channel_options(target_name_override)
        if credentials is None:
            self._channel = grpc.insecure_channel(target, options=options)
        else:
            self._channel = grpc.secure_channel(target, credentials, options=options)
        self._stub = make_stub(self._channel)
        self._rpc_timeout_s = rpc_timeout_s
        self._retry_budget_s = retry_budget_s
        self._sleep = sleep

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def server_info(self) -> ServerInfo:
        msg = self._call(
            "GetServerInfo",
            lambda: self._stub.GetServerInfo(pb.ServerInfoRequest(), timeout=self._rpc_timeout_s),
        )
        return serde.server_info_from_proto(msg)

    def join(self, request: JoinRequest) -> int:
        msg = self._call(
            "Join",
            lambda: self._stub.Join(
                serde.join_request_to_proto(request), timeout=self._rpc_timeout_s
            ),
        )
        return int(msg.round)

    def model(self, worker_id: str, run_id: str, round: int, poll_s: float) -> GlobalModel | None:
        """Long-poll the model of round >= ``round``; None when the PS had none ready in ``poll_s``."""
        request = pb.ModelRequest(worker_id=worker_id, run_id=run_id, round=round)
        model = self._call(
            "GetModel",
            lambda: serde.model_from_chunks(
                self._stub.GetModel(request, timeout=poll_s + self._rpc_timeout_s)
            ),
        )
        if not model.header.finished and model.header.reason == PENDING_REASON:
            return None
        return model

    def submit(self, update: Update) -> int:
        msg = self._call(
            "SubmitUpdate",
            lambda: self._stub.SubmitUpdate(
                serde.update_to_chunks(update), timeout=self._rpc_timeout_s
            ),
        )
        return int(msg.received)

    def _call(self, name: str, call: Callable[[], T]) -> T:
        give_up = time.monotonic() + self._retry_budget_s
        for delay in backoff_delays():
            try:
                return call()
            except grpc.RpcError as exc:
                code, details = _status(exc)
                if code == grpc.StatusCode.FAILED_PRECONDITION:
                    raise RoundError(details) from None
                if _is_tls_failure(details):
                    raise TransportError(
                        f"TLS handshake with the PS at {self.target} failed ({details}); "
                        "not retrying: check the certificates"
                    ) from None
                if code not in (grpc.StatusCode.UNAVAILABLE,) or time.monotonic() + delay > give_up:
                    raise TransportError(
                        f"{name} to the PS at {self.target} failed: {code.name}: {details}"
                    ) from None
                self._sleep(delay)
        raise AssertionError("unreachable: backoff_delays is infinite")


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


__all__ = ["MAX_MESSAGE_BYTES", "Connection", "backoff_delays", "channel_options"]
