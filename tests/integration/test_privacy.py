"""Differential privacy end to end with real processes: the federation file's [privacy] reaches the
members (clipping) and the key holder (noise), and the run reports what it spent."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from homolr.learning import LogisticModel, load_csv
from homolr.privacy import epsilon_spent
from tests.integration.harness import Cluster, eval_lines, member_identities, write_federation

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MRENCLAVE = "5a" * 32


def _run(
    cluster: Cluster,
    shared: Path,
    out: Path,
    *,
    plan: dict[str, object],
    privacy: dict[str, object],
) -> tuple[int, list[int], Path]:
    ids = member_identities(cluster.tmp / "identities", ("guest", "host"))
    fed = write_federation(
        cluster.tmp / "fed.toml", {m: c for m, (c, _) in ids.items()}, plan=plan, privacy=privacy
    )
    common = ("--federation", str(fed), "--attestation", "simulated", "--mrenclave", MRENCLAVE)
    ps = cluster.start_ps(
        *common,
        "--validate-set",
        str(shared / "breast_homo_test.csv"),
        "--out",
        str(out),
        dev=False,
    )
    members = [
        cluster.start_worker(
            m,
            shared / f"breast_homo_{m}.csv",
            *common,
            "--cert",
            str(ids[m][0]),
            "--key",
            str(ids[m][1]),
            dev=False,
        )
        for m in ("guest", "host")
    ]
    code = ps.wait(240)
    assert code == 0, ps.output()
    codes = [m.wait(60) for m in members]
    assert len(eval_lines(ps.stdout())) > 0
    return code, codes, fed


def test_record_level_privacy_in_encrypted_mode(
    cluster: Cluster, shared_data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    plan = {"iterations": 20, "learning_rate": 0.5, "eval_every": 5}
    privacy = {
        "level": "record",
        "epsilon": 4.0,
        "delta": 1e-5,
        "clip": 2.5,
        "model_bound": 2.0,
        "min_samples": 200,
    }
    _, codes, _ = _run(cluster, shared_data, out, plan=plan, privacy=privacy)
    assert codes == [0, 0]
    model = LogisticModel.load(out / "model.json")
    spent = model.metadata["privacy"]
    assert spent["level"] == "record" and spent["rounds"] == 20
    assert spent["epsilon"] <= 4.0 + 1e-9  # calibrated to the target over the planned steps
    assert spent["epsilon"] == pytest.approx(
        epsilon_spent(spent["noise_multiplier"], 20, 1e-5), rel=1e-12
    )
    assert np.linalg.norm(model.weights) <= 2.0 + 1e-9  # the key holder's projection
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    epsilons = [r["epsilon"] for r in records]
    assert epsilons == sorted(epsilons) and epsilons[-1] == pytest.approx(spent["epsilon"])
    test = load_csv(shared_data / "breast_homo_test.csv")
    assert model.score(test.X, test.y) > 0.85  # still a useful model at epsilon 4


def test_two_member_aggregate_mode_is_allowed_with_member_level_privacy(
    cluster: Cluster, shared_data: Path, tmp_path: Path
) -> None:
    """Without [privacy] a two-member aggregate federation needs accept_two_member_leakage (each
    member could compute the other's model as 2w - own); with member-level DP it runs."""
    out = tmp_path / "out"
    plan = {
        "mode": "aggregate",
        "iterations": 6,
        "weighting": "equal",
        "eval_every": 1,
        "learning_rate": 0.3,
    }
    privacy = {"level": "member", "noise_multiplier": 1.0, "delta": 1e-5, "clip": 0.5}
    _, codes, _ = _run(cluster, shared_data, out, plan=plan, privacy=privacy)
    assert codes == [0, 0]
    spent = LogisticModel.load(out / "model.json").metadata["privacy"]
    assert spent["level"] == "member" and spent["rounds"] == 6
    assert spent["epsilon"] == pytest.approx(epsilon_spent(1.0, 6, 1e-5), rel=1e-12)
