"""Trust members can check, attacked with real processes: sybils, other federations, rollback,
dropouts.

There is no SGX here, so the PS runs with ``--attestation simulated`` (synthetic, unsigned quotes)
and the members with the simulated verifier. Everything else runs for real: member-owned keys
listed in a federation file, mutual TLS admitting exactly those keys, the binding of the Paillier
key, the TLS key and the federation hash into the quote's report data, the MRENCLAVE policy,
certificate pinning, the members' replay state and the sealed checkpoint.
"""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

import grpc
import pytest

from homolr.enclave import SERVER_NAME, fetch_server_certificate, pinned_channel_credentials
from homolr.enclave.identity import generate_member_identity, write_member_identity
from homolr.errors import ExitCode
from homolr.learning import LogisticModel, format_eval_line, load_csv, replay_reference
from homolr.protocol.service import ParameterServerStub, pb
from tests.integration.harness import (
    Cluster,
    Proc,
    eval_lines,
    member_identities,
    reference_files,
    wait_for,
    write_federation,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MRENCLAVE = "5a" * 32
OTHER = "77" * 32
#: The reference solution's plan, as a federation file says it.
REFERENCE_PLAN = {
    "learning_rate": 0.15,
    "schedule": "invsqrt",
    "alpha": 0.01,
    "init_weight": 1.0,
    "weighting": "equal",
    "tolerance": 0.0,
}


def _federation(
    cluster: Cluster, name: str, members: tuple[str, ...], **sections: dict[str, object]
) -> Path:
    ids = member_identities(cluster.tmp / "identities", members)
    return write_federation(
        cluster.tmp / f"{name}.toml", {m: ids[m][0] for m in members}, **sections
    )


def _ps_args(shared: Path, federation: Path) -> list[str]:
    """A production PS of ``federation`` under simulated attestation."""
    return [
        "--federation",
        str(federation),
        "--validate-set",
        str(shared / "breast_homo_test.csv"),
        "--attestation",
        "simulated",
        "--mrenclave",
        MRENCLAVE,
    ]


def _ps(cluster: Cluster, shared: Path, federation: Path, *extra: str) -> Proc:
    return cluster.start_ps(*_ps_args(shared, federation), *extra, dev=False)


def _member(
    cluster: Cluster,
    shared: Path,
    federation: Path,
    member: str,
    *,
    data: str = "",
    mrenclave: str = MRENCLAVE,
    retry: str = "60",
    name: str = "",
    identity: tuple[Path, Path] | None = None,
) -> Proc:
    cert, key = identity or member_identities(cluster.tmp / "identities", (member,))[member]
    return cluster.start_worker(
        member,
        shared / f"breast_homo_{data or member}.csv",
        "--federation",
        str(federation),
        "--attestation",
        "simulated",
        "--mrenclave",
        mrenclave,
        "--cert",
        str(cert),
        "--key",
        str(key),
        "--retry-budget",
        retry,
        dev=False,
        name=name,
    )


def test_attested_training_with_member_owned_identities(
    cluster: Cluster, shared_data: Path, tmp_path: Path
) -> None:
    fed = _federation(
        cluster,
        "fed",
        ("guest", "host"),
        plan={**REFERENCE_PLAN, "iterations": 12, "eval_every": 4},
    )
    ps = _ps(cluster, shared_data, fed, "--out", str(tmp_path / "out"))
    members = [_member(cluster, shared_data, fed, m) for m in ("guest", "host")]
    assert ps.wait(120) == 0, ps.output()
    for m in members:
        assert m.wait(30) == 0, m.output()
        out = m.output()
        assert f"MRENCLAVE={MRENCLAVE}" in out
        assert "the quote binds federation 'integration' sha256:" in out
        assert "members: guest (sha256:" in out and "host (sha256:" in out
    assert "(mTLS)" in ps.output()
    assert len(eval_lines(ps.stdout())) == 4
    model = LogisticModel.load(tmp_path / "out" / "model.json")
    assert model.metadata["federation"]["members"] == ["guest", "host"]


def _minted(cluster: Cluster, as_member: str) -> tuple[Path, Path]:
    """What a hostile operator can make: a certificate with the member's name and its own key."""
    directory = cluster.tmp / "operator"
    write_member_identity(generate_member_identity(as_member), directory, as_member)
    return directory / f"member-{as_member}.pem", directory / f"member-{as_member}.key"


@pytest.mark.parametrize("who", ["operator-minted host", "member not in the file"])
def test_operator_minted_member_is_refused_at_the_handshake(
    cluster: Cluster, shared_data: Path, who: str
) -> None:
    """The sybil attack: the operator joins a member of its own and submits Enc(0) to read the
    honest member's update from the decrypted 'sum'. Its certificate is not in the federation
    file, so the TLS handshake fails: it cannot even fetch the PS's key, and nothing is ever
    decrypted."""
    fed = _federation(cluster, "fed", ("guest", "host"), plan={"iterations": 5})
    ps = _ps(cluster, shared_data, fed, "--join-timeout", "5")
    honest = _member(cluster, shared_data, fed, "guest")
    guest_cert = member_identities(cluster.tmp / "identities", ("guest",))["guest"][0]
    if who == "member not in the file":
        sybil_id = "mallory"
        identity = member_identities(cluster.tmp / "identities", ("mallory",))["mallory"]
    else:
        sybil_id, identity = "host", _minted(cluster, "host")
    # the attacker's own copy of the file lists its identity, so its worker starts
    forged = write_federation(
        cluster.tmp / "forged.toml",
        {"guest": guest_cert, sybil_id: identity[0]},
        plan={"iterations": 5},
    )
    sybil = _member(
        cluster,
        shared_data,
        forged,
        sybil_id,
        data="host",
        identity=identity,
        retry="5",
        name="sybil",
    )
    assert sybil.wait(60) != 0
    assert "refused this worker's client certificate" in sybil.output()
    # the attacker cannot even call GetServerInfo over a pinned channel with its certificate
    cert, key = identity
    pinned = fetch_server_certificate("127.0.0.1", cluster.port)
    creds = pinned_channel_credentials(pinned, cert.read_bytes(), key.read_bytes())
    options = [("grpc.ssl_target_name_override", SERVER_NAME)]
    with grpc.secure_channel(f"127.0.0.1:{cluster.port}", creds, options=options) as channel:
        with pytest.raises(grpc.RpcError) as refused:
            ParameterServerStub(channel).GetServerInfo(pb.ServerInfoRequest(), timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert ps.wait(60) == ExitCode.JOIN_TIMEOUT, ps.output()
    assert "missing: host" in ps.output()
    assert eval_lines(ps.stdout()) == []  # no round was ever decrypted
    assert honest.wait(60) == ExitCode.PAUSED, honest.output()
    assert "the PS ended the run: only 1 of 2 members joined" in honest.output()


@pytest.mark.parametrize(
    ("change", "names"),
    [
        ("member added", "members: PS lists 'mallory'"),
        ("min_workers lowered", "participation.min_workers: 3 (yours) vs 2 (PS)"),
        ("participation changed", "participation.policy: 'all' (yours) vs 'quorum' (PS)"),
    ],
)
def test_worker_refuses_a_ps_bound_to_another_federation(
    cluster: Cluster, shared_data: Path, change: str, names: str
) -> None:
    trio = ("guest", "host", "carol")
    leak = {"accept_subset_leakage": True}
    if change == "member added":
        mine = _federation(cluster, "mine", ("guest", "host"))
        theirs = _federation(cluster, "theirs", ("guest", "host", "mallory"))
    elif change == "min_workers lowered":
        mine = _federation(
            cluster, "mine", trio, participation={"policy": "quorum", "min_workers": 3, **leak}
        )
        theirs = _federation(
            cluster, "theirs", trio, participation={"policy": "quorum", "min_workers": 2, **leak}
        )
    else:
        mine = _federation(cluster, "mine", trio)
        theirs = _federation(
            cluster, "theirs", trio, participation={"policy": "quorum", "min_workers": 2, **leak}
        )
    ps = _ps(cluster, shared_data, theirs, "--join-timeout", "5")
    guest = _member(cluster, shared_data, mine, "guest")
    assert guest.wait(60) == ExitCode.ATTESTATION, guest.output()
    out = guest.output()
    assert "attestation check 'federation' failed" in out and names in out
    assert "Traceback" not in out
    assert ps.wait(60) == ExitCode.JOIN_TIMEOUT
    assert "0 of " in ps.output() and "guest" in ps.output().split("missing:")[-1]


def test_wrong_mrenclave_stops_the_worker_before_it_sends_anything(
    cluster: Cluster, shared_data: Path
) -> None:
    fed = _federation(cluster, "fed", ("guest", "host"))
    ps = _ps(cluster, shared_data, fed, "--join-timeout", "5")
    worker = _member(cluster, shared_data, fed, "guest", mrenclave=OTHER)
    assert worker.wait(60) == ExitCode.ATTESTATION
    out = worker.output()
    assert "attestation check 'mrenclave' failed" in out
    assert OTHER in out and MRENCLAVE in out and "Traceback" not in out
    assert ps.wait(60) == ExitCode.JOIN_TIMEOUT
    assert "only 0 of 2 members joined" in ps.output()


def _resume(cluster: Cluster, shared: Path, federation: Path, sealed: Path, out: Path) -> Proc:
    return cluster.start(
        f"ps-resumed-{len(cluster.procs)}",
        "ps",
        "--port",
        str(cluster.port),
        *_ps_args(shared, federation),
        "--sealed-dir",
        str(sealed),
        "--resume",
        "--out",
        str(out),
    )


def test_sigkilled_ps_resumes_from_its_sealed_checkpoint_to_the_same_model(
    cluster: Cluster, shared_data: Path, tmp_path: Path
) -> None:
    fed = _federation(cluster, "fed", ("guest", "host"), plan={**REFERENCE_PLAN, "iterations": 40})
    straight = tmp_path / "straight"
    ps = _ps(cluster, shared_data, fed, "--out", str(straight))
    for m in ("guest", "host"):
        _member(cluster, shared_data, fed, m, name=f"straight-{m}")
    assert ps.wait(180) == 0, ps.output()
    # interrupted run: SIGKILL mid-training, restart on the same port with --resume
    sealed, out = tmp_path / "sealed", tmp_path / "resumed"
    first = _ps(
        cluster, shared_data, fed, "--sealed-dir", str(sealed), "--resume", "--out", str(out)
    )
    members = [_member(cluster, shared_data, fed, m) for m in ("guest", "host")]
    wait_for(lambda: len(eval_lines(first.stdout())) >= 2, 120, "two evaluated rounds")
    first.kill(signal.SIGKILL)
    first.wait(30)
    saved = json.loads((sealed / "checkpoint.json").read_text())
    assert 0 < saved["next_round"] < 40
    second = _resume(cluster, shared_data, fed, sealed, out)
    assert second.wait(180) == 0, second.output()
    assert f"at round {saved['next_round']}" in second.output()
    for m in members:
        assert m.wait(60) == 0, m.output()
    a = LogisticModel.load(straight / "model.json")
    b = LogisticModel.load(out / "model.json")
    assert a.weights.tobytes() == b.weights.tobytes()
    assert b.metadata["rounds"] == 40


def test_rolled_back_checkpoint_gets_no_second_contribution(
    cluster: Cluster, shared_data: Path, tmp_path: Path
) -> None:
    """The operator keeps an old copy of the sealed state, lets training go on, then restarts the
    enclave from the old copy to collect the members' contributions to old rounds again. The
    members remember what they sent: the restored PS gets nothing new and decrypts nothing."""
    fed = _federation(
        cluster,
        "fed",
        ("guest", "host"),
        plan={**REFERENCE_PLAN, "iterations": 400, "eval_every": 1},
        deadlines={"round_s": 5.0},
    )
    sealed, out = tmp_path / "sealed", tmp_path / "out"
    first = _ps(
        cluster, shared_data, fed, "--sealed-dir", str(sealed), "--resume", "--out", str(out)
    )
    members = [_member(cluster, shared_data, fed, m, retry="90") for m in ("guest", "host")]
    wait_for(lambda: (sealed / "checkpoint.json").exists(), 120, "a first checkpoint")
    wait_for(lambda: len(eval_lines(first.stdout())) >= 3, 120, "three evaluated rounds")
    old = tmp_path / "old-sealed"
    shutil.copytree(sealed, old)
    old_round = json.loads((old / "checkpoint.json").read_text())["next_round"]
    wait_for(lambda: len(eval_lines(first.stdout())) >= old_round + 6, 120, "five more rounds")
    first.kill(signal.SIGKILL)
    first.wait(30)
    shutil.rmtree(sealed)
    shutil.copytree(old, sealed)  # the rollback
    restored = _resume(cluster, shared_data, fed, sealed, out)
    for m in members:
        assert m.wait(120) == ExitCode.ROLLBACK, m.output()
        assert f"asks member '{m.name.removeprefix('worker-')}' for round {old_round}" in m.output()
        assert "Nothing new was sent" in m.output()
    restored.kill(signal.SIGTERM)
    assert restored.wait(30) == ExitCode.SIGTERM, restored.output()
    assert eval_lines(restored.stdout()) == []  # the restored PS decrypted nothing


def test_dropout_differencing_under_all_pauses_and_resumes(
    cluster: Cluster, shared_data: Path, tmp_path: Path
) -> None:
    """The host cuts one member's link to read a sum without it. Under participation 'all' the
    round is never released: the run pauses naming the member, and resumes when it is back."""
    guest, host, test = reference_files(shared_data)
    trio = ("guest", "host", "carol")
    fed = _federation(
        cluster,
        "fed",
        trio,
        plan={**REFERENCE_PLAN, "iterations": 20, "eval_every": 1},
        deadlines={"round_s": 3.0},
    )
    sealed, out = tmp_path / "sealed", tmp_path / "out"
    ps = _ps(cluster, shared_data, fed, "--sealed-dir", str(sealed), "--resume", "--out", str(out))
    members = {
        m: _member(cluster, shared_data, fed, m, data="host" if m == "carol" else m) for m in trio
    }
    wait_for(lambda: len(eval_lines(ps.stdout())) >= 5, 120, "five evaluated rounds")
    members["carol"].kill(signal.SIGKILL)  # the cut
    assert ps.wait(60) == ExitCode.PAUSED, ps.output()
    assert "no complete update from carol" in ps.output()
    assert not (out / "model.json").exists()
    before = eval_lines(ps.stdout())
    for m in ("guest", "host"):
        assert members[m].wait(60) == ExitCode.PAUSED, members[m].output()
    # the member is back: resume, everyone rejoins, the run completes
    resumed = _resume(cluster, shared_data, fed, sealed, out)
    back = [
        _member(cluster, shared_data, fed, m, data="host" if m == "carol" else m, name=f"{m}-2")
        for m in trio
    ]
    assert resumed.wait(180) == 0, resumed.output()
    for m in back:
        assert m.wait(60) == 0, m.output()
    replay = replay_reference(
        [load_csv(guest), load_csv(host), load_csv(host)], load_csv(test), iters=20, eval_every=1
    )
    # every released model is the full three-member average: no subset sum was ever released
    assert before + eval_lines(resumed.stdout()) == [format_eval_line(i, m) for i, m in replay]
