"""Round trips and malformed streams of the protobuf serde."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields
from typing import get_args

import pytest

from homolr.errors import ConfigError, ProtocolError
from homolr.protocol import serde
from homolr.protocol.homolr_pb2 import ModelChunk, UpdateChunk
from homolr.protocol.homolr_pb2 import ModelHeader as PbModelHeader
from homolr.protocol.messages import (
    PROTOCOL_VERSION,
    GlobalModel,
    JoinRequest,
    ModelHeader,
    Outcome,
    Scaler,
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
    info = ServerInfo(PROTOCOL_VERSION, "run1", b"pk", _plan(), "dcap", b"quote", b"cert", b"{}")
    assert serde.server_info_from_proto(serde.server_info_to_proto(info)) == info


def test_unknown_mode_on_the_wire_is_a_protocol_error() -> None:
    msg = serde.plan_to_proto(_plan())
    msg.mode = 0  # type: ignore[assignment]
    with pytest.raises(ProtocolError, match="field 'mode' has unknown value 0"):
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


@pytest.mark.parametrize("size", [0, 1, serde.CHUNK_BYTES, 2 * serde.CHUNK_BYTES + 3])
def test_serialized_model_data_is_the_data_messages_of_the_stream(size: int) -> None:
    """What the PS sends every member (serialized once) parses to the data messages
    model_to_chunks makes, and reassembles to the model behind each member's own header."""
    payload = bytes(range(251)) * (size // 251) + b"y" * (size % 251)
    model = GlobalModel(ModelHeader(round=2, length=9, frac_bits=24, weight=0.25), payload)
    data = serde.serialized_model_data(payload)
    chunks = list(serde.model_to_chunks(model))
    assert [ModelChunk.FromString(d) for d in data] == chunks[1:]
    assert serde.model_from_chunks([chunks[0], *map(ModelChunk.FromString, data)]) == model


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
    update = Update(UpdateHeader("w1", "r", 0, 1, 1, 1, 1, 1), b"ab")
    chunks = list(serde.update_to_chunks(update, chunk_bytes=1))
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
            Update(UpdateHeader("w1", "r", 0, 1, 1, 1, 1, 1), b"x" * 100), chunk_bytes=10
        )
        raise AssertionError("the data must not be read")

    with pytest.raises(ProtocolError, match="exceeds the limit of 64"):
        serde.update_from_chunks(chunks(), max_payload_bytes=64)


# --- protocol v2: every plan field, rounds with steps and kinds, weight shares, outcomes --------

#: A plan in which every field differs from its default, so a field dropped by serde shows.
EVERY_FIELD = dict(
    mode="encrypted",
    iterations=12,
    learning_rate=0.3,
    schedule="constant",
    alpha=0.5,
    init_weight=1.0,
    eval_every=3,
    min_workers=3,
    expected_workers=4,
    round_timeout_s=7.5,
    weighting="equal",
    frac_bits=20,
    value_bits=64,
    headroom_bits=12,
    batch_size=16,
    local_epochs=3,
    tolerance=1e-5,
    n_features=3,
    feature_names=("a", "b", "c"),
    seed=7,
    participation="quorum",
    first_round_timeout_s=99.0,
    key_bits=1024,
    chunk_ciphertexts=17,
    privacy_level="record",
    dp_clip=1.5,
    dp_noise_multiplier=0.8,
    dp_epsilon=2.0,
    dp_delta=1e-6,
    dp_model_bound=4.0,
    dp_min_samples=50,
)


def test_plan_round_trip_keeps_every_v2_field() -> None:
    plan = TrainingPlan(**EVERY_FIELD).validate()  # type: ignore[arg-type]
    default = TrainingPlan()
    unchanged = [
        f.name for f in fields(TrainingPlan) if getattr(plan, f.name) == getattr(default, f.name)
    ]
    # value_bits has one allowed value; record-level privacy needs the default mode (the
    # aggregate mode's round trip is the test above), equal weighting and no standardisation
    # (the standardising plan's round trip is the test below).
    assert unchanged == ["mode", "weighting", "value_bits", "standardize", "feature_bounds"]
    assert serde.plan_from_proto(serde.plan_to_proto(plan)) == plan


def test_standardising_plan_round_trip_keeps_the_bounds() -> None:
    plan = TrainingPlan(
        n_features=3, standardize=True, feature_bounds=(4096.0, 0.5, 1e-3)
    ).validate()
    assert serde.plan_from_proto(serde.plan_to_proto(plan)) == plan


@pytest.mark.parametrize(
    ("field", "value"),
    [("weighting", 9), ("participation", 0), ("participation", 3), ("privacy_level", 7)],
)
def test_unknown_plan_enum_values_are_protocol_errors(field: str, value: int) -> None:
    msg = serde.plan_to_proto(_plan())
    setattr(msg, field, value)
    with pytest.raises(ProtocolError, match=f"field '{field}' has unknown value {value}"):
        serde.plan_from_proto(msg)


def test_join_request_round_trip_carries_the_protocol_version() -> None:
    request = JoinRequest("guest", "run-7", 30, 569, protocol_version="homolr.v9")
    msg = serde.join_request_to_proto(request)
    assert msg.protocol_version == "homolr.v9"
    assert serde.join_request_from_proto(msg) == request
    assert JoinRequest("guest", "r", 1, 1).protocol_version == PROTOCOL_VERSION


def _header_round_trip(header: ModelHeader) -> ModelHeader:
    return serde.model_header_from_proto(serde.model_header_to_proto(header, 0))


def test_model_header_round_trip_with_step_kind_weight_and_scaler() -> None:
    header = ModelHeader(
        round=9,
        step=4,
        kind="train",
        encrypted=True,
        length=31,
        frac_bits=24,
        weight=1 / 3,
        scaler=Scaler((0.5, -1.25), (2.0, 0.125)),
    )
    assert _header_round_trip(header) == header
    moments = ModelHeader(round=0, kind="moments", frac_bits=30, weight=1.0)
    assert _header_round_trip(moments) == moments


def test_the_round_and_the_step_travel_separately() -> None:
    # A re-run round keeps its step: round 12 runs schedule step 5.
    got = _header_round_trip(ModelHeader(round=12, step=5, encrypted=True, length=3))
    assert (got.round, got.step) == (12, 5)


@pytest.mark.parametrize("outcome", get_args(Outcome))
def test_finished_header_tells_how_the_run_ended(outcome: str) -> None:
    header = ModelHeader(round=40, finished=True, reason="done", outcome=outcome)  # type: ignore[arg-type]
    assert _header_round_trip(header) == header


def test_finished_header_without_an_outcome_is_refused() -> None:
    msg = serde.model_header_to_proto(ModelHeader(round=3, finished=True, reason="x"), 0)
    assert msg.outcome == 0
    with pytest.raises(ProtocolError, match="field 'outcome' has unknown value 0"):
        serde.model_header_from_proto(msg)
    msg.outcome = 42  # type: ignore[assignment]
    with pytest.raises(ProtocolError, match="field 'outcome' has unknown value 42"):
        serde.model_header_from_proto(msg)


def test_pending_header_round_trip() -> None:
    header = ModelHeader(round=6, pending=True, reason="no model yet")
    assert _header_round_trip(header) == header


@pytest.mark.parametrize("kind", [0, 3, 99])
def test_unknown_round_kind_is_a_protocol_error(kind: int) -> None:
    msg = serde.model_header_to_proto(ModelHeader(round=2, encrypted=True, length=3), 0)
    msg.kind = kind  # type: ignore[assignment]
    with pytest.raises(ProtocolError, match=f"field 'kind' has unknown value {kind}"):
        serde.model_header_from_proto(msg)


def test_a_scaler_with_unequal_lengths_is_refused() -> None:
    msg = serde.model_header_to_proto(ModelHeader(round=1, scaler=Scaler((0.0, 1.0), (1.0,))), 0)
    with pytest.raises(ProtocolError, match="different numbers of means and scales"):
        serde.model_header_from_proto(msg)


def test_update_stream_has_the_plan_sized_data_messages() -> None:
    update = Update(UpdateHeader("w1", "run", 3, 31, 48, 64, 10, 7), bytes(range(70)))
    chunks = list(serde.update_to_chunks(update, chunk_bytes=20))
    assert chunks[0].header.payload_bytes == 70
    assert [len(c.data) for c in chunks[1:]] == [20, 20, 20, 10]
    assert b"".join(c.data for c in chunks[1:]) == update.payload
