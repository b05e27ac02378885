"""The gRPC servicer: decode, call the domain, map domain errors to status codes. Nothing else.

==============================  =======================
domain error                    gRPC status
==============================  =======================
ProtocolError, ConfigError      INVALID_ARGUMENT
RoundError                      FAILED_PRECONDITION
PolicyError (not allow-listed,  PERMISSION_DENIED
id not the certificate's)
==============================  =======================

A refused call changes nothing: the coordinator checks before it stores.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import NoReturn

import grpc

from homolr.crypto import PackedVector, PublicKey
from homolr.errors import ConfigError, HomolrError, PolicyError, ProtocolError, RoundError
from homolr.protocol import serde
from homolr.protocol.messages import PENDING_REASON, GlobalModel, ModelHeader, ServerInfo
from homolr.protocol.service import ParameterServerServicer, pb
from homolr.server.aggregation import decode_update, expected_ciphertexts
from homolr.server.rounds import RoundCoordinator
from homolr.server.training import WireCounter

#: Returns the worker id a caller proved (its client certificate's), or raises PolicyError when
#: the caller may not take part; None (no authenticator) means the transport proves nothing
#: (development mode, --insecure).
Authenticator = Callable[[grpc.ServicerContext], str | None]

_STATUS: tuple[tuple[type[HomolrError], grpc.StatusCode], ...] = (
    (ProtocolError, grpc.StatusCode.INVALID_ARGUMENT),
    (ConfigError, grpc.StatusCode.INVALID_ARGUMENT),
    (RoundError, grpc.StatusCode.FAILED_PRECONDITION),
    (PolicyError, grpc.StatusCode.PERMISSION_DENIED),
)


def _abort(context: grpc.ServicerContext, exc: HomolrError) -> NoReturn:
    for kind, code in _STATUS:
        if isinstance(exc, kind):
            context.abort(code, str(exc))
    context.abort(grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}")


class Servicer(ParameterServerServicer):
    """homolr.v1.ParameterServer backed by a :class:`RoundCoordinator`."""

    def __init__(
        self,
        *,
        info: ServerInfo,
        public_key: PublicKey,
        coordinator: RoundCoordinator[PackedVector],
        wire: WireCounter,
        authenticate: Authenticator | None = None,
        poll_s: float = 20.0,
    ) -> None:
        self._info = info
        self._info_msg = serde.server_info_to_proto(info)
        self._public_key = public_key
        self._coordinator = coordinator
        self._wire = wire
        self._authenticate = authenticate
        self._poll_s = poll_s
        self._max_update_bytes = (
            expected_ciphertexts(info.plan, public_key) * public_key.ciphertext_bytes
        )

    def GetServerInfo(
        self, request: pb.ServerInfoRequest, context: grpc.ServicerContext
    ) -> pb.ServerInfo:
        return self._info_msg

    def Join(self, request: pb.JoinRequest, context: grpc.ServicerContext) -> pb.JoinReply:
        try:
            req = serde.join_request_from_proto(request)
            self._authorize(context, req.worker_id)
            self._check_run(req.run_id)
            round_ = self._coordinator.join(req.worker_id, req.n_features, req.n_samples)
        except HomolrError as exc:
            _abort(context, exc)
        return pb.JoinReply(round=round_)

    def GetModel(
        self, request: pb.ModelRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.ModelChunk]:
        try:
            worker_id = serde.check_worker_id(request.worker_id)
            self._authorize(context, worker_id)
            self._check_run(request.run_id)
            remaining = context.time_remaining()
            wait = (
                self._poll_s if remaining is None else max(0.0, min(self._poll_s, remaining - 1.0))
            )
            model = self._coordinator.wait_model(worker_id, request.round, wait)
        except HomolrError as exc:
            _abort(context, exc)
        if model is None:
            model = GlobalModel(ModelHeader(round=request.round, reason=PENDING_REASON))
        self._wire.add(len(model.payload))
        yield from serde.model_to_chunks(model)

    def SubmitUpdate(
        self, request_iterator: Iterator[pb.UpdateChunk], context: grpc.ServicerContext
    ) -> pb.SubmitReply:
        try:
            update = serde.update_from_chunks(request_iterator, self._max_update_bytes)
            self._wire.add(len(update.payload))
            worker_id = update.header.worker_id
            self._authorize(context, worker_id)
            packed = decode_update(update, self._info.plan, self._public_key, self._info.run_id)
            received = self._coordinator.submit(worker_id, update.header.round, packed)
        except HomolrError as exc:
            _abort(context, exc)
        return pb.SubmitReply(round=update.header.round, received=received)

    def _authorize(self, context: grpc.ServicerContext, worker_id: str) -> None:
        if self._authenticate is None:
            return
        proven = self._authenticate(context)
        if proven != worker_id:
            raise PolicyError(
                f"worker id '{worker_id}' does not match the client certificate's id '{proven}'"
            )

    def _check_run(self, run_id: str) -> None:
        if run_id != self._info.run_id:
            raise RoundError(f"run id '{run_id}' is not this PS's run '{self._info.run_id}'")


__all__ = ["Authenticator", "Servicer"]
