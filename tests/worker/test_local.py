"""A member's local step equals the plaintext step it encrypts, scaled by its weight share, at the
schedule step the PS names; and it checks what the PS sends."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from homolr.crypto import EncryptedVector, generate_keypair
from homolr.errors import ConfigError, ProtocolError
from homolr.learning import Dataset, add_bias, learning_rate, sgd_epochs, taylor_gradient
from homolr.protocol.messages import GlobalModel, ModelHeader, TrainingPlan
from homolr.worker.local import (
    AggregateLocalStep,
    EncryptedLocalStep,
    make_local_step,
    moments_update,
)

PK, SK = generate_keypair(1024, insecure_small_key=True)
RNG = np.random.default_rng(0)
DATA = Dataset(
    RNG.normal(size=(25, 4)), RNG.integers(0, 2, 25), None, ("a", "b", "c", "d"), "synthetic"
)
W = np.array([0.5, -1.0, 0.25, 2.0, -0.75])


def _plan(**changes: Any) -> TrainingPlan:
    values: dict[str, Any] = {"n_features": 4, "learning_rate": 0.2, "schedule": "invsqrt"}
    return TrainingPlan(**{**values, **changes}).validate()


def _model(w: np.ndarray, round_: int = 3, step: int = 3, weight: float = 1.0) -> GlobalModel:
    enc = EncryptedVector.encrypt(PK, w, frac_bits=24)
    header = ModelHeader(
        round=round_, step=step, encrypted=True, length=len(w), frac_bits=24, weight=weight
    )
    return GlobalModel(header, enc.to_bytes())


def _plain(w: np.ndarray, round_: int = 3, step: int = 3, weight: float = 1.0) -> GlobalModel:
    header = ModelHeader(round=round_, step=step, encrypted=False, length=len(w), weight=weight)
    return GlobalModel(header, w.astype("<f8").tobytes())


def _reference(w: np.ndarray, step: int, plan: TrainingPlan) -> np.ndarray:
    lr = learning_rate(plan.schedule, plan.learning_rate, step)
    return w - lr * taylor_gradient(w, add_bias(DATA.X), DATA.y, plan.alpha)


@pytest.mark.parametrize("weight", [1.0, 25 / 60, 1e-3])
def test_encrypted_step_decrypts_to_the_weighted_reference_step(weight: float) -> None:
    plan = _plan(weighting="samples" if weight != 1.0 else "equal")
    packed = EncryptedLocalStep(DATA, plan, PK).update(_model(W, step=3, weight=weight))
    got = SK.decrypt_packed(packed)
    np.testing.assert_allclose(got, weight * _reference(W, 3, plan), atol=1e-5)
    assert packed.frac_bits == plan.update_frac_bits
    assert len(packed.ciphertexts) == 1  # five 74-bit slots fit one 1024-bit plaintext


def test_the_schedule_follows_the_step_not_the_round() -> None:
    # A re-run round keeps its step: round 9 at step 3 is the same computation as round 3.
    plan = _plan()
    step = EncryptedLocalStep(DATA, plan, PK)
    rerun = SK.decrypt_packed(step.update(_model(W, round_=9, step=3)))
    np.testing.assert_allclose(rerun, _reference(W, 3, plan), atol=1e-5)
    later = SK.decrypt_packed(step.update(_model(W, round_=3, step=8)))
    np.testing.assert_allclose(later, _reference(W, 8, plan), atol=1e-5)
    assert not np.allclose(_reference(W, 3, plan), _reference(W, 8, plan), atol=1e-3)


def test_aggregate_step_uploads_the_weighted_delta_of_local_sgd() -> None:
    plan = _plan(mode="aggregate", batch_size=8, local_epochs=2, seed=5)
    step = AggregateLocalStep(DATA, plan, PK, "guest")
    local = step.local_weights(_plain(W, step=4))
    assert local.shape == W.shape and np.all(np.isfinite(local)) and not np.allclose(local, W)
    got = SK.decrypt_packed(step.update(_plain(W, step=4, weight=0.25)))
    np.testing.assert_allclose(got, 0.25 * (local - W), atol=1e-6)
    # the shuffle is seeded by (plan seed, step, member), not by the round
    again = AggregateLocalStep(DATA, plan, PK, "guest").local_weights(_plain(W, round_=11, step=4))
    np.testing.assert_array_equal(again, local)  # a retried step reproduces the contribution
    other = AggregateLocalStep(DATA, plan, PK, "host").local_weights(_plain(W, step=4))
    assert not np.array_equal(other, local)  # each member shuffles differently


def test_aggregate_step_matches_sgd_epochs_from_the_library() -> None:
    plan = _plan(mode="aggregate", batch_size=0, local_epochs=1)
    local = AggregateLocalStep(DATA, plan, PK, "guest").local_weights(_plain(W, step=2))
    lr = learning_rate(plan.schedule, plan.learning_rate, 2)
    # full batch: the shuffle does not matter, so any rng gives the same result
    expected = sgd_epochs(
        W,
        add_bias(DATA.X),
        DATA.y,
        lr=lr,
        alpha=plan.alpha,
        batch_size=0,
        epochs=1,
        rng=np.random.default_rng(123),
    )
    np.testing.assert_allclose(local, expected, atol=1e-12)


def test_moments_update_decrypts_to_rows_sums_and_sums_of_squares() -> None:
    bounds = tuple(float(b) for b in 2 * np.max(np.abs(DATA.X), axis=0))
    plan = _plan(standardize=True, feature_bounds=bounds, expected_workers=2)
    got = SK.decrypt_packed(moments_update(DATA, plan, PK))
    scaled = DATA.X * np.ldexp(1.0, -np.asarray(plan.moments_plan.exponents))  # exact pre-scaling
    expected = np.concatenate([[25.0], scaled.sum(axis=0), (scaled * scaled).sum(axis=0)])
    assert got.shape == (plan.moments_length,)
    np.testing.assert_allclose(got, expected, atol=1e-7)
    scaler = plan.moments_plan.scaler(got, contributions=1)
    np.testing.assert_allclose(scaler.mean, DATA.X.mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(scaler.scale, DATA.X.std(axis=0), rtol=1e-6)


def test_encrypted_step_refuses_a_plaintext_or_misshapen_model() -> None:
    step = make_local_step(DATA, _plan(), PK, "w")
    plain = GlobalModel(ModelHeader(round=0, encrypted=False, length=5), np.zeros(5).tobytes())
    with pytest.raises(ProtocolError, match="sent a plaintext model"):
        step.update(plain)
    with pytest.raises(ProtocolError, match="model has 4 weights; the plan has 5"):
        step.update(GlobalModel(ModelHeader(round=0, encrypted=True, length=4, frac_bits=24), b""))
    with pytest.raises(ProtocolError, match="scale is 20 fractional bits"):
        step.update(GlobalModel(ModelHeader(round=0, encrypted=True, length=5, frac_bits=20), b""))


@pytest.mark.parametrize("weight", [0.0, -0.5, 1.5, float("nan"), float("inf")])
def test_a_weight_share_outside_zero_one_is_refused(weight: float) -> None:
    for mode, model in (
        ("encrypted", _model(W, weight=weight)),
        ("aggregate", _plain(W, weight=weight)),
    ):
        step = make_local_step(DATA, _plan(mode=mode), PK, "w")
        with pytest.raises(ProtocolError, match=r"weight share .* is not in \(0, 1\]"):
            step.update(model)


def test_a_step_beyond_the_plan_is_refused() -> None:
    plan = _plan(iterations=10)
    step = make_local_step(DATA, plan, PK, "w")
    with pytest.raises(ProtocolError, match="step 10 is beyond the plan's 10 iterations"):
        step.update(_model(W, step=10))
    step.update(_model(W, step=9))


def test_aggregate_step_refuses_non_finite_weights() -> None:
    step = make_local_step(DATA, _plan(mode="aggregate"), PK, "w")
    bad = np.array([0.0, np.nan, 0.0, 0.0, 0.0])
    with pytest.raises(ProtocolError, match="non-finite"):
        step.update(GlobalModel(ModelHeader(round=0, encrypted=False, length=5), bad.tobytes()))
    with pytest.raises(ProtocolError, match="39 bytes; expected 40"):
        step.update(GlobalModel(ModelHeader(round=0, encrypted=False, length=5), bytes(39)))


_DP = {"dp_noise_multiplier": 1.0, "dp_delta": 1e-5, "key_bits": 1024}


def test_member_level_privacy_clips_the_update_at_the_member() -> None:
    plan = _plan(
        mode="aggregate",
        privacy_level="member",
        dp_clip=0.05,
        batch_size=5,
        local_epochs=3,
        learning_rate=1.0,
        **_DP,
    )
    step = AggregateLocalStep(DATA, plan, PK, "w")
    model = _plain(np.zeros(5))
    unclipped = step.local_weights(model)
    assert np.linalg.norm(unclipped) > 0.05  # the local training moved further than the clip
    sent = SK.decrypt_packed(step.update(model))
    assert np.linalg.norm(sent) <= 0.05  # what leaves the member is clipped, on the grid
    direction = unclipped / np.linalg.norm(unclipped)
    np.testing.assert_allclose(sent / np.linalg.norm(sent), direction, atol=1e-4)


def test_record_level_privacy_bounds_rows_and_refuses_too_few(tmp_path: Any) -> None:
    plan = _plan(privacy_level="record", dp_clip=1.5, dp_model_bound=2.0, dp_min_samples=20, **_DP)
    step = EncryptedLocalStep(DATA, plan, PK)
    got = SK.decrypt_packed(step.update(_model(W, step=0)))
    from homolr.privacy import clip_rows

    clipped = Dataset(clip_rows(DATA.X, 1.5), DATA.y, None, DATA.feature_names, "clipped")
    lr = learning_rate(plan.schedule, plan.learning_rate, 0)
    expected = W - lr * taylor_gradient(W, add_bias(clipped.X), clipped.y, plan.alpha)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert np.all(np.linalg.norm(add_bias(clipped.X), axis=1) <= 1.5 + 1e-12)
    small = Dataset(DATA.X[:10], DATA.y[:10], None, DATA.feature_names, "small.csv")
    with pytest.raises(ConfigError, match=r"small.csv has 10 rows; .* min_samples = 20"):
        EncryptedLocalStep(small, plan, PK)
