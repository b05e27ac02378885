"""Round trips and malformed streams of the protobuf serde."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from homolr.errors import ConfigError, ProtocolError
from homolr.protocol import serde
from homolr.protocol.homolr_pb2 import ModelChunk, UpdateChunk
from homolr.protocol.homolr_pb2 import ModelHeader as PbModelHeader
from homolr.protocol.messages import (
    GlobalModel,
    JoinRequest,
    ModelHeader,
    ServerInfo,
    TrainingPlan,
    Update,
    UpdateHeader,
)


def _plan(**changes: object) -> TrainingPlan:
    base = dict(n_features=30, feature_names=tuple(f"x{i}" for i in range(30)))
    base.update(changes)
    return TrainingPlan(**base).validate()  # type: ignore[arg-type]


def test_plan_round_trip_keeps_every_field() -> None:
    plan = _plan(
        mode="aggregate",
        weighting="samples",
        learning_rate=0.3,
        tolerance=1e-5,
        seed=7,
        batch_size=16,
        local_epochs=3,
        iterations=12,
        init_weight=1.0,
    )
    assert serde.plan_from_proto(serde.plan_to_proto(plan)) == plan


def test_server_info_round_trip() -> None:
    info = ServerInfo("homolr.v1", "run1", b"pk", _plan(), "dcap", b"quote", b"cert")
    assert serde.server_info_from_proto(serde.server_info_to_proto(info)) == info


def test_unknown_mode_on_the_wire_is_a_protocol_error() -> None:
    msg = serde.plan_to_proto(_plan())
    msg.mode = 0
    with pytest.raises(ProtocolError, match="unknown mode"):
        serde.plan_from_proto(msg)


@pytest.mark.parametrize(
    "size", [0, 1, serde.CHUNK_BYTES - 1, serde.CHUNK_BYTES, 3 * serde.CHUNK_BYTES + 5]
)
def test_model_chunks_round_trip(size: int) -> None:
    model = GlobalModel(
        ModelHeader(round=4, encrypted=True, length=7, frac_bits=24),
        bytes(range(256)) * (size // 256) + b"x" * (size % 256),
    )
    chunks = list(serde.model_to_chunks(model))
    assert all(len(c.data) <= serde.CHUNK_BYTES for c in chunks[1:])
    assert serde.model_from_chunks(chunks) == model


def test_update_chunks_round_trip() -> None:
    update = Update(UpdateHeader("w1", "run", 3, 31, 48, 64, 10, 2), b"\x01" * 1024)
    assert serde.update_from_chunks(serde.update_to_chunks(update, chunk_bytes=100)) == update


def test_stream_without_header_is_refused() -> None:
    with pytest.raises(ProtocolError, match="must start with a header"):
        serde.model_from_chunks([ModelChunk(data=b"abc")])
    with pytest.raises(ProtocolError, match="must start with a header"):
        serde.update_from_chunks([])


def test_payload_size_mismatch_is_refused() -> None:
    header = ModelChunk(header=PbModelHeader(round=1, payload_bytes=10))
    with pytest.raises(ProtocolError, match="announced 10"):
        serde.model_from_chunks([header, ModelChunk(data=b"x" * 11)])
    with pytest.raises(ProtocolError, match="has 3 bytes; header announced 10"):
        serde.model_from_chunks([header, ModelChunk(data=b"abc")])


def test_second_header_is_refused() -> None:
    chunks = list(serde.update_to_chunks(Update(UpdateHeader("w1", "r", 0, 1, 1, 1, 1, 1), b"ab")))
    with pytest.raises(ProtocolError, match="second header"):
        serde.update_from_chunks([chunks[0], chunks[0]])


@pytest.mark.parametrize("bad", ["", "x" * 129, "bad\nid"])
def test_bad_worker_ids_are_refused(bad: str) -> None:
    msg = serde.join_request_to_proto(JoinRequest(bad, "r", 30, 10))
    with pytest.raises(ProtocolError, match="worker id"):
        serde.join_request_from_proto(msg)
    update = UpdateChunk()
    update.header.worker_id = bad
    with pytest.raises(ProtocolError, match="worker id"):
        serde.update_from_chunks([update])


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("min_workers", 1),
        ("iterations", 0),
        ("mode", "plain"),
        ("learning_rate", float("nan")),
        ("expected_workers", 1),
        ("schedule", "cosine"),
        ("frac_bits", 4),
    ],
)
def test_plan_validation_names_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"'{field}'"):
        _plan(**{field: value})


def test_an_oversized_announced_payload_is_refused_before_reading_it() -> None:
    def chunks() -> Iterator[UpdateChunk]:
        yield from serde.update_to_chunks(
            Update(UpdateHeader("w1", "r", 0, 1, 1, 1, 1, 1), b"x" * 100)
        )
        raise AssertionError("the data must not be read")

    with pytest.raises(ProtocolError, match="exceeds the limit of 64"):
        serde.update_from_chunks(chunks(), max_payload_bytes=64)
