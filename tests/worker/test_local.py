"""A worker's local step equals the plaintext step it encrypts, and checks what the PS sends."""

from __future__ import annotations

import numpy as np
import pytest

from homolr.crypto import EncryptedVector, generate_keypair
from homolr.errors import ProtocolError
from homolr.learning import Dataset, add_bias, learning_rate, taylor_gradient
from homolr.protocol.messages import GlobalModel, ModelHeader, TrainingPlan
from homolr.worker.local import EncryptedLocalStep, make_local_step

PK, SK = generate_keypair(1024, insecure_small_key=True)
RNG = np.random.default_rng(0)
DATA = Dataset(
    RNG.normal(size=(25, 4)), RNG.integers(0, 2, 25), None, ("a", "b", "c", "d"), "synthetic"
)


def _plan(**changes: object) -> TrainingPlan:
    return TrainingPlan(
        **{"n_features": 4, "learning_rate": 0.2, "schedule": "invsqrt", **changes}
    ).validate()  # type: ignore[arg-type]


def _model(w: np.ndarray, round_: int = 3) -> GlobalModel:
    enc = EncryptedVector.encrypt(PK, w, frac_bits=24)
    return GlobalModel(
        ModelHeader(round=round_, encrypted=True, length=len(w), frac_bits=24), enc.to_bytes()
    )


@pytest.mark.parametrize("weighting", ["equal", "samples"])
def test_encrypted_step_decrypts_to_the_reference_step(weighting: str) -> None:
    plan = _plan(weighting=weighting, value_bits=96 if weighting == "samples" else 64)
    w = np.array([0.5, -1.0, 0.25, 2.0, -0.75])
    packed = EncryptedLocalStep(DATA, plan, PK).update(_model(w))
    got = SK.decrypt_packed(packed)
    lr = learning_rate("invsqrt", 0.2, 3)
    expected = w - lr * taylor_gradient(w, add_bias(DATA.X), DATA.y, plan.alpha)
    scale = DATA.n_samples if weighting == "samples" else 1
    np.testing.assert_allclose(got, scale * expected, atol=1e-5 * scale)
    assert len(packed.ciphertexts) == 1  # five 74-bit slots fit one 1024-bit plaintext


def test_encrypted_step_refuses_a_plaintext_or_misshapen_model() -> None:
    step = make_local_step(DATA, _plan(), PK, "w")
    plain = GlobalModel(ModelHeader(round=0, encrypted=False, length=5), np.zeros(5).tobytes())
    with pytest.raises(ProtocolError, match="sent a plaintext model"):
        step.update(plain)
    with pytest.raises(ProtocolError, match="model has 4 weights; the plan has 5"):
        step.update(GlobalModel(ModelHeader(round=0, encrypted=True, length=4, frac_bits=24), b""))
    with pytest.raises(ProtocolError, match="scale is 20 fractional bits"):
        step.update(GlobalModel(ModelHeader(round=0, encrypted=True, length=5, frac_bits=20), b""))


def test_aggregate_step_refuses_non_finite_weights() -> None:
    step = make_local_step(DATA, _plan(mode="aggregate"), PK, "w")
    bad = np.array([0.0, np.nan, 0.0, 0.0, 0.0])
    with pytest.raises(ProtocolError, match="non-finite"):
        step.update(GlobalModel(ModelHeader(round=0, encrypted=False, length=5), bad.tobytes()))
