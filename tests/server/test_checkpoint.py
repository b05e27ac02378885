"""The sealed checkpoint round-trips exactly and refuses damaged documents and changed plans."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from homolr.crypto import generate_keypair
from homolr.enclave import SealedStore, generate_server_identity
from homolr.errors import ConfigError, DataError
from homolr.protocol.messages import Scaler, TrainingPlan
from homolr.server.checkpoint import (
    Checkpoint,
    check_same_plan,
    checkpoint_from_document,
    checkpoint_to_document,
    load_checkpoint,
    save_checkpoint,
)


@pytest.fixture(scope="module")
def checkpoint() -> Checkpoint:
    _, sk = generate_keypair(512, insecure_small_key=True)
    plan = TrainingPlan(n_features=3, feature_names=("a", "b", "c")).validate()
    weights = np.array([0.1, -2.5e-7, 3.0, 1 / 3])
    return Checkpoint(
        private_key=sk,
        run_id="run1",
        plan=plan,
        next_round=8,
        step=7,
        weights=weights,
        workers={"guest": 227, "host": 228},
        tls_identity=generate_server_identity(),
        scaler=Scaler((1.0, 2.0, 3.5), (0.5, 1.0, 1 / 3)),
        federation_hash=bytes(range(32)),
    )


def test_round_trip_is_exact(tmp_path: Path, checkpoint: Checkpoint) -> None:
    store = SealedStore(tmp_path)
    assert load_checkpoint(store) is None
    save_checkpoint(store, checkpoint)
    got = load_checkpoint(store)
    assert got is not None
    assert (
        got.private_key.p == checkpoint.private_key.p
        and got.private_key.public_key == checkpoint.private_key.public_key
    )
    assert got.weights.tobytes() == checkpoint.weights.tobytes()  # bit for bit: resume is exact
    assert (got.run_id, got.plan, got.next_round, got.step, got.workers) == (
        "run1",
        checkpoint.plan,
        8,
        7,
        checkpoint.workers,
    )
    assert got.tls_identity == checkpoint.tls_identity
    assert got.scaler == checkpoint.scaler and got.federation_hash == bytes(range(32))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("weights", [1.0, "x"], "'weights' must hold finite numbers"),
        ("weights", None, "'weights'"),
        ("workers", {"a": "many"}, "'workers'"),
        ("plan", {"mode": "nope"}, "'plan'"),
        ("tls_identity", {"private_key_pem": 1}, "'tls_identity'"),
        ("format", "other", "not a homolr-ps-checkpoint"),
        ("version", 1, "not a homolr-ps-checkpoint v2"),
        ("federation_hash", "zz", "'federation_hash' is not hex"),
        ("scaler", {"mean": [1.0], "scale": [float("nan")]}, "'scaler'"),
        ("step", None, "'step'"),
    ],
)
def test_damaged_documents_are_refused_naming_the_field(
    checkpoint: Checkpoint, field: str, value: object, message: str
) -> None:
    doc = checkpoint_to_document(checkpoint)
    doc[field] = value
    with pytest.raises(DataError, match=message):
        checkpoint_from_document(doc, "sealed/checkpoint.json")


def test_resuming_under_another_plan_names_what_changed(checkpoint: Checkpoint) -> None:
    changed = TrainingPlan(
        n_features=3, feature_names=("a", "b", "c"), learning_rate=0.5
    ).validate()
    with pytest.raises(ConfigError, match=r"learning_rate: 0.15 -> 0.5"):
        check_same_plan(checkpoint.plan, changed)
    check_same_plan(checkpoint.plan, checkpoint.plan)
