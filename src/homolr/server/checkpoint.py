"""The PS's sealed checkpoint: everything ``homolr ps --resume`` needs to continue a run.

After every aggregated round the PS writes one JSON document to its sealed directory (atomically:
write, fsync, rename, see :class:`~homolr.enclave.sealing.SealedStore`): the Paillier private key,
the TLS identity (so members' pinned certificate stays valid across a restart), the hash of the
federation file it serves (a key is never used under another file), the run id, the training plan,
the round and step to run next, the global model, the feature scaler and the members that joined. Under Gramine
the directory is an encrypted mount keyed to MRENCLAVE, so only the same enclave can read it back.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from homolr.crypto import PrivateKey
from homolr.enclave.sealing import SealedStore, private_key_from_document, private_key_to_document
from homolr.enclave.tls import ServerIdentity
from homolr.errors import ConfigError, DataError
from homolr.protocol.messages import Scaler, TrainingPlan

CHECKPOINT_NAME = "checkpoint"
FORMAT = "homolr-ps-checkpoint"
VERSION = 2


@dataclass(frozen=True)
class Checkpoint:
    private_key: PrivateKey
    run_id: str
    plan: TrainingPlan
    next_round: int
    step: int
    weights: NDArray[np.float64]
    workers: dict[str, int]
    tls_identity: ServerIdentity | None
    scaler: Scaler | None = None
    federation_hash: bytes = b""


def plan_to_document(plan: TrainingPlan) -> dict[str, Any]:
    doc = dataclasses.asdict(plan)
    doc["feature_names"] = list(plan.feature_names)
    doc["feature_bounds"] = list(plan.feature_bounds)
    return doc


def plan_from_document(doc: dict[str, Any], source: str) -> TrainingPlan:
    try:
        fields = {
            **doc,
            "feature_names": tuple(doc.get("feature_names", ())),
            "feature_bounds": tuple(doc.get("feature_bounds", ())),
        }
        return TrainingPlan(**fields).validate()
    except (TypeError, ConfigError) as exc:
        raise DataError(f"{source}: field 'plan' is not a valid training plan: {exc}") from exc


def checkpoint_to_document(cp: Checkpoint) -> dict[str, Any]:
    identity = None
    if cp.tls_identity is not None:
        identity = {
            "private_key_pem": cp.tls_identity.private_key_pem.decode(),
            "certificate_pem": cp.tls_identity.certificate_pem.decode(),
            "public_key_der": cp.tls_identity.public_key_der.hex(),
        }
    return {
        "format": FORMAT,
        "version": VERSION,
        "private_key": private_key_to_document(cp.private_key),
        "run_id": cp.run_id,
        "plan": plan_to_document(cp.plan),
        "next_round": cp.next_round,
        "step": cp.step,
        "federation_hash": cp.federation_hash.hex(),
        "weights": [float(x) for x in cp.weights],
        "scaler": (
            None
            if cp.scaler is None
            else {"mean": list(cp.scaler.mean), "scale": list(cp.scaler.scale)}
        ),
        "workers": dict(cp.workers),
        "tls_identity": identity,
    }


def checkpoint_from_document(doc: dict[str, Any], source: str) -> Checkpoint:
    def field(name: str, kind: type) -> Any:
        value = doc.get(name)
        if not isinstance(value, kind):
            raise DataError(f"{source}: field '{name}' is missing or not a {kind.__name__}")
        return value

    if doc.get("format") != FORMAT or doc.get("version") != VERSION:
        raise DataError(f"{source}: not a {FORMAT} v{VERSION} document")
    raw_weights = field("weights", list)
    if not all(isinstance(x, int | float) and math.isfinite(x) for x in raw_weights):
        raise DataError(f"{source}: field 'weights' must hold finite numbers")
    weights = np.array(raw_weights, dtype=np.float64)
    workers = field("workers", dict)
    if not all(isinstance(k, str) and isinstance(v, int) for k, v in workers.items()):
        raise DataError(f"{source}: field 'workers' must map worker ids to sample counts")
    identity = _identity_from_document(doc.get("tls_identity"), source)
    scaler = _scaler_from_document(doc.get("scaler"), source)
    return Checkpoint(
        private_key=private_key_from_document(field("private_key", dict)),
        run_id=field("run_id", str),
        plan=plan_from_document(field("plan", dict), source),
        next_round=field("next_round", int),
        step=field("step", int),
        federation_hash=_hex_bytes(field("federation_hash", str), source),
        weights=weights,
        workers=workers,
        tls_identity=identity,
        scaler=scaler,
    )


def _hex_bytes(text: str, source: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise DataError(f"{source}: field 'federation_hash' is not hex") from None


def _scaler_from_document(doc: object, source: str) -> Scaler | None:
    if doc is None:
        return None
    if not isinstance(doc, dict) or set(doc) != {"mean", "scale"}:
        raise DataError(f"{source}: field 'scaler' must hold 'mean' and 'scale'")
    mean, scale = doc["mean"], doc["scale"]
    numbers = [*mean, *scale] if isinstance(mean, list) and isinstance(scale, list) else [None]
    if len(mean) != len(scale) or not all(
        isinstance(x, int | float) and math.isfinite(x) for x in numbers
    ):
        raise DataError(f"{source}: field 'scaler' must hold two lists of finite numbers")
    return Scaler(tuple(float(x) for x in mean), tuple(float(x) for x in scale))


def _identity_from_document(doc: object, source: str) -> ServerIdentity | None:
    if doc is None:
        return None
    try:
        assert isinstance(doc, dict)
        return ServerIdentity(
            doc["private_key_pem"].encode(),
            doc["certificate_pem"].encode(),
            bytes.fromhex(doc["public_key_der"]),
        )
    except (AssertionError, KeyError, AttributeError, ValueError):
        raise DataError(f"{source}: field 'tls_identity' is malformed") from None


def save_checkpoint(store: SealedStore, checkpoint: Checkpoint) -> None:
    store.save(CHECKPOINT_NAME, checkpoint_to_document(checkpoint))


def load_checkpoint(store: SealedStore) -> Checkpoint | None:
    doc = store.load(CHECKPOINT_NAME)
    if doc is None:
        return None
    return checkpoint_from_document(doc, str(store.path_for(CHECKPOINT_NAME)))


def check_same_plan(saved: TrainingPlan, current: TrainingPlan) -> None:
    """Refuse to resume under a plan other than the checkpoint's, naming the fields that differ."""
    differ = [
        f.name
        for f in dataclasses.fields(TrainingPlan)
        if getattr(saved, f.name) != getattr(current, f.name)
    ]
    if differ:
        details = ", ".join(
            f"{n}: {getattr(saved, n)!r} -> {getattr(current, n)!r}" for n in differ
        )
        raise ConfigError(
            f"cannot resume: the options change the checkpoint's training plan ({details})"
        )


__all__ = [
    "CHECKPOINT_NAME",
    "Checkpoint",
    "check_same_plan",
    "checkpoint_from_document",
    "checkpoint_to_document",
    "load_checkpoint",
    "save_checkpoint",
]
