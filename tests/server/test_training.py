"""The training loop without a network: member coroutines act on the run state directly."""

from __future__ import annotations

import asyncio
import io
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from homolr.crypto import generate_keypair
from homolr.enclave.keyholder import KeyHolder, ParticipationRule
from homolr.errors import RunPausedError, TrainingFailedError
from homolr.learning import Dataset, add_bias, format_eval_line, replay_reference, train_taylor
from homolr.protocol.messages import GlobalModel, TrainingPlan
from homolr.server.clock import AwakeClock
from homolr.server.reporting import Reporter
from homolr.server.state import OpenMembership, RunState
from homolr.server.training import Trainer, TrainingOutcome, Validation, WireCounter
from homolr.worker.local import make_local_step

KEYS = generate_keypair(1024, insecure_small_key=True)


def _data(seed: int, rows: int) -> Dataset:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 3))
    y = (X @ np.array([1.0, -2.0, 0.5]) + rng.normal(scale=0.5, size=rows) > 0).astype(np.int64)
    return Dataset(X, y, None, ("a", "b", "c"), f"synthetic-{seed}")


def _plan(**fields: object) -> TrainingPlan:
    base = {"n_features": 3, "key_bits": 1024, "first_round_timeout_s": 30.0}
    return TrainingPlan(**{**base, **fields}).validate()  # type: ignore[arg-type]


async def _next_model(state: RunState, member: str, wanted: int) -> GlobalModel:
    while True:
        model = state.model_for(member, wanted, have_scaler=True)
        if model is not None:
            return model
        await state.changed.wait(1.0)


async def _member(
    state: RunState,
    plan: TrainingPlan,
    data: Dataset,
    member: str,
    *,
    stop_after: int | None = None,
    corrupt_round: int | None = None,
    corrupt_from: int | None = None,
) -> None:
    """What the servicer does for one member: fetch, compute, fold every chunk, mark submitted."""
    step = make_local_step(data, plan, KEYS[0], member)
    state.join(member, data.n_features, data.n_samples)
    wanted = 0
    while True:
        model = await _next_model(state, member, wanted)
        if model.header.finished:
            return
        if stop_after is not None and model.header.round >= stop_after:
            return
        state.mark_fetched(member, model.header.round)
        payload = step.update(model).to_bytes()
        corrupt = model.header.round == corrupt_round or (
            corrupt_from is not None and model.header.round >= corrupt_from
        )
        if corrupt:  # a member sending an out-of-range sum
            wide = KEYS[0].raw_encrypt(1 << (KEYS[0].n_bits - 2))  # beyond the packed slots
            payload = int(wide).to_bytes(len(payload), "big")
        round_sum = state.round_sum
        assert round_sum is not None
        width = KEYS[0].ciphertext_bytes * plan.chunk_ciphertexts
        for chunk in range(round_sum.layout.n_chunks):
            round_sum.fold(member, chunk, payload[chunk * width : (chunk + 1) * width])
        state.submitted.add(member)
        state.changed.notify()
        wanted = model.header.round + 1


def _run(
    plan: TrainingPlan,
    datasets: list[Dataset],
    validation: Dataset,
    tmp_path: Path,
    **member_options: dict[int, int],
) -> tuple[str, TrainingOutcome]:
    out = io.StringIO()

    async def main() -> TrainingOutcome:
        state = RunState(plan, OpenMembership(plan.expected_workers))
        reporter = Reporter(plan.iterations, tmp_path, stdout=out)
        clock = AwakeClock()
        clock.start()
        rule = ParticipationRule("quorum", None, plan.required_members)
        with ThreadPoolExecutor(2) as executor, ThreadPoolExecutor(1) as idle:
            trainer = Trainer(
                plan,
                KeyHolder(KEYS[1], rule),
                Validation(add_bias(validation.X), validation.y),
                state,
                reporter,
                clock=clock,
                executor=executor,
                idle=idle,
                wire=WireCounter(),
                join_timeout_s=10,
                run_id="run",
            )
            members = [
                asyncio.create_task(
                    _member(
                        state,
                        plan,
                        d,
                        f"w{i}",
                        **{k: v[i] for k, v in member_options.items() if i in v},
                    )
                )
                for i, d in enumerate(datasets)
            ]
            try:
                return await trainer.run()
            finally:
                reporter.close()
                for task in members:
                    task.cancel()
                await clock.stop()

    outcome = asyncio.run(main())
    return out.getvalue(), outcome


def test_encrypted_rounds_reproduce_the_plaintext_replay(tmp_path: Path) -> None:
    a, b, val = _data(1, 40), _data(2, 50), _data(3, 30)
    plan = _plan(
        iterations=12,
        learning_rate=0.15,
        schedule="invsqrt",
        alpha=0.01,
        init_weight=1.0,
        eval_every=3,
        weighting="equal",
    )
    printed, outcome = _run(plan, [a, b], val, tmp_path)
    replay = replay_reference([a, b], val, iters=12, eval_every=1)
    expected = [format_eval_line(i, m) for i, m in replay if i % 3 == 0 or i == 11]
    assert printed.splitlines() == expected
    assert outcome.steps == 12 and outcome.outcome == "completed"
    metrics = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(metrics) == len(expected) and all('"run_id": "run"' in line for line in metrics)


def test_sample_weight_shares_give_the_weighted_average(tmp_path: Path) -> None:
    a, b, val = _data(1, 20), _data(2, 60), _data(3, 30)
    plan = _plan(iterations=6, learning_rate=0.15, init_weight=1.0, weighting="samples")
    _, outcome = _run(plan, [a, b], val, tmp_path)
    kwargs = {"iters": 6, "lr0": 0.15, "schedule": "invsqrt", "alpha": 0.01, "init_weight": 1.0}
    weighted = train_taylor([a, b], weighting="samples", **kwargs)  # type: ignore[arg-type]
    equal = train_taylor([a, b], weighting="equal", **kwargs)  # type: ignore[arg-type]
    np.testing.assert_allclose(outcome.weights, weighted.w, atol=1e-6)
    assert np.max(np.abs(weighted.w - equal.w)) > 1e-3  # the shares mattered


def test_tolerance_stops_training_when_the_model_settles(tmp_path: Path) -> None:
    plan = _plan(
        iterations=500, learning_rate=0.5, schedule="constant", eval_every=50, tolerance=1e-3
    )
    _, outcome = _run(plan, [_data(1, 40), _data(2, 50)], _data(3, 30), tmp_path)
    assert outcome.steps < 500 and "converged" in outcome.reason


def test_a_missing_member_pauses_an_all_run_without_releasing_the_round(tmp_path: Path) -> None:
    plan = _plan(iterations=50, eval_every=1, round_timeout_s=0.5)
    with pytest.raises(RunPausedError, match="round 4: no complete update from w1"):
        _run(plan, [_data(1, 40), _data(2, 50)], _data(3, 30), tmp_path, stop_after={1: 4})
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 4


def test_quorum_goes_on_without_a_member_that_missed_a_round(tmp_path: Path) -> None:
    plan = _plan(
        iterations=8,
        eval_every=1,
        round_timeout_s=0.5,
        expected_workers=3,
        min_workers=2,
        participation="quorum",
    )
    data = [_data(1, 40), _data(2, 50), _data(4, 45)]
    _, outcome = _run(plan, data, _data(3, 30), tmp_path, stop_after={2: 3})
    assert outcome.steps == 8 and outcome.outcome == "completed"


def test_an_overflowing_sum_discards_the_round_and_keeps_the_step(tmp_path: Path) -> None:
    plan = _plan(iterations=5, learning_rate=0.15, init_weight=1.0, eval_every=1)
    a, b, val = _data(1, 40), _data(2, 50), _data(3, 30)
    printed, outcome = _run(plan, [a, b], val, tmp_path, corrupt_round={1: 2})
    replay = replay_reference([a, b], val, iters=5, eval_every=1)
    # round 2 was discarded; step 2 ran again in round 3: the printed lines are the clean run's
    assert printed.splitlines() == [format_eval_line(i, m) for i, m in replay]
    assert outcome.steps == 5


def test_repeated_overflow_fails_the_run(tmp_path: Path) -> None:
    plan = _plan(iterations=5, eval_every=1)
    a, b, val = _data(1, 40), _data(2, 50), _data(3, 30)
    with pytest.raises(TrainingFailedError, match="3 consecutive rounds were discarded") as failed:
        _run(plan, [a, b], val, tmp_path, corrupt_from={1: 1})
    assert "overflowed in slot" in str(failed.value)


def test_aggregate_mode_improves_on_the_initial_model(tmp_path: Path) -> None:
    plan = _plan(
        mode="aggregate",
        iterations=10,
        learning_rate=0.2,
        schedule="constant",
        eval_every=9,
        batch_size=8,
        local_epochs=2,
        weighting="samples",
    )
    printed, outcome = _run(plan, [_data(1, 40), _data(2, 50)], _data(3, 30), tmp_path)
    first, last = printed.splitlines()[0], printed.splitlines()[-1]
    assert float(last.split()[-1]) < float(first.split()[-1])  # loss went down
    assert outcome.final_metrics.accuracy > 0.8


def _private_plan(**fields: object) -> TrainingPlan:
    base = {
        "iterations": 8,
        "learning_rate": 0.3,
        "schedule": "constant",
        "eval_every": 1,
        "privacy_level": "record",
        "dp_clip": 3.0,
        "dp_model_bound": 3.0,
        "dp_min_samples": 30,
        "dp_delta": 1e-5,
        "dp_noise_multiplier": 2.0,
    }
    return _plan(**{**base, **fields})


def test_record_level_privacy_noises_every_release_and_reports_epsilon(tmp_path: Path) -> None:
    from homolr.privacy import epsilon_spent

    a, b, val = _data(1, 40), _data(2, 50), _data(3, 30)
    plan = _private_plan()
    _, noisy = _run(plan, [a, b], val, tmp_path / "noisy")
    _, again = _run(plan, [a, b], val, tmp_path / "again")
    clean_plan = _plan(iterations=8, learning_rate=0.3, schedule="constant", eval_every=1)
    _, clean = _run(clean_plan, [a, b], val, tmp_path / "clean")
    difference = np.linalg.norm(noisy.weights - clean.weights)
    assert difference > 1e-3  # the released models carry noise
    assert np.linalg.norm(noisy.weights) <= 3.0 + 1e-9  # projected onto the model bound
    # the same key, rounds and members give the same noise: a replay learns nothing new
    assert np.array_equal(noisy.weights, again.weights)
    lines = (tmp_path / "noisy" / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(x) for x in lines]
    for k, record in enumerate(records, start=1):
        assert record["epsilon"] == pytest.approx(epsilon_spent(2.0, k, 1e-5), rel=1e-12)


def test_a_fixed_multiplier_stops_when_the_budget_is_spent(tmp_path: Path) -> None:
    from homolr.privacy import epsilon_spent, rounds_within_budget

    plan = _private_plan(iterations=50, dp_epsilon=3.0)
    allowed = rounds_within_budget(2.0, 3.0, 1e-5, 50)
    assert 0 < allowed < 50
    _, outcome = _run(plan, [_data(1, 40), _data(2, 50)], _data(3, 30), tmp_path)
    assert outcome.outcome == "completed" and outcome.steps == allowed
    assert "privacy budget spent" in outcome.reason
    assert epsilon_spent(2.0, outcome.steps, 1e-5) <= 3.0 < epsilon_spent(2.0, allowed + 1, 1e-5)


def test_the_noise_of_a_release_is_keyed_and_labelled_by_round_and_members() -> None:
    rule = ParticipationRule("quorum", None, 2)
    holder, other = KeyHolder(KEYS[1], rule), KeyHolder(KEYS[1], rule)
    ab, ac = frozenset({"a", "b"}), frozenset({"a", "c"})
    assert holder.noise_source(3, 2, ab)(64) == other.noise_source(3, 2, ab)(64)  # replay: same
    assert holder.noise_source(3, 2, ab)(64) != holder.noise_source(4, 2, ab)(64)
    assert holder.noise_source(3, 2, ab)(64) != holder.noise_source(3, 2, ac)(64)
    stranger = KeyHolder(generate_keypair(1024, insecure_small_key=True)[1], rule)
    assert stranger.noise_source(3, 2, ab)(64) != holder.noise_source(3, 2, ab)(64)
