"""The CLI's option handling: clear one-line errors, never a traceback, for bad combinations."""

from __future__ import annotations

from pathlib import Path

import pytest

from homolr.cli import build_parser, main
from homolr.commands import build_plan

CSV = "id,y,x0,x1\n1,1,0.5,0.1\n2,0,-0.5,0.3\n"


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    path = tmp_path / "data.csv"
    path.write_text(CSV)
    return path


@pytest.fixture(scope="module")
def identities(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from homolr.enclave.identity import generate_member_identity, write_member_identity

    directory = tmp_path_factory.mktemp("identities")
    for member in ("guest", "host"):
        write_member_identity(generate_member_identity(member), directory, member)
    return directory


@pytest.fixture
def federation_file(tmp_path: Path, identities: Path) -> Path:
    from homolr.federation import render_template, spki_fingerprint

    members = []
    for member in ("guest", "host"):
        pem = (identities / f"member-{member}.pem").read_text()
        members.append((member, spki_fingerprint(pem), pem))
    path = tmp_path / "federation.toml"
    path.write_text(render_template("test-fed", members, features=("x0", "x1")))
    return path


def _error(capsys: pytest.CaptureFixture[str], argv: list[str], code: int = 3) -> str:
    assert main(argv) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def test_attestation_without_tls_is_refused(
    capsys: pytest.CaptureFixture[str], csv_file: Path
) -> None:
    err = _error(capsys, ["ps", "--validate-set", str(csv_file), "--insecure"])
    assert "--attestation dcap binds the PS's TLS key" in err
    err = _error(
        capsys,
        [
            "worker",
            "--train-set",
            str(csv_file),
            "--id",
            "a",
            "--insecure",
            "--attestation",
            "simulated",
        ],
    )
    assert "--attestation simulated binds" in err


def test_tls_and_attestation_need_a_federation_file(
    capsys: pytest.CaptureFixture[str], csv_file: Path
) -> None:
    err = _error(capsys, ["ps", "--validate-set", str(csv_file), "--attestation", "none"])
    assert "--federation is required" in err
    err = _error(capsys, ["worker", "--train-set", str(csv_file), "--id", "a"])
    assert "--federation is required" in err


def test_worker_tls_needs_its_certificate(
    capsys: pytest.CaptureFixture[str], csv_file: Path, federation_file: Path
) -> None:
    err = _error(
        capsys,
        [
            "worker",
            "--train-set",
            str(csv_file),
            "--id",
            "guest",
            "--attestation",
            "none",
            "--federation",
            str(federation_file),
        ],
    )
    assert "--cert and --key" in err


def test_worker_attestation_needs_a_readable_identity_and_a_policy(
    capsys: pytest.CaptureFixture[str], csv_file: Path, tmp_path: Path, federation_file: Path
) -> None:
    fed = ["--federation", str(federation_file)]
    err = _error(
        capsys,
        ["worker", "--train-set", str(csv_file), "--id", "a", "--cert", "c", "--key", "k", *fed],
    )
    assert "cannot read --cert" in err
    (tmp_path / "c").write_text("x")
    (tmp_path / "k").write_text("x")
    base = [
        "worker",
        "--train-set",
        str(csv_file),
        "--id",
        "a",
        "--cert",
        str(tmp_path / "c"),
        "--key",
        str(tmp_path / "k"),
        *fed,
    ]
    assert "give --mrenclave, or --mrsigner" in _error(capsys, base)
    assert "expected 32 bytes" in _error(capsys, [*base, "--mrenclave", "00"])


def test_a_worker_not_in_the_federation_is_refused_before_connecting(
    capsys: pytest.CaptureFixture[str], csv_file: Path, federation_file: Path, identities: Path
) -> None:
    err = _error(
        capsys,
        [
            "worker",
            "--train-set",
            str(csv_file),
            "--id",
            "mallory",
            "--federation",
            str(federation_file),
            "--cert",
            str(identities / "member-guest.pem"),
            "--key",
            str(identities / "member-guest.key"),
            "--attestation",
            "none",
        ],
    )
    assert "'mallory' is not a member of federation 'test-fed'" in err
    err = _error(
        capsys,
        [
            "worker",
            "--train-set",
            str(csv_file),
            "--id",
            "host",
            "--federation",
            str(federation_file),
            "--cert",
            str(identities / "member-guest.pem"),
            "--key",
            str(identities / "member-guest.key"),
            "--attestation",
            "none",
        ],
    )
    assert "but federation 'test-fed' lists" in err


def test_plan_flags_cannot_override_the_federation_in_production(
    capsys: pytest.CaptureFixture[str], csv_file: Path, federation_file: Path
) -> None:
    err = _error(
        capsys,
        [
            "ps",
            "--validate-set",
            str(csv_file),
            "--federation",
            str(federation_file),
            "--iters",
            "3",
            "--attestation",
            "simulated",
        ],
    )
    assert "--iterations: with a federation file the PS takes its whole plan from the file" in err


def test_resume_needs_a_sealed_dir(capsys: pytest.CaptureFixture[str], csv_file: Path) -> None:
    err = _error(
        capsys,
        ["ps", "--validate-set", str(csv_file), "--attestation", "none", "--insecure", "--resume"],
    )
    assert "--resume needs --sealed-dir" in err


def test_small_keys_are_not_a_choice(capsys: pytest.CaptureFixture[str], csv_file: Path) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["ps", "--validate-set", str(csv_file), "--key-bits", "1024"])
    assert exit_.value.code == 2
    assert "invalid choice: 1024" in capsys.readouterr().err


def test_keygen_writes_a_private_key_and_a_members_block(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["keygen", "--id", "guest", "--out", str(tmp_path / "id")]) == 0
    names = sorted(p.name for p in (tmp_path / "id").iterdir())
    assert names == ["member-guest.key", "member-guest.pem"]
    assert (tmp_path / "id" / "member-guest.key").stat().st_mode & 0o077 == 0
    out = capsys.readouterr().out
    assert "[[members]]" in out and 'id = "guest"' in out and "fingerprint: sha256:" in out
    err = _error(capsys, ["keygen", "--id", "guest", "--out", str(tmp_path / "id")])
    assert "member-guest.key" in err


def test_init_writes_a_federation_file_that_loads(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, identities: Path
) -> None:
    from homolr.federation import load_federation

    out = tmp_path / "federation.toml"
    members = [str(identities / f"member-{m}.pem") for m in ("guest", "host")]
    argv = ["init", "--out", str(out), "--name", "cancer", "--member", members[0]]
    assert main([*argv, "--member", members[1]]) == 0
    federation = load_federation(out)
    assert federation.name == "cancer" and federation.member_ids == ("guest", "host")
    assert "exists" in _error(capsys, argv)


@pytest.mark.parametrize("content", [None, b"\xff\xfeid,y,x0\n"])
def test_init_names_a_features_file_it_cannot_read(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: bytes | None
) -> None:
    features = tmp_path / "guest.csv"
    if content is not None:
        features.write_bytes(content)
    out = tmp_path / "federation.toml"
    err = _error(capsys, ["init", "--out", str(out), "--features-from", str(features)])
    assert f"--features-from {features}: cannot read its CSV header" in err
    assert "Traceback" not in err and not out.exists()


def test_version_and_exit_statuses_in_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("homolr ")
    with pytest.raises(SystemExit):
        main(["ps", "--help"])
    text = capsys.readouterr().out
    assert "4 join timeout" in text and "143 sigterm" in text
    assert "(default: 50051)" in text and "(default: 127.0.0.1)" in text


@pytest.mark.parametrize(
    ("argv", "schedule", "lr"),
    [
        ([], "constant", 0.3),  # the tuned default of encrypted mode
        (
            ["--learning-rate", "0.15"],
            "invsqrt",
            0.15,
        ),  # a bare learning rate means the reference's lr/sqrt(1+t)
        (["--learning-rate", "0.15", "--schedule", "constant"], "constant", 0.15),
        (["--mode", "aggregate"], "constant", 0.2),
    ],
)
def test_schedule_and_learning_rate_defaults(argv: list[str], schedule: str, lr: float) -> None:
    args = build_parser().parse_args(["ps", "--validate-set", "x.csv", *argv])
    plan = build_plan(args)
    assert (plan.schedule, plan.learning_rate) == (schedule, lr)


def test_reference_spellings_are_accepted() -> None:
    ps = build_parser().parse_args(["ps", "--worker-num", "3", "--validate-set", "x.csv"])
    worker = build_parser().parse_args(
        ["worker", "--train-set", "t.csv", "--id", "a", "--host-ip", "10.0.0.1:7"]
    )
    assert ps.workers == 3 and worker.server == "10.0.0.1:7"


def test_a_sealed_key_is_never_used_under_another_federation(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, identities: Path
) -> None:
    """The enclave makes a fresh key per federation file: a checkpoint sealed under one file is
    refused under another (the operator cannot carry a key over to a weaker federation)."""
    import numpy as np

    from homolr.crypto import generate_keypair
    from homolr.enclave import SealedStore
    from homolr.federation import federation_hash, load_federation, render_template
    from homolr.federation import spki_fingerprint as fingerprint
    from homolr.protocol.messages import TrainingPlan
    from homolr.server.checkpoint import Checkpoint, save_checkpoint

    members = []
    for member in ("guest", "host"):
        pem = (identities / f"member-{member}.pem").read_text()
        members.append((member, fingerprint(pem), pem))
    first, second = tmp_path / "first.toml", tmp_path / "second.toml"
    first.write_text(render_template("first", members, features=("x0", "x1")))
    second.write_text(render_template("second", members, features=("x0", "x1")))
    _, private_key = generate_keypair(512, insecure_small_key=True)
    sealed = tmp_path / "sealed"
    save_checkpoint(
        SealedStore(sealed),
        Checkpoint(
            private_key=private_key,
            run_id="run",
            plan=TrainingPlan(n_features=2).validate(),
            next_round=3,
            step=3,
            weights=np.zeros(3),
            workers={"guest": 10, "host": 10},
            tls_identity=None,
            federation_hash=federation_hash(load_federation(first)),
        ),
    )
    validation = tmp_path / "v.csv"
    validation.write_text("y,x0,x1\n1,0.5,0.1\n0,-0.5,0.3\n")
    argv = ["ps", "--federation", str(second), "--validate-set", str(validation)]
    argv += ["--sealed-dir", str(sealed), "--resume", "--attestation", "none", "--insecure"]
    err = _error(capsys, argv)
    assert "belongs to another federation file" in err and "never used under another" in err
