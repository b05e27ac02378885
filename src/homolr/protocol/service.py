"""The gRPC service surface: stub, servicer base and registration, re-exported from the stubs.

Together with :mod:`homolr.protocol.serde` this is the only place the generated code is imported.
The server registers the service with lenient request parsers: bytes that are no message of the
expected type reach the servicer as :class:`Malformed` (answered INVALID_ARGUMENT naming the type)
instead of failing inside gRPC with an UNKNOWN status that exposes an exception class.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from grpc import aio

from homolr.protocol import homolr_pb2 as pb
from homolr.protocol.homolr_pb2_grpc import (
    ParameterServerServicer,
    ParameterServerStub,
)

SERVICE_NAME = "homolr.v2.ParameterServer"


class Malformed:
    """A request message that did not parse; the servicer refuses it with INVALID_ARGUMENT."""

    def __init__(self, error: str) -> None:
        self.error = error


def _lenient(message_type: Any) -> Callable[[bytes], Any]:
    name = message_type.DESCRIPTOR.full_name

    def parse(data: bytes) -> Any:
        try:
            return message_type.FromString(data)
        except DecodeError:
            return Malformed(f"the request is not a well-formed {name} message")

    return parse


def _serialize_model_chunk(message: pb.ModelChunk | bytes) -> bytes:
    """GetModel's response serializer: messages are serialized here, bytes are sent as they are
    (data messages the servicer serialized once for every member; see
    :func:`homolr.protocol.serde.serialized_model_data`)."""
    return message if isinstance(message, bytes) else message.SerializeToString()


def make_stub(channel: grpc.Channel) -> ParameterServerStub:
    """A typed client stub on ``channel``."""
    return ParameterServerStub(channel)  # type: ignore[no-untyped-call]


def add_servicer(servicer: ParameterServerServicer, server: grpc.Server | aio.Server) -> None:
    """Register ``servicer`` with ``server`` (lenient request parsing, see the module docstring)."""
    handlers = {
        "GetServerInfo": grpc.unary_unary_rpc_method_handler(
            servicer.GetServerInfo,
            request_deserializer=_lenient(pb.ServerInfoRequest),
            response_serializer=pb.ServerInfo.SerializeToString,
        ),
        "Join": grpc.unary_unary_rpc_method_handler(
            servicer.Join,
            request_deserializer=_lenient(pb.JoinRequest),
            response_serializer=pb.JoinReply.SerializeToString,
        ),
        "GetModel": grpc.unary_stream_rpc_method_handler(
            servicer.GetModel,
            request_deserializer=_lenient(pb.ModelRequest),
            response_serializer=_serialize_model_chunk,
        ),
        "SubmitUpdate": grpc.stream_unary_rpc_method_handler(
            servicer.SubmitUpdate,
            request_deserializer=_lenient(pb.UpdateChunk),
            response_serializer=pb.SubmitReply.SerializeToString,
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)  # type: ignore[union-attr]


__all__ = [
    "SERVICE_NAME",
    "Malformed",
    "ParameterServerServicer",
    "ParameterServerStub",
    "add_servicer",
    "make_stub",
    "pb",
]
