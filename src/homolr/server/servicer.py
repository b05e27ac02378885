"""The asyncio gRPC servicer: authorize at the header, bound every wait, map domain errors to codes.

Nothing here holds a thread while it waits: long polls and streams are coroutines on the PS's event
loop. Every call is authorized on its first message, before any payload is read: unknown ids, a
wrong run, a wrong round and oversize announcements are refused at the header. Each member may have
one ``GetModel`` and one ``SubmitUpdate`` in flight; every stream has an idle limit between messages
and an overall limit derived from the plan's payload size; long polls are capped and answer
``pending``. Ciphertext validation and folding run on a worker thread, off the event loop.

==============================  =====================  ==========================================
domain error                    gRPC status            what a member does
==============================  =====================  ==========================================
ProtocolError, ConfigError,     INVALID_ARGUMENT       stop: its message or data is wrong
DataError
PolicyError                     PERMISSION_DENIED      stop: not a member / not its certificate
PreconditionError               FAILED_PRECONDITION    stop (or Join first when "not joined")
RoundError                      ABORTED                fetch the open round's model and go on
a second call in flight         RESOURCE_EXHAUSTED     retry with backoff
oldest of too many headerless   RESOURCE_EXHAUSTED     retry with backoff (send the header at once)
idle or too slow stream         DEADLINE_EXCEEDED      retry with backoff
PS shutting down                UNAVAILABLE            retry with backoff
==============================  =====================  ==========================================
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import NoReturn

import grpc
from grpc import aio

from homolr.errors import (
    ConfigError,
    DataError,
    HomolrError,
    PolicyError,
    PreconditionError,
    ProtocolError,
    RoundError,
)
from homolr.protocol import serde
from homolr.protocol.messages import (
    PROTOCOL_VERSION,
    GlobalModel,
    ModelHeader,
    ServerInfo,
    UpdateHeader,
)
from homolr.protocol.service import Malformed, ParameterServerServicer, pb
from homolr.server.state import MemberState, RunState

#: Returns the member id a caller proved (its client certificate's), or raises PolicyError when the
#: caller is no member; None (no authenticator) means the transport proves nothing (--insecure).
Authenticator = Callable[[aio.ServicerContext[object, object]], str]

#: What ``context.read()`` returns at the end of a request stream.
_EOF: object = aio.EOF  # type: ignore[attr-defined]

_STATUS: tuple[tuple[type[HomolrError], grpc.StatusCode], ...] = (
    (ProtocolError, grpc.StatusCode.INVALID_ARGUMENT),
    (ConfigError, grpc.StatusCode.INVALID_ARGUMENT),
    (DataError, grpc.StatusCode.INVALID_ARGUMENT),
    (PolicyError, grpc.StatusCode.PERMISSION_DENIED),
    (PreconditionError, grpc.StatusCode.FAILED_PRECONDITION),
    (RoundError, grpc.StatusCode.ABORTED),
)


@dataclass(frozen=True)
class ServerLimits:
    """Time and size bounds of every call (see docs/protocol.md, "Limits")."""

    poll_cap_s: float = 10.0  # a long poll answers 'pending' after at most this
    first_message_s: float = 10.0  # a stream's header must arrive within this
    max_awaiting_header: int = 64  # streams waiting for their header at once (oldest closed);
    # at least two per member (see Servicer._read_header); gRPC serves 256 + 4 per member
    idle_s: float = 10.0  # and each later message within this of the previous one
    upload_floor_bytes_per_s: float = 256 * 1024  # overall limit: 30 s + payload at this rate
    upload_base_s: float = 30.0

    def upload_limit_s(self, payload_bytes: int) -> float:
        return self.upload_base_s + payload_bytes / self.upload_floor_bytes_per_s


@dataclass(eq=False)
class _HeaderWait:
    """One update stream waiting for its header; ``timeout`` ends the wait early if evicted."""

    timeout: asyncio.Timeout
    task: asyncio.Task[object] | None
    evicted: bool = False


class _Abort(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


def _status_for(exc: HomolrError) -> grpc.StatusCode:
    for kind, code in _STATUS:
        if isinstance(exc, kind):
            return code
    return grpc.StatusCode.INTERNAL


class Servicer(ParameterServerServicer):
    """homolr.v2.ParameterServer on a :class:`RunState`."""

    def __init__(
        self,
        *,
        info: ServerInfo,
        state: RunState,
        fold_executor: Executor,
        authenticate: Authenticator | None = None,
        limits: ServerLimits | None = None,
        on_bytes: Callable[[int], None] = lambda n: None,
    ) -> None:
        self._info = info
        self._info_msg = serde.server_info_to_proto(info)
        self._state = state
        self._fold_executor = fold_executor
        self._model_cache: tuple[bytes, tuple[bytes, ...]] | None = None
        self._authenticate = authenticate
        self._limits = limits or ServerLimits()
        self._on_bytes = on_bytes
        self._ciphertext_bytes = 0  # set by set_ciphertext_bytes once the key is known
        self._header_waits: dict[_HeaderWait, None] = {}  # oldest first
        self._data_waits: set[asyncio.Timeout] = set()
        self._closing = False
        self._max_header_waits = max(
            self._limits.max_awaiting_header, 2 * state.plan.expected_workers
        )

    def set_ciphertext_bytes(self, width: int) -> None:
        self._ciphertext_bytes = width

    # ------------------------------------------------------------------------------- unary
    async def GetServerInfo(
        self, request: pb.ServerInfoRequest, context: aio.ServicerContext[object, object]
    ) -> pb.ServerInfo:
        if isinstance(request, Malformed):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.error)
        return self._info_msg

    async def Join(
        self, request: pb.JoinRequest, context: aio.ServicerContext[object, object]
    ) -> pb.JoinReply:
        if isinstance(request, Malformed):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.error)
        try:
            req = serde.join_request_from_proto(request)
            if req.protocol_version != PROTOCOL_VERSION:
                raise PreconditionError(
                    f"protocol version {req.protocol_version!r} is not this PS's "
                    f"{PROTOCOL_VERSION!r}"
                )
            self._authorize(context, req.worker_id)
            self._check_run(req.run_id)
            round_ = self._state.join(req.worker_id, req.n_features, req.n_samples)
        except HomolrError as exc:
            await _abort(context, exc)
        return pb.JoinReply(round=round_)

    # ----------------------------------------------------------------------------- GetModel
    async def GetModel(
        self, request: pb.ModelRequest, context: aio.ServicerContext[object, object]
    ) -> AsyncIterator[pb.ModelChunk]:
        if isinstance(request, Malformed):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.error)
        try:
            member_id = serde.check_worker_id(request.worker_id)
            self._authorize(context, member_id)
            self._check_run(serde.check_run_id(request.run_id))
            record = self._state.member(member_id)
        except HomolrError as exc:
            await _abort(context, exc)
        if record.polling:
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"member '{member_id}' already has a GetModel call in flight",
            )
        record.polling = True
        if not (record.connected and record.active):
            # a member of a resumed run, or one that missed a round, polls again: it is back
            # (the next round expects it)
            record.connected = record.active = True
            self._state.changed.notify()
        try:
            model = await self._wait_model(record, request, context)
            if model is None:
                header = ModelHeader(round=request.round, pending=True, reason="no model yet")
                yield pb.ModelChunk(header=serde.model_header_to_proto(header, 0))
                return
            yield pb.ModelChunk(
                header=serde.model_header_to_proto(model.header, len(model.payload))
            )
            for data in self._model_data(model.payload):
                yield data  # type: ignore[misc]  # pre-serialized: see add_servicer
            self._on_bytes(len(model.payload))
            if not model.header.finished:
                self._state.mark_fetched(member_id, model.header.round)
        finally:
            record.polling = False

    def _model_data(self, payload: bytes) -> tuple[bytes, ...]:
        """The published payload's data messages, serialized once for every member (the one
        payload every member of a round downloads; a new payload replaces it)."""
        cached = self._model_cache
        if cached is None or cached[0] is not payload:
            cached = self._model_cache = (payload, serde.serialized_model_data(payload))
        return cached[1]

    async def _wait_model(
        self,
        record: MemberState,
        request: pb.ModelRequest,
        context: aio.ServicerContext[object, object],
    ) -> GlobalModel | None:
        remaining = context.time_remaining()
        budget = self._limits.poll_cap_s
        if remaining is not None:
            budget = max(0.0, min(budget, remaining - 1.0))
        loop = asyncio.get_running_loop()
        give_up = loop.time() + budget
        while True:
            model = self._state.model_for(record.member_id, request.round, request.have_scaler)
            left = give_up - loop.time()
            if model is not None or left <= 0:
                return model
            await self._state.changed.wait(left)

    # ------------------------------------------------------------------------- SubmitUpdate
    async def SubmitUpdate(
        self,
        request_iterator: AsyncIterator[pb.UpdateChunk],
        context: aio.ServicerContext[object, object],
    ) -> pb.SubmitReply:
        record: MemberState | None = None
        try:
            first = await self._read_header(context)
            if first is None or first.WhichOneof("part") != "header":
                raise ProtocolError("an update stream must start with its header")
            header, payload_bytes = serde.update_header_from_proto(first.header)
            self._authorize(context, header.worker_id)
            self._check_run(header.run_id)
            record = self._state.member(header.worker_id)
            if record.submitting:
                raise _Abort(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"member '{header.worker_id}' already has a SubmitUpdate call in flight",
                )
            record.submitting = True
            try:
                received = await self._receive(context, header, payload_bytes, record)
            finally:
                record.submitting = False
        except _Abort as exc:
            await context.abort(exc.code, exc.details)
        except HomolrError as exc:
            await _abort(context, exc)
        return pb.SubmitReply(round=header.round, received=received)

    async def _receive(
        self,
        context: aio.ServicerContext[object, object],
        header: UpdateHeader,
        payload_bytes: int,
        record: MemberState,
    ) -> int:
        state = self._state
        if state.finish is not None:  # like a closed round: the member fetches the end notice
            raise RoundError(f"training has finished ({state.finish.reason})")
        round_sum = state.round_sum
        published = state.published
        if round_sum is None or published is None or header.round != published.round:
            raise RoundError(
                self._wrong_round(
                    header, published.round if published else None, round_sum is not None
                )
            )
        member_id = header.worker_id
        if member_id not in published.weights:
            raise RoundError(f"member '{member_id}' takes no part in round {header.round}")
        layout = round_sum.layout
        expected_bytes = layout.n_ciphertexts * self._ciphertext_bytes
        for name, got, want in (
            ("length", header.length, layout.length),
            ("frac_bits", header.frac_bits, layout.frac_bits),
            ("value_bits", header.value_bits, layout.spec.value_bits),
            ("headroom_bits", header.headroom_bits, layout.spec.headroom_bits),
            ("n_ciphertexts", header.n_ciphertexts, layout.n_ciphertexts),
            ("payload_bytes", payload_bytes, expected_bytes),
        ):
            if got != want:
                raise ProtocolError(
                    f"update from '{member_id}' for round {header.round}: field '{name}' is "
                    f"{got}; the plan requires {want}"
                )
        if member_id in state.submitted:
            # Its whole update is in: the stream that carried it broke (or its reply was lost)
            # after the last data message, and the member sends the same bytes again. Nothing
            # changes; acknowledge it rather than refuse, so the member counts it as delivered.
            return len(state.submitted)
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self._limits.upload_limit_s(payload_bytes)
        for chunk in range(layout.n_chunks):
            idle = min(self._limits.idle_s, give_up - loop.time())
            message = await self._read(context, idle, f"data message {chunk + 1} of the update")
            if message is None or message.WhichOneof("part") != "data":
                raise ProtocolError(
                    f"update from '{member_id}' for round {header.round}: message {chunk + 2} "
                    f"must be data message {chunk + 1} of {layout.n_chunks}"
                )
            self._on_bytes(len(message.data))
            # a resubmission of a folded chunk is checked (byte-identical) and skipped by fold
            await loop.run_in_executor(
                self._fold_executor, round_sum.fold, member_id, chunk, message.data
            )
            state.changed.notify()
        if state.published is published:
            state.submitted.add(member_id)
        received = len(state.submitted)
        trailing = await self._read(context, self._limits.idle_s, "the end of the update stream")
        if trailing is not None:
            raise ProtocolError(
                f"update from '{member_id}' for round {header.round}: more than "
                f"{layout.n_chunks} data messages"
            )
        return received

    # ------------------------------------------------------------------------------ helpers
    async def _read_header(
        self, context: aio.ServicerContext[object, object]
    ) -> pb.UpdateChunk | None:
        """The stream's first message, None if the stream ends without one.

        Nobody is identified before the header, so streams that never send one could hold every
        call slot of the server (gRPC refuses calls beyond ``maximum_concurrent_rpcs``) and lock
        the members out. At most ``max_awaiting_header`` streams (two per member in larger
        federations) wait for their header: a new one beyond that closes the oldest wait at once
        (RESOURCE_EXHAUSTED, which members retry). A member sends its header right after opening
        the stream, so only silent streams stay long enough to be the oldest; a burst of more
        streams than that within one turn of the event loop may see one of its own closed.
        """
        limits = self._limits
        wait: _HeaderWait | None = None
        try:
            async with asyncio.timeout(limits.first_message_s) as timeout:
                wait = _HeaderWait(timeout, asyncio.current_task())
                self._header_waits[wait] = None
                self._evict_header_waits()
                message = await context.read()
        except TimeoutError:
            if self._closing:
                raise _Abort(grpc.StatusCode.UNAVAILABLE, "the PS is shutting down") from None
            if wait is not None and wait.evicted:
                raise _Abort(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"more than {self._max_header_waits} update streams were waiting for "
                    "their header; this one waited longest and was closed (send the header at once)",
                ) from None
            raise _Abort(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"no message for {limits.first_message_s:.0f} s while waiting for the update header",
            ) from None
        finally:
            if wait is not None:
                self._header_waits.pop(wait, None)
        return _update_chunk(message, "the update header")

    async def close(self, grace_s: float = 1.0) -> None:
        """End every stream still waiting for a message (UNAVAILABLE: the PS is shutting down), so
        that stopping the server cancels no handler mid-wait; wait up to ``grace_s`` for them."""
        self._closing = True
        loop = asyncio.get_running_loop()
        now = loop.time()
        for wait in list(self._header_waits):
            wait.timeout.reschedule(now)
        for deadline in list(self._data_waits):
            deadline.reschedule(now)
        give_up = now + grace_s
        while (self._header_waits or self._data_waits) and loop.time() < give_up:
            await asyncio.sleep(0.01)

    def _evict_header_waits(self) -> None:
        now = asyncio.get_running_loop().time()
        while len(self._header_waits) > self._max_header_waits:
            oldest = next(iter(self._header_waits))
            del self._header_waits[oldest]
            if oldest.task is not None and oldest.task.cancelling():
                continue  # its client is gone and gRPC is cancelling it: a second cancel would
                # escape the timeout as a CancelledError that gRPC logs with a traceback
            oldest.evicted = True
            oldest.timeout.reschedule(now)

    async def _read(
        self, context: aio.ServicerContext[object, object], timeout: float, what: str
    ) -> pb.UpdateChunk | None:
        """The next stream message, None at the end of the stream; DEADLINE_EXCEEDED when it
        does not arrive within ``timeout`` seconds."""
        if timeout <= 0:
            raise _Abort(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"the update stream exceeded its overall time limit waiting for {what}",
            )
        deadline: asyncio.Timeout | None = None
        try:
            async with asyncio.timeout(
                timeout
            ) as deadline:  # not wait_for: 3.11's can drop a cancel
                self._data_waits.add(deadline)
                message = await context.read()
        except TimeoutError:
            if self._closing:
                raise _Abort(grpc.StatusCode.UNAVAILABLE, "the PS is shutting down") from None
            raise _Abort(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"no message for {timeout:.0f} s while waiting for {what}",
            ) from None
        finally:
            if deadline is not None:
                self._data_waits.discard(deadline)
        return _update_chunk(message, f"while waiting for {what}")

    def _authorize(self, context: aio.ServicerContext[object, object], member_id: str) -> None:
        if self._authenticate is None:
            return
        proven = self._authenticate(context)
        if proven != member_id:
            raise PolicyError(
                f"member id '{member_id}' is not the client certificate's member '{proven}'"
            )

    def _check_run(self, run_id: str) -> None:
        if run_id != self._info.run_id:
            raise PreconditionError(f"run id '{run_id}' is not this PS's run '{self._info.run_id}'")

    @staticmethod
    def _wrong_round(header: UpdateHeader, last_round: int | None, is_open: bool) -> str:
        """Why an update is not for the open round; ``last_round`` is the latest published one,
        which is closed (being aggregated) when not ``is_open``."""
        who = f"member '{header.worker_id}' submitted for round {header.round}"
        if last_round is None:
            return f"{who} but no round is open"
        late = header.round < last_round or (header.round == last_round and not is_open)
        now = "the current one" if is_open else "closed; the next one is not open yet"
        return f"{who} ({'late' if late else 'early'}); round {last_round} is {now}"


def _update_chunk(message: object, where: str) -> pb.UpdateChunk | None:
    """A message read from an update stream: None at its end; a malformed one is refused, naming
    ``where`` it stood."""
    if message is _EOF:
        return None
    if isinstance(message, Malformed):
        raise ProtocolError(f"{message.error} ({where})")
    assert isinstance(message, pb.UpdateChunk)
    return message


async def _abort(context: aio.ServicerContext[object, object], exc: HomolrError) -> NoReturn:
    await context.abort(_status_for(exc), str(exc))
    raise AssertionError("unreachable: abort raises")


__all__ = ["Authenticator", "ServerLimits", "Servicer"]
