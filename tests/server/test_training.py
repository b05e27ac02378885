"""The training loop without a network: worker threads talk to the coordinator directly."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import numpy as np

from homolr.crypto import PackedVector, generate_keypair
from homolr.enclave.keyholder import KeyHolder
from homolr.learning import Dataset, format_eval_line, replay_reference
from homolr.protocol.messages import TrainingPlan
from homolr.server.reporting import Reporter
from homolr.server.rounds import RoundCoordinator
from homolr.server.training import Trainer, TrainingOutcome, WireCounter
from homolr.worker.local import make_local_step

KEYS = generate_keypair(1024, insecure_small_key=True)


def _data(seed: int, rows: int) -> Dataset:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 3))
    y = (X @ np.array([1.0, -2.0, 0.5]) + rng.normal(scale=0.5, size=rows) > 0).astype(np.int64)
    return Dataset(X, y, None, ("a", "b", "c"), f"synthetic-{seed}")


def _worker(
    coordinator: RoundCoordinator[PackedVector],
    plan: TrainingPlan,
    data: Dataset,
    wid: str,
    stop_after: int | None = None,
) -> None:
    step = make_local_step(data, plan, KEYS[0], wid)
    coordinator.join(wid, data.n_features, data.n_samples)
    next_round = 0
    while True:
        model = coordinator.wait_model(wid, next_round, timeout=30)
        assert model is not None
        if model.header.finished or (stop_after is not None and model.header.round >= stop_after):
            return
        coordinator.submit(wid, model.header.round, step.update(model))
        next_round = model.header.round + 1


def _run(
    plan: TrainingPlan,
    datasets: list[Dataset],
    validation: Dataset,
    tmp_path: Path,
    stop_after: dict[int, int] | None = None,
) -> tuple[str, TrainingOutcome]:
    coordinator: RoundCoordinator[PackedVector] = RoundCoordinator(
        n_features=plan.n_features, expected_workers=plan.expected_workers
    )
    out = io.StringIO()
    reporter = Reporter(plan.iterations, tmp_path, stdout=out)
    trainer = Trainer(
        plan,
        KeyHolder(KEYS[1], min_workers=plan.min_workers),
        validation,
        coordinator,
        reporter,
        stop=threading.Event(),
        wire=WireCounter(),
        join_timeout_s=10,
    )
    threads = [
        threading.Thread(
            target=_worker, args=(coordinator, plan, d, f"w{i}", (stop_after or {}).get(i))
        )
        for i, d in enumerate(datasets)
    ]
    for t in threads:
        t.start()
    outcome = trainer.run()
    reporter.close()
    for t in threads:
        t.join(30)
    return out.getvalue(), outcome


def test_encrypted_rounds_reproduce_the_plaintext_replay(tmp_path: Path) -> None:
    a, b, val = _data(1, 40), _data(2, 50), _data(3, 30)
    plan = TrainingPlan(
        n_features=3,
        iterations=12,
        learning_rate=0.15,
        schedule="invsqrt",
        alpha=0.01,
        init_weight=1.0,
        eval_every=3,
        weighting="equal",
    ).validate()
    printed, outcome = _run(plan, [a, b], val, tmp_path)
    replay = replay_reference([a, b], val, iters=12, eval_every=1)
    expected = [format_eval_line(i, m) for i, m in replay if i % 3 == 0 or i == 11]
    assert printed.splitlines() == expected
    assert outcome.rounds == 12
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == len(expected)


def test_tolerance_stops_training_when_the_model_settles(tmp_path: Path) -> None:
    plan = TrainingPlan(
        n_features=3,
        iterations=500,
        learning_rate=0.5,
        schedule="constant",
        eval_every=50,
        tolerance=1e-3,
    ).validate()
    _, outcome = _run(plan, [_data(1, 40), _data(2, 50)], _data(3, 30), tmp_path)
    assert outcome.rounds < 500 and "converged" in outcome.reason


def test_a_round_below_min_workers_ends_training_with_the_last_model(tmp_path: Path) -> None:
    plan = TrainingPlan(n_features=3, iterations=50, eval_every=1, round_timeout_s=0.5).validate()
    _, outcome = _run(plan, [_data(1, 40), _data(2, 50)], _data(3, 30), tmp_path, stop_after={1: 4})
    assert outcome.rounds == 4
    assert "min_workers is 2" in outcome.reason
    assert np.all(np.isfinite(outcome.weights))


def test_aggregate_mode_improves_on_the_initial_model(tmp_path: Path) -> None:
    plan = TrainingPlan(
        mode="aggregate",
        n_features=3,
        iterations=10,
        learning_rate=0.2,
        schedule="constant",
        eval_every=9,
        batch_size=8,
        local_epochs=2,
        weighting="samples",
        value_bits=96,
    ).validate()
    printed, outcome = _run(plan, [_data(1, 40), _data(2, 50)], _data(3, 30), tmp_path)
    first, last = printed.splitlines()[0], printed.splitlines()[-1]
    assert float(last.split()[-1]) < float(first.split()[-1])  # loss went down
    assert outcome.final_metrics.accuracy > 0.8
