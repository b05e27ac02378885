"""Failures with real processes: dead workers, malformed submissions, signals, bad inputs."""

from __future__ import annotations

import signal
from pathlib import Path

import grpc
import numpy as np
import pytest

from homolr.crypto import PublicKey, encrypt_packed
from homolr.errors import ExitCode
from homolr.learning import (
    Dataset,
    LogisticModel,
    format_eval_line,
    load_csv,
    replay_reference,
    write_csv,
)
from homolr.protocol import serde
from homolr.protocol.messages import JoinRequest, Update, UpdateHeader
from homolr.protocol.service import ParameterServerStub, pb
from homolr.worker.local import packing_spec
from tests.integration.harness import (
    REFERENCE_FLAGS,
    Cluster,
    eval_lines,
    reference_files,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_killed_worker_round_completes_with_the_others(
    cluster: Cluster, shared_data: Path, tmp_path: Path
) -> None:
    guest, host, test = reference_files(shared_data)
    out = tmp_path / "out"
    ps = cluster.start_ps(
        "--workers",
        "3",
        "--min-workers",
        "2",
        "--validate-set",
        str(test),
        "--iters",
        "40",
        "--eval-every",
        "1",
        "--round-timeout",
        "4",
        "--tolerance",
        "0",
        "--out",
        str(out),
    )
    a = cluster.start_worker("a", guest)
    b = cluster.start_worker("b", host)
    c = cluster.start_worker("c", host)
    wait_for(lambda: len(eval_lines(ps.stdout())) >= 3, 120, "three evaluated rounds")
    c.kill()
    assert ps.wait(300) == 0, ps.output()
    assert a.wait(60) == 0 and b.wait(60) == 0
    assert "member c missed round" in ps.output()
    assert "completed 40 iterations" in ps.output()
    assert LogisticModel.load(out / "model.json").metadata["rounds"] == 40


def test_below_min_workers_the_run_pauses_without_writing_a_model(
    cluster: Cluster, shared_data: Path, tmp_path: Path
) -> None:
    test = shared_data / "breast_homo_test.csv"
    out = tmp_path / "out"
    ps = cluster.start_ps(
        "--workers",
        "2",
        "--validate-set",
        str(test),
        "--iters",
        "500",
        "--eval-every",
        "1",
        "--round-timeout",
        "3",
        "--tolerance",
        "0",
        "--out",
        str(out),
    )
    a = cluster.start_worker("a", shared_data / "breast_homo_guest.csv")
    b = cluster.start_worker("b", shared_data / "breast_homo_host.csv")
    wait_for(lambda: len(eval_lines(ps.stdout())) >= 3, 120, "three evaluated rounds")
    b.kill()
    assert ps.wait(120) == ExitCode.PAUSED, ps.output()
    assert a.wait(60) == ExitCode.PAUSED, a.output()
    assert "no complete update from b" in ps.output()
    assert "the PS ended the run" in a.output()
    assert not (out / "model.json").exists()  # results only when the plan completes
    records = (out / "metrics.jsonl").read_text().splitlines()
    assert len(records) == len(eval_lines(ps.stdout())) >= 3  # progress stays


def _rogue_update(
    public_key: PublicKey, run_id: str, n_weights: int, worker: str, round_: int
) -> Update:
    from homolr.protocol.messages import TrainingPlan

    plan = TrainingPlan(n_features=n_weights - 1, frac_bits=24)
    spec = packing_spec(plan)
    packed = encrypt_packed(public_key, np.zeros(n_weights), frac_bits=48, spec=spec)
    n_ct = spec.ciphertext_count(n_weights, public_key.n_bits)
    header = UpdateHeader(worker, run_id, round_, n_weights, 48, 64, 10, n_ct)
    return Update(header, packed.to_bytes())


def _submit(stub: ParameterServerStub, update: Update) -> grpc.StatusCode:
    try:
        stub.SubmitUpdate(serde.update_to_chunks(update, 1 << 20), timeout=10)
    except grpc.RpcError as exc:
        return exc.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def test_malformed_submissions_are_refused_and_training_goes_on(
    cluster: Cluster, shared_data: Path, tmp_path: Path
) -> None:
    guest, host, test = reference_files(shared_data)
    ps = cluster.start_ps(
        "--workers",
        "3",
        "--min-workers",
        "2",
        "--validate-set",
        str(test),
        "--iters",
        "12",
        "--eval-every",
        "1",
        "--round-timeout",
        "3",
        "--first-round-timeout",
        "5",
        "--tolerance",
        "0",
        *REFERENCE_FLAGS,
    )
    with grpc.insecure_channel(f"127.0.0.1:{cluster.port}") as channel:
        stub = ParameterServerStub(channel)
        info = serde.server_info_from_proto(stub.GetServerInfo(pb.ServerInfoRequest(), timeout=10))
        pk = PublicKey.from_bytes(info.public_key)
        stub.Join(
            serde.join_request_to_proto(JoinRequest("mallory", info.run_id, 30, 100)), timeout=10
        )
        workers = [cluster.start_worker("guest", guest), cluster.start_worker("host", host)]
        good = _rogue_update(pk, info.run_id, 31, "mallory", 0)
        n2 = pk.n * pk.n
        width = pk.ciphertext_bytes
        not_a_ciphertext = Update(good.header, n2.to_bytes(width, "big") + good.payload[width:])
        truncated = Update(good.header, good.payload[:-1])
        wrong_round = _rogue_update(pk, info.run_id, 31, "mallory", 7)
        unknown = _rogue_update(pk, info.run_id, 31, "eve", 0)
        wait_for(lambda: "3 members joined" in ps.output(), 60, "all three members to join")
        request = pb.ModelRequest(worker_id="mallory", run_id=info.run_id, round=0)
        first = serde.model_from_chunks(stub.GetModel(request, timeout=30))  # round 0 is open
        assert first.header.round == 0 and not first.header.pending
        assert _submit(stub, not_a_ciphertext) == grpc.StatusCode.INVALID_ARGUMENT
        assert _submit(stub, truncated) == grpc.StatusCode.INVALID_ARGUMENT
        assert _submit(stub, wrong_round) == grpc.StatusCode.ABORTED  # early: not the open round
        assert _submit(stub, unknown) == grpc.StatusCode.FAILED_PRECONDITION  # never joined
        bad_join = JoinRequest("zed", info.run_id, 29, 10)
        with pytest.raises(grpc.RpcError) as refused:
            stub.Join(serde.join_request_to_proto(bad_join), timeout=10)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "29 features" in (refused.value.details() or "")
    assert ps.wait(300) == 0, ps.output()
    assert all(w.wait(60) == 0 for w in workers)
    replay = replay_reference(
        [load_csv(guest), load_csv(host)], load_csv(test), iters=12, eval_every=1
    )
    assert eval_lines(ps.stdout()) == [format_eval_line(i, m) for i, m in replay]


def test_sigterm_stops_the_ps_at_once_without_a_model(
    cluster: Cluster, shared_data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    ps = cluster.start_ps(
        "--workers",
        "2",
        "--validate-set",
        str(shared_data / "breast_homo_test.csv"),
        "--iters",
        "5000",
        "--eval-every",
        "1",
        "--tolerance",
        "0",
        "--out",
        str(out),
    )
    workers = [
        cluster.start_worker(n, shared_data / f"breast_homo_{n}.csv") for n in ("guest", "host")
    ]
    wait_for(lambda: len(eval_lines(ps.stdout())) >= 2, 120, "two evaluated rounds")
    ps.kill(signal.SIGTERM)
    assert ps.wait(10) == ExitCode.SIGTERM, ps.output()
    assert "SIGTERM" in ps.output()
    assert not (out / "model.json").exists()
    for w in workers:
        assert w.wait(60) == ExitCode.PAUSED, w.output()
        assert "stopped by SIGTERM" in w.output()


def test_worker_with_other_feature_count_is_refused_naming_both(
    cluster: Cluster, shared_data: Path, tmp_path: Path
) -> None:
    data = load_csv(shared_data / "breast_homo_guest.csv")
    narrow = tmp_path / "narrow.csv"
    write_csv(Dataset(data.X[:, :29], data.y, data.ids, data.feature_names[:29], "narrow"), narrow)
    ps = cluster.start_ps(
        "--workers",
        "2",
        "--validate-set",
        str(shared_data / "breast_homo_test.csv"),
        "--join-timeout",
        "5",
    )
    worker = cluster.start_worker("narrow", narrow)
    assert worker.wait(60) == ExitCode.CONFIG
    assert "29 features" in worker.output() and "30" in worker.output()
    assert "Traceback" not in worker.output()
    assert ps.wait(60) == ExitCode.JOIN_TIMEOUT
    assert "only 0 of 2 members joined within 5 s" in ps.output()


def test_cli_refuses_small_keys_and_missing_dev_flags(cluster: Cluster, shared_data: Path) -> None:
    small = cluster.start(
        "small",
        "ps",
        "--validate-set",
        str(shared_data / "breast_homo_test.csv"),
        "--key-bits",
        "1024",
        "--attestation",
        "none",
        "--insecure",
    )
    assert small.wait(30) == 2
    assert "invalid choice: 1024" in small.output()
    bad_csv = cluster.tmp / "bad.csv"
    bad_csv.write_text("id,y,x0\n1,1,0.5\n2,3,0.1\n")
    bad = cluster.start(
        "bad", "ps", "--validate-set", str(bad_csv), "--attestation", "none", "--insecure"
    )
    assert bad.wait(30) == ExitCode.CONFIG
    assert "bad.csv:3: column 'y'" in bad.output() and "Traceback" not in bad.output()
