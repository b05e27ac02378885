"""Attested mutual TLS and sealed resume with real processes.

There is no SGX here, so the PS runs with ``--attestation simulated`` (synthetic, unsigned quotes)
and the workers with the simulated verifier: everything else, the binding of the Paillier key and
the TLS key into the quote's report data, the MRENCLAVE policy, certificate pinning, client
certificates and the allow-list, runs for real.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from homolr.learning import LogisticModel
from tests.integration.harness import REFERENCE_FLAGS, Cluster, Proc, eval_lines, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MRENCLAVE = "5a" * 32
OTHER = "77" * 32


def _pki(cluster: Cluster, name: str, workers: str) -> Path:
    out = cluster.tmp / name
    certs = cluster.start(f"certs-{name}", "certs", "--out", str(out), "--workers", workers)
    assert certs.wait(60) == 0, certs.output()
    return out


def _ps(cluster: Cluster, shared: Path, pki: Path, *extra: str) -> Proc:
    return cluster.start_ps(
        "--validate-set",
        str(shared / "breast_homo_test.csv"),
        "--attestation",
        "simulated",
        "--mrenclave",
        MRENCLAVE,
        "--client-ca",
        str(pki / "ca.pem"),
        "--allow-workers",
        "guest,host",
        *extra,
        dev=False,
    )


def _worker(
    cluster: Cluster,
    shared: Path,
    pki: Path,
    worker_id: str,
    mrenclave: str = MRENCLAVE,
    data: str | None = None,
    retry: str = "60",
) -> Proc:
    return cluster.start_worker(
        worker_id,
        shared / f"breast_homo_{data or worker_id}.csv",
        "--attestation",
        "simulated",
        "--mrenclave",
        mrenclave,
        "--cert",
        str(pki / f"worker-{worker_id}.pem"),
        "--key",
        str(pki / f"worker-{worker_id}.key"),
        "--retry-budget",
        retry,
        dev=False,
    )


def test_attested_mtls_training_runs_end_to_end(cluster: Cluster, shared_data: Path) -> None:
    pki = _pki(cluster, "pki", "guest,host")
    ps = _ps(cluster, shared_data, pki, "--iters", "12", "--eval-every", "4")
    workers = [_worker(cluster, shared_data, pki, w) for w in ("guest", "host")]
    assert ps.wait(120) == 0, ps.output()
    for w in workers:
        assert w.wait(30) == 0, w.output()
        assert f"MRENCLAVE={MRENCLAVE}" in w.output()
    assert "(mTLS)" in ps.output()
    assert len(eval_lines(ps.stdout())) == 4


def test_wrong_mrenclave_stops_the_worker_before_it_sends_anything(
    cluster: Cluster, shared_data: Path
) -> None:
    pki = _pki(cluster, "pki", "guest,host")
    ps = _ps(cluster, shared_data, pki, "--join-timeout", "8")
    worker = _worker(cluster, shared_data, pki, "guest", mrenclave=OTHER)
    assert worker.wait(60) == 1
    out = worker.output()
    assert "attestation check 'mrenclave' failed" in out
    assert OTHER in out and MRENCLAVE in out and "Traceback" not in out
    assert ps.wait(60) == 0
    assert "only 0 worker(s) joined" in ps.output()  # the worker never joined


def test_client_certificate_of_another_ca_is_refused(cluster: Cluster, shared_data: Path) -> None:
    pki = _pki(cluster, "pki", "guest,host")
    rogue = _pki(cluster, "rogue", "guest")
    _ps(cluster, shared_data, pki, "--join-timeout", "8")
    worker = _worker(cluster, shared_data, rogue, "guest", retry="3")
    assert worker.wait(60) == 1
    assert "refused this worker's client certificate" in worker.output()


def test_worker_outside_the_allow_list_is_refused(cluster: Cluster, shared_data: Path) -> None:
    pki = _pki(cluster, "pki", "guest,host,mallory")
    _ps(cluster, shared_data, pki, "--join-timeout", "8")
    worker = _worker(cluster, shared_data, pki, "mallory", data="guest")
    assert worker.wait(60) == 1
    assert "PERMISSION_DENIED" in worker.output() and "allow-list" in worker.output()


def test_sigkilled_ps_resumes_from_its_sealed_checkpoint_to_the_same_model(
    cluster: Cluster, shared_data: Path, tmp_path: Path
) -> None:
    pki = _pki(cluster, "pki", "guest,host")
    plan = ("--iters", "40", "--eval-every", "1", "--tolerance", "0", *REFERENCE_FLAGS)
    # uninterrupted run of the same plan
    straight = tmp_path / "straight"
    ps = _ps(cluster, shared_data, pki, *plan, "--out", str(straight))
    for w in ("guest", "host"):
        _worker(cluster, shared_data, pki, w)
    assert ps.wait(180) == 0, ps.output()
    # interrupted run: SIGKILL mid-training, restart on the same port with --resume
    sealed, out = tmp_path / "sealed", tmp_path / "resumed"
    first = _ps(
        cluster, shared_data, pki, *plan, "--sealed-dir", str(sealed), "--resume", "--out", str(out)
    )
    workers = [_worker(cluster, shared_data, pki, w) for w in ("guest", "host")]
    wait_for(lambda: len(eval_lines(first.stdout())) >= 12, 120, "twelve evaluated rounds")
    first.kill(signal.SIGKILL)
    first.wait(30)
    saved = json.loads((sealed / "checkpoint.json").read_text())
    assert 0 < saved["next_round"] < 40
    port = cluster.port
    second = cluster.start(
        "ps-resumed",
        "ps",
        "--port",
        str(port),
        "--validate-set",
        str(shared_data / "breast_homo_test.csv"),
        "--attestation",
        "simulated",
        "--mrenclave",
        MRENCLAVE,
        "--client-ca",
        str(pki / "ca.pem"),
        "--allow-workers",
        "guest,host",
        *plan,
        "--sealed-dir",
        str(sealed),
        "--resume",
        "--out",
        str(out),
    )
    assert second.wait(180) == 0, second.output()
    assert f"at round {saved['next_round']}" in second.output()
    for w in workers:
        assert w.wait(60) == 0, w.output()
    a = LogisticModel.load(straight / "model.json")
    b = LogisticModel.load(out / "model.json")
    assert a.weights.tobytes() == b.weights.tobytes()
    assert b.metadata["rounds"] == 40
