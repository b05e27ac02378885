"""The gRPC service surface: stub, servicer base and registration, re-exported from the stubs.

Together with :mod:`homolr.protocol.serde` this is the only place the generated code is imported.
"""

from __future__ import annotations

import grpc
from grpc import aio

from homolr.protocol import homolr_pb2 as pb
from homolr.protocol.homolr_pb2_grpc import (
    ParameterServerServicer,
    ParameterServerStub,
    add_ParameterServerServicer_to_server,
)

SERVICE_NAME = "homolr.v2.ParameterServer"


def make_stub(channel: grpc.Channel) -> ParameterServerStub:
    """A typed client stub on ``channel``."""
    return ParameterServerStub(channel)  # type: ignore[no-untyped-call]


def add_servicer(servicer: ParameterServerServicer, server: grpc.Server | aio.Server) -> None:
    """Register ``servicer`` with ``server``."""
    add_ParameterServerServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]


__all__ = [
    "SERVICE_NAME",
    "ParameterServerServicer",
    "ParameterServerStub",
    "add_ParameterServerServicer_to_server",
    "add_servicer",
    "make_stub",
    "pb",
]
