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


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 1
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


def test_tls_needs_a_client_ca_and_an_allow_list(
    capsys: pytest.CaptureFixture[str], csv_file: Path
) -> None:
    err = _error(capsys, ["ps", "--validate-set", str(csv_file), "--attestation", "none"])
    assert "--client-ca" in err and "--allow-workers" in err


def test_worker_tls_needs_its_certificate(
    capsys: pytest.CaptureFixture[str], csv_file: Path
) -> None:
    err = _error(
        capsys, ["worker", "--train-set", str(csv_file), "--id", "a", "--attestation", "none"]
    )
    assert "--cert and --key" in err


def test_worker_attestation_needs_a_readable_identity_and_a_policy(
    capsys: pytest.CaptureFixture[str], csv_file: Path, tmp_path: Path
) -> None:
    err = _error(
        capsys, ["worker", "--train-set", str(csv_file), "--id", "a", "--cert", "c", "--key", "k"]
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
    ]
    assert "give --mrenclave, or --mrsigner" in _error(capsys, base)
    assert "expected 32 bytes" in _error(capsys, [*base, "--mrenclave", "00"])


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


def test_certs_writes_a_ca_and_one_identity_per_worker(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["certs", "--out", str(tmp_path / "pki"), "--workers", "guest,host"]) == 0
    names = sorted(p.name for p in (tmp_path / "pki").iterdir())
    assert names == [
        "ca.key",
        "ca.pem",
        "worker-guest.key",
        "worker-guest.pem",
        "worker-host.key",
        "worker-host.pem",
    ]
    assert (tmp_path / "pki" / "worker-guest.key").stat().st_mode & 0o077 == 0
    assert "--cert" in capsys.readouterr().out
    err = _error(capsys, ["certs", "--out", str(tmp_path / "pki"), "--workers", "guest"])
    assert "exists" in err or "overwrite" in err


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
