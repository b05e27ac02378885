"""Conversion between :mod:`homolr.protocol.messages` and protobuf; the only importer of the stubs.

Pairs of ``x_to_proto`` / ``x_from_proto`` functions; large payloads are split into chunks
(:data:`CHUNK_BYTES` each) so that a model of any size stays under gRPC's message limit. Everything
decoded from a peer is checked here and rejected with :class:`~homolr.errors.ProtocolError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import fields
from typing import Any, TypeVar

from homolr.errors import ProtocolError
from homolr.protocol import homolr_pb2 as pb
from homolr.protocol.messages import (
    GlobalModel,
    JoinRequest,
    Mode,
    ModelHeader,
    ServerInfo,
    TrainingPlan,
    Update,
    UpdateHeader,
    Weighting,
)

CHUNK_BYTES = 1 << 20
MAX_PAYLOAD_BYTES = 1 << 30
MAX_ID_LENGTH = 128

_MODE_TO_PROTO: dict[str, int] = {"encrypted": pb.MODE_ENCRYPTED, "aggregate": pb.MODE_AGGREGATE}
_MODE_FROM_PROTO: dict[int, Mode] = {pb.MODE_ENCRYPTED: "encrypted", pb.MODE_AGGREGATE: "aggregate"}
_WEIGHTING_TO_PROTO: dict[str, int] = {"equal": pb.WEIGHTING_EQUAL, "samples": pb.WEIGHTING_SAMPLES}
_WEIGHTING_FROM_PROTO: dict[int, Weighting] = {
    pb.WEIGHTING_EQUAL: "equal",
    pb.WEIGHTING_SAMPLES: "samples",
}


def plan_to_proto(plan: TrainingPlan) -> pb.TrainingPlan:
    return pb.TrainingPlan(
        **_field_values(
            plan,
            mode=_MODE_TO_PROTO[plan.mode],
            weighting=_WEIGHTING_TO_PROTO[plan.weighting],
            feature_names=list(plan.feature_names),
        )
    )


def plan_from_proto(msg: pb.TrainingPlan) -> TrainingPlan:
    if msg.mode not in _MODE_FROM_PROTO:
        raise ProtocolError(f"training plan has unknown mode {msg.mode}")
    if msg.weighting not in _WEIGHTING_FROM_PROTO:
        raise ProtocolError(f"training plan has unknown weighting {msg.weighting}")
    return _from_proto(
        TrainingPlan,
        msg,
        mode=_MODE_FROM_PROTO[msg.mode],
        weighting=_WEIGHTING_FROM_PROTO[msg.weighting],
        feature_names=tuple(msg.feature_names),
    )


def server_info_to_proto(info: ServerInfo) -> pb.ServerInfo:
    return pb.ServerInfo(**_field_values(info, plan=plan_to_proto(info.plan)))


def server_info_from_proto(msg: pb.ServerInfo) -> ServerInfo:
    return _from_proto(ServerInfo, msg, plan=plan_from_proto(msg.plan))


def join_request_to_proto(req: JoinRequest) -> pb.JoinRequest:
    return pb.JoinRequest(**_field_values(req))


def join_request_from_proto(msg: pb.JoinRequest) -> JoinRequest:
    return _from_proto(JoinRequest, msg, worker_id=check_worker_id(msg.worker_id))


def check_worker_id(worker_id: str) -> str:
    """Return ``worker_id`` if it is a short printable identifier, else raise ProtocolError."""
    if not worker_id or len(worker_id) > MAX_ID_LENGTH or not worker_id.isprintable():
        raise ProtocolError(
            f"worker id {worker_id[:MAX_ID_LENGTH]!r} must be 1..{MAX_ID_LENGTH} printable characters"
        )
    return worker_id


def model_to_chunks(model: GlobalModel, chunk_bytes: int = CHUNK_BYTES) -> Iterator[pb.ModelChunk]:
    header = pb.ModelHeader(**_field_values(model.header, payload_bytes=len(model.payload)))
    yield pb.ModelChunk(header=header)
    for data in _split(model.payload, chunk_bytes):
        yield pb.ModelChunk(data=data)


def model_from_chunks(chunks: Iterable[pb.ModelChunk]) -> GlobalModel:
    first, payload = _join_chunks(chunks, "model")
    return GlobalModel(header=_from_proto(ModelHeader, first.header), payload=payload)


def update_to_chunks(update: Update, chunk_bytes: int = CHUNK_BYTES) -> Iterator[pb.UpdateChunk]:
    header = pb.UpdateHeader(**_field_values(update.header, payload_bytes=len(update.payload)))
    yield pb.UpdateChunk(header=header)
    for data in _split(update.payload, chunk_bytes):
        yield pb.UpdateChunk(data=data)


def update_from_chunks(
    chunks: Iterable[pb.UpdateChunk], max_payload_bytes: int = MAX_PAYLOAD_BYTES
) -> Update:
    first, payload = _join_chunks(chunks, "update", max_payload_bytes)
    header = _from_proto(UpdateHeader, first.header)
    check_worker_id(header.worker_id)
    return Update(header=header, payload=payload)


_D = TypeVar("_D")


def _field_values(obj: Any, **overrides: Any) -> dict[str, Any]:
    """The dataclass's fields by name, one level deep (protobuf messages use the same names);
    ``overrides`` replace the fields that need converting."""
    return {**{f.name: getattr(obj, f.name) for f in fields(obj)}, **overrides}


def _from_proto(cls: type[_D], msg: Any, **overrides: Any) -> _D:
    """Build dataclass ``cls`` from its protobuf twin; ``overrides`` replace converted fields."""
    values = {f.name: getattr(msg, f.name) for f in fields(cls) if f.name not in overrides}  # type: ignore[arg-type]
    return cls(**values, **overrides)


def _split(payload: bytes, chunk_bytes: int) -> Iterator[bytes]:
    view = memoryview(payload)
    for start in range(0, len(payload), chunk_bytes):
        yield bytes(view[start : start + chunk_bytes])


_Chunk = TypeVar("_Chunk", pb.ModelChunk, pb.UpdateChunk)


def _join_chunks(
    chunks: Iterable[_Chunk], what: str, max_payload_bytes: int = MAX_PAYLOAD_BYTES
) -> tuple[_Chunk, bytes]:
    """Return the stream's first (header) message and its reassembled payload.

    A payload announced larger than ``max_payload_bytes`` is refused before any of it is read.
    """
    iterator = iter(chunks)
    first = next(iterator, None)
    if first is None or first.WhichOneof("part") != "header":
        raise ProtocolError(f"{what} stream must start with a header")
    expected = first.header.payload_bytes
    if expected > max_payload_bytes:
        raise ProtocolError(
            f"{what} payload of {expected} bytes exceeds the limit of {max_payload_bytes}"
        )
    buffer = bytearray()
    for index, chunk in enumerate(iterator, start=1):
        if chunk.WhichOneof("part") != "data":
            raise ProtocolError(f"{what} stream message {index} is a second header; expected data")
        buffer += chunk.data
        if len(buffer) > expected:
            raise ProtocolError(f"{what} payload exceeds the announced {expected} bytes")
    if len(buffer) != expected:
        raise ProtocolError(f"{what} payload has {len(buffer)} bytes; header announced {expected}")
    return first, bytes(buffer)


__all__ = [
    "CHUNK_BYTES",
    "MAX_PAYLOAD_BYTES",
    "check_worker_id",
    "join_request_from_proto",
    "join_request_to_proto",
    "model_from_chunks",
    "model_to_chunks",
    "plan_from_proto",
    "plan_to_proto",
    "server_info_from_proto",
    "server_info_to_proto",
    "update_from_chunks",
    "update_to_chunks",
]
