"""Conversion between :mod:`homolr.protocol.messages` and protobuf; the only importer of the stubs.

Pairs of ``x_to_proto`` / ``x_from_proto`` functions; large payloads are split into chunks so that a
model of any size stays under gRPC's message limit. Everything decoded from a peer is checked here
and rejected with :class:`~homolr.errors.ProtocolError` (unknown enum values, bad ids, oversize or
inconsistent payloads).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import fields
from typing import Any, TypeVar

from homolr.errors import ProtocolError
from homolr.protocol import homolr_pb2 as pb
from homolr.protocol.messages import (
    GlobalModel,
    JoinRequest,
    ModelHeader,
    Scaler,
    ServerInfo,
    TrainingPlan,
    Update,
    UpdateHeader,
)

#: Bytes per data message of a model stream (the update stream's size is set by the plan).
CHUNK_BYTES = 1 << 20
#: Hard ceiling of any payload, whatever the plan says.
MAX_PAYLOAD_BYTES = 1 << 30
MAX_ID_LENGTH = 64
MAX_RUN_ID_LENGTH = 64
#: Member ids: also used in file names, certificate names and log lines.
WORKER_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")

_T = TypeVar("_T")


def _enum(names: Mapping[str, int]) -> tuple[dict[str, int], dict[int, str]]:
    return dict(names), {v: k for k, v in names.items()}


_MODE = _enum({"encrypted": pb.MODE_ENCRYPTED, "aggregate": pb.MODE_AGGREGATE})
_WEIGHTING = _enum({"equal": pb.WEIGHTING_EQUAL, "samples": pb.WEIGHTING_SAMPLES})
_PARTICIPATION = _enum({"all": pb.PARTICIPATION_ALL, "quorum": pb.PARTICIPATION_QUORUM})
_PRIVACY = _enum(
    {
        "none": pb.PRIVACY_LEVEL_NONE,
        "member": pb.PRIVACY_LEVEL_MEMBER,
        "record": pb.PRIVACY_LEVEL_RECORD,
    }
)
_KIND = _enum({"train": pb.ROUND_KIND_TRAIN, "moments": pb.ROUND_KIND_MOMENTS})
_OUTCOME = _enum(
    {
        "completed": pb.OUTCOME_COMPLETED,
        "paused": pb.OUTCOME_PAUSED,
        "stopped": pb.OUTCOME_STOPPED,
        "failed": pb.OUTCOME_FAILED,
    }
)


def _decode_enum(table: tuple[dict[str, int], dict[int, str]], value: int, what: str) -> Any:
    try:
        return table[1][value]
    except KeyError:
        raise ProtocolError(f"{what} has unknown value {value}") from None


# ------------------------------------------------------------------------------------ plan, info


def plan_to_proto(plan: TrainingPlan) -> pb.TrainingPlan:
    return pb.TrainingPlan(
        **_field_values(
            plan,
            mode=_MODE[0][plan.mode],
            weighting=_WEIGHTING[0][plan.weighting],
            participation=_PARTICIPATION[0][plan.participation],
            privacy_level=_PRIVACY[0][plan.privacy_level],
            feature_names=list(plan.feature_names),
            feature_bounds=list(plan.feature_bounds),
        )
    )


def plan_from_proto(msg: pb.TrainingPlan) -> TrainingPlan:
    return _from_proto(
        TrainingPlan,
        msg,
        mode=_decode_enum(_MODE, msg.mode, "training plan field 'mode'"),
        weighting=_decode_enum(_WEIGHTING, msg.weighting, "training plan field 'weighting'"),
        participation=_decode_enum(
            _PARTICIPATION, msg.participation, "training plan field 'participation'"
        ),
        privacy_level=_decode_enum(
            _PRIVACY, msg.privacy_level, "training plan field 'privacy_level'"
        ),
        feature_names=tuple(msg.feature_names),
        feature_bounds=tuple(msg.feature_bounds),
    )


def server_info_to_proto(info: ServerInfo) -> pb.ServerInfo:
    return pb.ServerInfo(**_field_values(info, plan=plan_to_proto(info.plan)))


def server_info_from_proto(msg: pb.ServerInfo) -> ServerInfo:
    return _from_proto(ServerInfo, msg, plan=plan_from_proto(msg.plan))


# ----------------------------------------------------------------------------------------- join


def join_request_to_proto(req: JoinRequest) -> pb.JoinRequest:
    return pb.JoinRequest(**_field_values(req))


def join_request_from_proto(msg: pb.JoinRequest) -> JoinRequest:
    return _from_proto(
        JoinRequest,
        msg,
        worker_id=check_worker_id(msg.worker_id),
        run_id=check_run_id(msg.run_id),
    )


def check_worker_id(worker_id: str) -> str:
    """Return ``worker_id`` if it is a valid member id, else raise ProtocolError."""
    if not WORKER_ID_PATTERN.fullmatch(worker_id):
        shown = worker_id[:MAX_ID_LENGTH]
        raise ProtocolError(
            f"worker id {shown!r} is not 1-64 characters of letters, digits, '_', '.', '-' "
            "starting with a letter or digit"
        )
    return worker_id


def check_run_id(run_id: str) -> str:
    """Return ``run_id`` if it is short and printable, else raise ProtocolError."""
    if len(run_id) > MAX_RUN_ID_LENGTH or not run_id.isprintable():
        raise ProtocolError(f"run id {run_id[:MAX_RUN_ID_LENGTH]!r} is not a run id")
    return run_id


# ---------------------------------------------------------------------------------------- model


def model_header_to_proto(header: ModelHeader, payload_bytes: int) -> pb.ModelHeader:
    scaler = None
    if header.scaler is not None:
        scaler = pb.Scaler(mean=list(header.scaler.mean), scale=list(header.scaler.scale))
    return pb.ModelHeader(
        **_field_values(
            header,
            kind=_KIND[0][header.kind],
            scaler=scaler,
            outcome=_OUTCOME[0][header.outcome] if header.outcome is not None else 0,
            payload_bytes=payload_bytes,
        )
    )


def model_header_from_proto(msg: pb.ModelHeader) -> ModelHeader:
    scaler = None
    if msg.HasField("scaler"):
        if len(msg.scaler.mean) != len(msg.scaler.scale):
            raise ProtocolError("model header: scaler has different numbers of means and scales")
        scaler = Scaler(tuple(msg.scaler.mean), tuple(msg.scaler.scale))
    outcome = None
    if msg.finished:
        outcome = _decode_enum(_OUTCOME, msg.outcome, "model header field 'outcome'")
    return _from_proto(
        ModelHeader,
        msg,
        kind=(
            _decode_enum(_KIND, msg.kind, "model header field 'kind'")
            if not (msg.finished or msg.pending)
            else "train"
        ),
        scaler=scaler,
        outcome=outcome,
    )


def model_to_chunks(model: GlobalModel, chunk_bytes: int = CHUNK_BYTES) -> Iterator[pb.ModelChunk]:
    yield pb.ModelChunk(header=model_header_to_proto(model.header, len(model.payload)))
    for data in _split(model.payload, chunk_bytes):
        yield pb.ModelChunk(data=data)


def serialized_model_data(payload: bytes, chunk_bytes: int = CHUNK_BYTES) -> tuple[bytes, ...]:
    """The data messages of a model stream (after its header), serialized once.

    Every member of a round downloads the same payload; the PS serializes its data messages once
    per published model and sends these bytes to each member (see
    :func:`homolr.protocol.service.add_servicer`), instead of copying the payload into a message
    and serializing it again for every member at the round's start.
    """
    return tuple(
        pb.ModelChunk(data=data).SerializeToString() for data in _split(payload, chunk_bytes)
    )


def model_from_chunks(
    chunks: Iterable[pb.ModelChunk], max_payload_bytes: int = MAX_PAYLOAD_BYTES
) -> GlobalModel:
    """Reassemble a model stream; a payload announced above ``max_payload_bytes`` is refused
    before any of it is read."""
    first, payload = _join_chunks(chunks, "model", max_payload_bytes)
    return GlobalModel(header=model_header_from_proto(first.header), payload=payload)


# --------------------------------------------------------------------------------------- update


def update_header_to_proto(header: UpdateHeader, payload_bytes: int) -> pb.UpdateHeader:
    return pb.UpdateHeader(**_field_values(header, payload_bytes=payload_bytes))


def update_header_from_proto(msg: pb.UpdateHeader) -> tuple[UpdateHeader, int]:
    """The header and the payload size it announces."""
    header = _from_proto(
        UpdateHeader,
        msg,
        worker_id=check_worker_id(msg.worker_id),
        run_id=check_run_id(msg.run_id),
    )
    return header, int(msg.payload_bytes)


def update_to_chunks(update: Update, chunk_bytes: int) -> Iterator[pb.UpdateChunk]:
    """The header message, then the payload in messages of ``chunk_bytes`` (the last may be
    shorter); ``chunk_bytes`` is the plan's ``chunk_ciphertexts`` x the ciphertext width."""
    header = update_header_to_proto(update.header, len(update.payload))
    yield pb.UpdateChunk(header=header)
    for data in _split(update.payload, chunk_bytes):
        yield pb.UpdateChunk(data=data)


def update_from_chunks(
    chunks: Iterable[pb.UpdateChunk], max_payload_bytes: int = MAX_PAYLOAD_BYTES
) -> Update:
    """Reassemble a whole update stream (tests and tools; the PS folds it chunk by chunk)."""
    first, payload = _join_chunks(chunks, "update", max_payload_bytes)
    header, _ = update_header_from_proto(first.header)
    return Update(header=header, payload=payload)


# -------------------------------------------------------------------------------------- helpers


def _field_values(obj: Any, **overrides: Any) -> dict[str, Any]:
    """The dataclass's fields by name, one level deep (protobuf messages use the same names);
    ``overrides`` replace the fields that need converting."""
    return {**{f.name: getattr(obj, f.name) for f in fields(obj)}, **overrides}


def _from_proto(cls: type[_T], msg: Any, **overrides: Any) -> _T:
    """Build dataclass ``cls`` from its protobuf twin; ``overrides`` replace converted fields."""
    values = {f.name: getattr(msg, f.name) for f in fields(cls) if f.name not in overrides}  # type: ignore[arg-type]
    return cls(**values, **overrides)


def _split(payload: bytes, chunk_bytes: int) -> Iterator[bytes]:
    view = memoryview(payload)
    for start in range(0, len(payload), chunk_bytes):
        yield bytes(view[start : start + chunk_bytes])


_Chunk = TypeVar("_Chunk", pb.ModelChunk, pb.UpdateChunk)


def _join_chunks(
    chunks: Iterable[_Chunk], what: str, max_payload_bytes: int
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
    "WORKER_ID_PATTERN",
    "check_run_id",
    "check_worker_id",
    "join_request_from_proto",
    "join_request_to_proto",
    "model_from_chunks",
    "model_header_from_proto",
    "model_header_to_proto",
    "model_to_chunks",
    "plan_from_proto",
    "plan_to_proto",
    "serialized_model_data",
    "server_info_from_proto",
    "server_info_to_proto",
    "update_from_chunks",
    "update_header_from_proto",
    "update_header_to_proto",
    "update_to_chunks",
]
