"""The gRPC service surface: stub, servicer base and registration, re-exported from the stubs.

Together with :mod:`homolr.protocol.serde` this is the only place the generated code is imported.
"""

from __future__ import annotations

from homolr.protocol import homolr_pb2 as pb
from homolr.protocol.homolr_pb2_grpc import (
    ParameterServerServicer,
    ParameterServerStub,
    add_ParameterServerServicer_to_server,
)

SERVICE_NAME = "homolr.v1.ParameterServer"

__all__ = [
    "SERVICE_NAME",
    "ParameterServerServicer",
    "ParameterServerStub",
    "add_ParameterServerServicer_to_server",
    "pb",
]
