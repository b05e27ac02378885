"""End-to-end training with real processes: one PS and workers talking gRPC on loopback.

Keys are real 2048-bit Paillier keys (the CLI refuses smaller ones).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from homolr.learning import LogisticModel, format_eval_line, load_csv, replay_reference
from tests.integration.harness import REFERENCE_FLAGS, Cluster, eval_lines, reference_files

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PUBLISHED = [
    "iter: 220  acc: 0.904  loss: 0.305",
    "iter: 250  acc: 0.912  loss: 0.302",
    "iter: 280  acc: 0.921  loss: 0.300",
    "iter: 310  acc: 0.921  loss: 0.298",
    "iter: 340  acc: 0.930  loss: 0.297",
]


def test_reference_parity_prints_the_published_log(
    cluster: Cluster, shared_data: Path, tmp_path: Path
) -> None:
    guest, host, test = reference_files(shared_data)
    out = tmp_path / "out"
    ps = cluster.start_ps(
        "--worker-num",
        "2",
        "--validate-set",
        str(test),
        "--iters",
        "341",
        *REFERENCE_FLAGS,
        "--out",
        str(out),
    )
    workers = [cluster.start_worker("guest", guest), cluster.start_worker("host", host)]
    assert ps.wait(600) == 0, ps.output()
    for w in workers:
        assert w.wait(60) == 0, w.output()
    lines = eval_lines(ps.stdout())
    for published in PUBLISHED:
        assert published in lines, f"missing {published!r}; PS printed:\n" + "\n".join(lines[-6:])
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in records] == list(range(0, 341, 10))
    assert all(r["bytes"] > 0 and r["seconds"] > 0 and 0 < r["auc"] <= 1 for r in records)


def test_short_encrypted_run_matches_the_plaintext_replay_line_for_line(
    cluster: Cluster, shared_data: Path, tmp_path: Path
) -> None:
    guest, host, test = reference_files(shared_data)
    out = tmp_path / "out"
    ps = cluster.start_ps(
        "--workers",
        "2",
        "--validate-set",
        str(test),
        "--iters",
        "25",
        "--eval-every",
        "5",
        *REFERENCE_FLAGS,
        "--tolerance",
        "0",
        "--out",
        str(out),
    )
    workers = [cluster.start_worker("guest", guest), cluster.start_worker("host", host)]
    assert ps.wait(300) == 0, ps.output()
    assert all(w.wait(60) == 0 for w in workers)
    replay = replay_reference(
        [load_csv(guest), load_csv(host)], load_csv(test), iters=25, eval_every=1
    )
    # every 5th iteration, plus the last one (24), which the PS always evaluates
    expected = [format_eval_line(i, m) for i, m in replay if i % 5 == 0 or i == 24]
    assert eval_lines(ps.stdout()) == expected
    model = LogisticModel.load(out / "model.json")
    assert model.metadata["mode"] == "encrypted" and model.metadata["key_bits"] == 2048
    predict = cluster.start(
        "predict", "predict", "--model", str(out / "model.json"), "--data", str(test)
    )
    assert predict.wait(60) == 0, predict.output()
    assert "114 rows scored" in predict.stdout() and "accuracy" in predict.stdout()
    t = load_csv(test)
    unlabelled = tmp_path / "new.csv"
    unlabelled.write_text(
        "id,"
        + ",".join(t.feature_names)
        + "\n"
        + "".join(
            f"{i}," + ",".join(repr(float(v)) for v in row) + "\n"
            for i, row in zip(t.ids, t.X, strict=True)
        )
    )
    scores = tmp_path / "scores.csv"
    scored = cluster.start(
        "score",
        "predict",
        "--model",
        str(out / "model.json"),
        "--data",
        str(unlabelled),
        "--output",
        str(scores),
    )
    assert scored.wait(60) == 0, scored.output()
    rows = scores.read_text().splitlines()
    assert rows[0] == "id,probability,prediction" and len(rows) == 115
    expected = model.predict(t.X)
    assert [int(r.split(",")[2]) for r in rows[1:]] == expected.tolist()


def test_aggregate_mode_is_within_one_point_of_centralised_sklearn(
    cluster: Cluster, shared_data: Path, tmp_path: Path
) -> None:
    from sklearn.linear_model import LogisticRegression

    guest, host, test = reference_files(shared_data)
    out = tmp_path / "out"
    ps = cluster.start_ps(
        "--workers", "2", "--validate-set", str(test), "--mode", "aggregate", "--out", str(out)
    )
    workers = [cluster.start_worker("guest", guest), cluster.start_worker("host", host)]
    assert ps.wait(300) == 0, ps.output()
    assert all(w.wait(60) == 0 for w in workers)
    g, h, t = load_csv(guest), load_csv(host), load_csv(test)
    sk = LogisticRegression(max_iter=5000).fit(np.vstack([g.X, h.X]), np.concatenate([g.y, h.y]))
    ours = LogisticModel.load(out / "model.json")
    ours_acc = float(np.mean(ours.predict(t.X) == t.y))
    assert ours_acc >= sk.score(t.X, t.y) - 0.01, (ours_acc, sk.score(t.X, t.y))


def test_a_100k_weight_model_travels_in_chunks(cluster: Cluster, tmp_path: Path) -> None:
    """Secure aggregation of a 100,000-weight model: the packed encrypted uploads (~1.9 MB each)
    and the float64 broadcasts (800 kB) are streamed in chunks under gRPC's message limits."""
    from homolr.learning import Dataset, write_csv

    rng = np.random.default_rng(5)
    d = 99_999
    names = tuple(f"x{i}" for i in range(d))
    true_w = rng.normal(size=d)
    paths = []
    for name, rows in (("a", 6), ("b", 6), ("val", 4)):
        X = rng.normal(size=(rows, d))
        y = (X @ true_w > 0).astype(np.int64)
        path = tmp_path / f"{name}.csv"
        write_csv(Dataset(X, y, np.arange(rows), names, name), path)
        paths.append(path)
    out = tmp_path / "out"
    ps = cluster.start_ps(
        "--workers",
        "2",
        "--validate-set",
        str(paths[2]),
        "--mode",
        "aggregate",
        "--iters",
        "2",
        "--eval-every",
        "1",
        "--equal-weights",
        "--round-timeout",
        "300",
        "--out",
        str(out),
    )
    workers = [cluster.start_worker("a", paths[0]), cluster.start_worker("b", paths[1])]
    assert ps.wait(600) == 0, ps.output()
    assert all(w.wait(60) == 0 for w in workers), [w.output() for w in workers]
    model = LogisticModel.load(out / "model.json")
    assert model.coef_.shape == (1, d)
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["bytes"] > 4 * 1024 * 1024  # more than one default gRPC message's worth


def _reordered(source: Path, target: Path, seed: int) -> Path:
    """The same CSV with its columns (id and y included) in another order."""
    rows = [line.split(",") for line in source.read_text().splitlines()]
    order = np.random.default_rng(seed).permutation(len(rows[0]))
    target.write_text("".join(",".join(row[i] for i in order) + "\n" for row in rows))
    return target


def test_reordered_columns_at_members_ps_and_predict_change_nothing(
    cluster: Cluster, shared_data: Path, tmp_path: Path
) -> None:
    guest, host, test = reference_files(shared_data)
    shuffled_guest = _reordered(guest, tmp_path / "guest.csv", 1)
    shuffled_test = _reordered(test, tmp_path / "test.csv", 2)
    out = tmp_path / "out"
    ps = cluster.start_ps(
        "--workers",
        "2",
        "--validate-set",
        str(shuffled_test),
        "--iters",
        "8",
        "--eval-every",
        "1",
        *REFERENCE_FLAGS,
        "--out",
        str(out),
    )
    workers = [cluster.start_worker("guest", shuffled_guest), cluster.start_worker("host", host)]
    assert ps.wait(300) == 0, ps.output()
    assert all(w.wait(60) == 0 for w in workers)
    # the plan's feature order is the (shuffled) validation file's; the model is the same
    replay = replay_reference(
        [load_csv(guest), load_csv(host)], load_csv(test), iters=8, eval_every=1
    )
    assert eval_lines(ps.stdout()) == [format_eval_line(i, m) for i, m in replay]
    reversed_test = tmp_path / "reversed.csv"
    rows = [line.split(",") for line in test.read_text().splitlines()]
    reversed_test.write_text("".join(",".join(reversed(r)) + "\n" for r in rows))
    outputs = []
    for name, data in (("plain", test), ("reversed", reversed_test)):
        scores = tmp_path / f"{name}-scores.csv"
        run = cluster.start(
            f"predict-{name}",
            "predict",
            "--model",
            str(out / "model.json"),
            "--data",
            str(data),
            "--output",
            str(scores),
        )
        assert run.wait(60) == 0, run.output()
        outputs.append(scores.read_text())
    assert outputs[0] == outputs[1]  # columns matched by name, not by position


def test_federated_standardisation_on_raw_data_matches_central_standardisation(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Members hold raw Wisconsin measurements (0.001 to 4,000); the statistics round gives the
    global scaler, and the encrypted run lands within a point of training on centrally
    standardised data."""
    from homolr.learning import Scaler, evaluate, train_taylor
    from homolr.learning.breast_homo import write_breast_homo

    guest, host, test = write_breast_homo(tmp_path / "raw", raw=True)
    out = tmp_path / "out"
    ps = cluster.start_ps(
        "--workers", "2", "--validate-set", str(test), "--standardize", "--iters", "100",
        "--out", str(out),
    )  # fmt: skip
    workers = [cluster.start_worker("guest", guest), cluster.start_worker("host", host)]
    assert ps.wait(300) == 0, ps.output()
    assert all(w.wait(60) == 0 for w in workers)
    assert "global scaler from 455 rows of 2 members" in ps.output()
    model = LogisticModel.load(out / "model.json")
    g, h, t = load_csv(guest), load_csv(host), load_csv(test)
    federated = model.score(t.X, t.y)  # raw data in: the model applies its scaler
    scaler = Scaler.fit(np.vstack([g.X, h.X]))
    central = [
        type(d)(scaler.transform(d.X), d.y, d.ids, d.feature_names, d.source) for d in (g, h)
    ]
    trained = train_taylor(central, iters=100, lr0=0.3, schedule="constant", alpha=0.01)
    reference = evaluate(trained.w, np.hstack([np.ones((len(t.y), 1)), scaler.transform(t.X)]), t.y)
    assert abs(federated - reference.accuracy) <= 0.01, (federated, reference.accuracy)
    assert federated > 0.9
