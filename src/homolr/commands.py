"""The commands behind the CLI: turn parsed options into configurations and run them."""

from __future__ import annotations

import argparse
import hashlib
import sys
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from homolr.errors import ConfigError, ExitCode
from homolr.federation.plan import OVERRIDES
from homolr.protocol.messages import TrainingPlan

if TYPE_CHECKING:
    from homolr.federation import Federation
    from homolr.worker.security import WorkerSecurity

SIMULATED_WARNING = (
    "WARNING: --attestation simulated: synthetic, unsigned quotes for tests; NO attestation at all."
)
#: ``homolr ps`` options that change the training plan (refused with a federation in production):
#: those that override a federation file's plan, and the open membership's size.
PLAN_OPTIONS = ("workers", *OVERRIDES)


def _warn(command: str, text: str) -> None:
    print(f"homolr {command}: {text}", file=sys.stderr, flush=True)


def _security_warnings(command: str, args: argparse.Namespace) -> None:
    from homolr.enclave import INSECURE_TRANSPORT_WARNING, NO_ATTESTATION_WARNING

    if args.insecure:
        _warn(command, INSECURE_TRANSPORT_WARNING)
    if args.attestation == "none":
        _warn(command, NO_ATTESTATION_WARNING)
    if args.attestation == "simulated":
        _warn(command, SIMULATED_WARNING)


def _check_security_options(args: argparse.Namespace) -> None:
    """Attestation binds the TLS key into the quote, so it needs TLS; members are named by the
    federation file, so TLS and attestation need one."""
    if args.insecure and args.attestation != "none":
        raise ConfigError(
            f"--attestation {args.attestation} binds the PS's TLS key into its quote and needs TLS: "
            "drop --insecure (or use --attestation none --insecure for development)"
        )
    if args.federation is None and not (args.insecure and args.attestation == "none"):
        raise ConfigError(
            "--federation is required: it names the members and the plan, and the enclave's quote "
            "binds its hash (only '--attestation none --insecure' development runs go without one)"
        )


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from None


# ---------------------------------------------------------------------------------- plans


def mode_defaults(mode: str) -> Mapping[str, float | int | str]:
    """The tuned plan defaults of ``mode`` (measured in homolr.learning.training)."""
    from homolr.learning import AGGREGATE_DEFAULTS, ENCRYPTED_DEFAULTS

    return ENCRYPTED_DEFAULTS if mode == "encrypted" else AGGREGATE_DEFAULTS


def resolve_schedule(args: argparse.Namespace, defaults: Mapping[str, Any]) -> str:
    """The learning-rate schedule: explicit ``--schedule``; else ``invsqrt`` when a learning rate
    was given (what a learning rate means in the reference solution); else the mode's tuned one."""
    if args.schedule is not None:
        return str(args.schedule)
    return "invsqrt" if args.learning_rate is not None else str(defaults["schedule"])


def build_plan(args: argparse.Namespace) -> TrainingPlan:
    """The development plan the options describe (open membership, no federation file)."""
    mode = args.mode or "encrypted"
    d = {"batch_size": 64, "local_epochs": 2, "eval_every": 10, **mode_defaults(mode)}
    workers = args.workers if args.workers is not None else 2
    min_workers = args.min_workers if args.min_workers is not None else workers
    participation = args.participation or ("quorum" if min_workers < workers else "all")

    def pick(name: str) -> Any:
        value = getattr(args, name)
        return d[name] if value is None else value

    return TrainingPlan(
        mode=mode,  # type: ignore[arg-type]
        iterations=int(pick("iterations")),
        learning_rate=float(pick("learning_rate")),
        schedule=resolve_schedule(args, d),
        alpha=float(pick("alpha")),
        init_weight=float(pick("init_weight")),
        eval_every=int(pick("eval_every")),
        min_workers=min_workers if participation == "quorum" else workers,
        expected_workers=workers,
        participation=participation,  # type: ignore[arg-type]
        round_timeout_s=args.round_timeout if args.round_timeout is not None else 60.0,
        first_round_timeout_s=(
            args.first_round_timeout if args.first_round_timeout is not None else 300.0
        ),
        weighting=pick("weighting"),
        frac_bits=args.frac_bits if args.frac_bits is not None else 24,
        batch_size=int(pick("batch_size")),
        local_epochs=int(pick("local_epochs")),
        tolerance=float(pick("tolerance")),
        n_features=1,  # replaced by the validation set's count before use
        seed=args.seed if args.seed is not None else 0,
        key_bits=args.key_bits or 2048,
        standardize=bool(args.standardize),
    )


def _given_plan_options(args: argparse.Namespace) -> list[str]:
    return [f"--{name.replace('_', '-')}" for name in PLAN_OPTIONS if getattr(args, name, None)]


def _federation_with_overrides(federation: Federation, args: argparse.Namespace) -> Federation:
    """Development only: plan options given on the command line replace the file's values."""
    from homolr.federation import override_plan

    given = _given_plan_options(args)
    if not given:
        return federation
    if args.attestation != "none":
        raise ConfigError(
            f"{', '.join(given)}: with a federation file the PS takes its whole plan from the file "
            "(the quote binds it); edit the file instead (plan options only override it in "
            "development, with --attestation none)"
        )
    _warn(
        "ps",
        f"WARNING: {', '.join(given)} override the federation file: members holding the file "
        "will refuse this PS (development only)",
    )
    values = {name: getattr(args, name) for name in PLAN_OPTIONS if getattr(args, name, None)}
    return override_plan(federation, values)


# -------------------------------------------------------------------------------- init, keygen


def init_command(args: argparse.Namespace) -> int:
    from homolr.federation import (
        check_member_certificate,
        parse_federation,
        render_template,
        set_plan_values,
        spki_fingerprint,
    )

    if args.out.exists() and not args.force:
        raise ConfigError(f"{args.out} exists; pass --force to overwrite it")
    members = []
    for path in args.members:
        pem = _read(Path(path), "--member certificate").decode("ascii", errors="replace")
        member_id = _member_id_of(pem, path)
        check_member_certificate(pem, member_id)
        members.append((member_id, spki_fingerprint(pem), pem))
    features = (
        _feature_names(args.features_from)
        if args.features_from is not None
        else tuple(f"x{i}" for i in range(30))
    )
    text = render_template(args.name, members, features=features)
    plan = {key: getattr(args, key) for key in ("mode", "iterations") if getattr(args, key)}
    text = set_plan_values(text, plan)
    if len(members) >= 2:
        parse_federation(text, str(args.out))  # what we write must load
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}: review every value with the consortium, then share it out of band")
    if len(members) < 2:
        print("add each member's [[members]] block (printed by 'homolr keygen') before use")
    return 0


def _feature_names(path: Path) -> tuple[str, ...]:
    """The feature columns of a CSV header (every column but ``id`` and ``y``)."""
    import csv

    try:
        with path.open(newline="", encoding="utf-8") as handle:
            header = next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"--features-from {path}: cannot read its CSV header ({exc})") from None
    return tuple(name.strip() for name in header if name.strip() not in ("id", "y", ""))


def _member_id_of(certificate_pem: str, path: Path) -> str:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        certificate = x509.load_pem_x509_certificate(certificate_pem.encode())
        names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return str(names[0].value)
    except (ValueError, IndexError):
        raise ConfigError(f"{path}: not a member certificate from 'homolr keygen'") from None


def keygen_command(args: argparse.Namespace) -> int:
    from homolr.enclave.identity import generate_member_identity, write_member_identity
    from homolr.federation import federation_member_snippet

    identity = generate_member_identity(args.member_id)
    cert_path, key_path = write_member_identity(
        identity, args.out, args.member_id, overwrite=args.force
    )
    print(f"private key: {key_path} (mode 0600; it never leaves this machine)")
    print(f"certificate: {cert_path}")
    print(f"fingerprint: {identity.fingerprint}")
    print("\nSend this block to the consortium for the federation file:\n")
    print(
        federation_member_snippet(
            args.member_id, identity.certificate_pem.decode(), identity.fingerprint
        )
    )
    return 0


# ---------------------------------------------------------------------------------------- ps


def _run_dir(args: argparse.Namespace, run_id: str) -> Path:
    """``--out`` or ``runs/<UTC time>-<run id>``; a directory holding a finished run is refused
    unless ``--overwrite`` (or ``--resume``, which continues the run there)."""
    if args.out is None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        return Path("runs") / f"{stamp}-{run_id[:8]}"
    out = Path(args.out)
    if (out / "model.json").exists() and not (args.overwrite or args.resume):
        raise ConfigError(
            f"{out} already holds a finished run (model.json); choose another --out, or pass "
            "--overwrite to replace it"
        )
    if args.overwrite:
        for name in ("model.json", "metrics.jsonl", "validation_scores.csv"):
            (out / name).unlink(missing_ok=True)
    return out


def ps_command(args: argparse.Namespace) -> int:
    from homolr.crypto import generate_keypair
    from homolr.enclave import SealedStore, generate_server_identity, parse_measurement
    from homolr.federation import (
        canonical_bytes,
        federation_hash,
        federation_hash_hex,
        load_federation,
        plan_from_federation,
    )
    from homolr.server.app import PsConfig, PsKeys, run_ps
    from homolr.server.checkpoint import load_checkpoint
    from homolr.server.security import make_server_security, quote_provider

    _check_security_options(args)
    if args.resume and args.sealed_dir is None:
        raise ConfigError("--resume needs --sealed-dir (where the checkpoint is)")
    check_port_free(args.host, args.port)
    federation = None
    if args.federation is not None:
        federation = _federation_with_overrides(load_federation(args.federation), args)
        plan = plan_from_federation(federation)
        _check_validation_file(args.validate_set, federation.validation.sha256)
    else:
        plan = build_plan(args)
    _security_warnings("ps", args)
    fed_hash = federation_hash(federation) if federation is not None else b""
    store = SealedStore(args.sealed_dir) if args.sealed_dir is not None else None
    resume = load_checkpoint(store) if store is not None and args.resume else None
    if args.resume and resume is None:
        _warn("ps", f"--resume: no checkpoint in {args.sealed_dir}; starting a new run")
    if resume is not None:
        if resume.federation_hash != fed_hash:
            raise ConfigError(
                f"the checkpoint in {args.sealed_dir} belongs to another federation file "
                f"(sha256 {resume.federation_hash.hex()[:16] or 'none'}...); its key is never used "
                "under another file. Start the new federation with another --sealed-dir."
            )
        tls = resume.tls_identity or (None if args.insecure else generate_server_identity())
        keys = PsKeys(resume.private_key, resume.run_id, None if args.insecure else tls)
    else:
        _, private_key = generate_keypair(plan.key_bits)
        keys = PsKeys(
            private_key, uuid.uuid4().hex, None if args.insecure else generate_server_identity()
        )
    simulated = parse_measurement("--mrenclave", args.mrenclave) or bytes(32)
    identify = None
    roots = None
    if federation is not None and not args.insecure:
        from homolr.enclave.identity import member_trust_bundle, peer_member_id

        fed = federation
        roots = member_trust_bundle(fed)

        def identify(context: Mapping[str, object]) -> str:
            return peer_member_id(context, fed)

    security = make_server_security(
        public_key=keys.private_key.public_key,
        provider=quote_provider(args.attestation, args.attestation_dir, simulated),
        attestation=args.attestation,
        tls_identity=keys.tls_identity,
        federation_hash=fed_hash,
        client_roots=roots,
        identify=identify,
    )
    if federation is not None:
        _warn(
            "ps",
            f"federation '{federation.name}' sha256:{federation_hash_hex(federation)}; members: "
            + ", ".join(f"{m.id} ({m.fingerprint[:19]}...)" for m in federation.members),
        )
    join_timeout = args.join_timeout
    if join_timeout is None:
        join_timeout = federation.deadlines.join_s if federation is not None else 300.0
    out = _run_dir(args, keys.run_id)
    config = PsConfig(
        plan=plan,
        validate_set=args.validate_set,
        host=args.host,
        port=args.port,
        out_dir=out,
        port_file=args.port_file,
        join_timeout_s=join_timeout,
        members=frozenset(federation.member_ids) if federation is not None else None,
        federation=canonical_bytes(federation) if federation is not None else b"",
        federation_hash=fed_hash,
        federation_name=federation.name if federation is not None else "",
        label=federation.validation.label if federation is not None else "y",
    )
    return run_ps(config, keys, security, store=store, resume=resume)


def check_port_free(host: str, port: int) -> None:
    """Fail fast, in one line, when the PS could not listen (before keys are generated, and before
    gRPC would print its own error)."""
    import socket

    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"--host {host}: cannot resolve it ({exc.strerror})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {host}:{port}: {exc.strerror} (another process holds the port? "
                "choose another with --port, or --port 0 for any free port)"
            ) from None


def _check_validation_file(path: Path, pinned: str) -> None:
    if not pinned:
        return
    digest = hashlib.sha256(_read(path, "--validate-set")).hexdigest()
    if digest != pinned.lower():
        raise ConfigError(
            f"{path} has SHA-256 {digest}; the federation file pins validation.sha256 = {pinned}"
        )


# ------------------------------------------------------------------------------------ worker


def _target(server: str, port: int | None) -> str:
    if ":" in server.rsplit("]", 1)[-1]:
        return server
    return f"{server}:{port if port is not None else 50051}"


def _worker_security(args: argparse.Namespace) -> WorkerSecurity:
    from homolr.enclave import AttestationPolicy, DcapVerifier, SimulatedQuoteVerifier
    from homolr.worker.security import ClientIdentity, WorkerSecurity

    _check_security_options(args)
    identity = None
    if not args.insecure:
        if args.cert is None or args.key is None:
            raise ConfigError(
                "mutual TLS needs --cert and --key (this member's own pair, from 'homolr keygen'); "
                "or pass --insecure for development"
            )
        identity = ClientIdentity(_read(args.cert, "--cert"), _read(args.key, "--key"))
    if args.attestation == "none":
        return WorkerSecurity(identity, None, None)
    policy = AttestationPolicy.from_strings(
        mrenclave=args.mrenclave or None,
        mrsigner=args.mrsigner or None,
        isv_prod_id=args.isv_prod_id,
        min_isv_svn=args.min_isv_svn,
        allow_debug=args.allow_debug,
    )
    verifier = (
        SimulatedQuoteVerifier()
        if args.attestation == "simulated"
        else DcapVerifier(allow_outdated_tcb=args.allow_outdated_tcb)
    )
    return WorkerSecurity(identity, policy, verifier)


def worker_command(args: argparse.Namespace) -> int:
    from homolr.crypto import PublicKey
    from homolr.federation import load_federation
    from homolr.learning import load_csv
    from homolr.protocol.messages import ServerInfo
    from homolr.worker.loop import check_server_info, run_worker
    from homolr.worker.replay import ReplayGuard
    from homolr.worker.security import check_membership, open_connection, verify_server
    from homolr.worker.transport import Connection

    def log(text: str) -> None:
        print(f"homolr worker {args.worker_id}: {text}", file=sys.stderr, flush=True)

    security = _worker_security(args)
    federation = load_federation(args.federation) if args.federation is not None else None
    if federation is not None:
        check_membership(federation, args.worker_id, security)
    _security_warnings("worker", args)
    features = federation.validation.features if federation is not None else None
    label = federation.validation.label if federation is not None else "y"
    dataset = load_csv(args.train_set, features=features, label=label)
    for warning in _data_warnings(dataset):
        log(f"warning: {warning}")
    target = _target(args.server, args.port)
    connection, pinned = open_connection(
        target, security, retry_budget_s=args.retry_budget, log=log
    )

    def verify(info: ServerInfo) -> PublicKey:
        log(verify_server(info, pinned, security, federation))
        return check_server_info(info, dataset, federation)

    def guard_for(info: ServerInfo, public_key: PublicKey) -> ReplayGuard:
        return ReplayGuard(
            args.state_dir,
            args.worker_id,
            hashlib.sha256(info.federation).digest() if info.federation else b"",
            public_key.fingerprint(),
        )

    with connection:
        assert isinstance(connection, Connection)
        outcome = run_worker(
            connection, dataset, args.worker_id, verify=verify, guard_for=guard_for, log=log
        )
    log(
        f"done: {outcome.rounds_submitted} rounds submitted, {outcome.rounds_refused} refused, "
        f"{outcome.seconds:.1f} s; the PS said: {outcome.reason}"
    )
    return int(ExitCode.OK)


def _data_warnings(dataset: Any) -> list[str]:
    from homolr.learning import data_warnings

    return list(data_warnings(dataset))


# ---------------------------------------------------------------------- predict, report, export


def predict_command(args: argparse.Namespace) -> int:
    from homolr.learning import LogisticModel, load_unlabelled_csv

    model = LogisticModel.load(args.model)
    data = load_unlabelled_csv(args.data, features=list(model.feature_names_in_), ignore_extra=True)
    if data.ignored_columns:
        _warn("predict", f"ignored columns not in the model: {', '.join(data.ignored_columns)}")
    proba = model.predict_proba(data.X)[:, 1]
    pred = (proba >= 0.5).astype(int)
    if args.output is not None:
        _write_predictions(args.output, data.ids, proba, pred)
    summary = f"{data.n_samples} rows scored with {args.model}"
    if data.y.size:
        summary += f": accuracy {float(np.mean(pred == data.y)):.4f} against the file's labels"
    print(summary + (f"; predictions in {args.output}" if args.output is not None else ""))
    return 0


def _write_predictions(path: Path, ids: object, proba: np.ndarray, pred: np.ndarray) -> None:
    rows = ["id,probability,prediction"]
    id_list = list(ids) if ids is not None else list(range(len(proba)))  # type: ignore[call-overload]
    rows += [f"{i},{p:.6f},{c}" for i, p, c in zip(id_list, proba, pred, strict=True)]
    path.write_text("\n".join(rows) + "\n")


def example_data_command(args: argparse.Namespace) -> int:
    from homolr.learning.breast_homo import write_breast_homo

    paths = write_breast_homo(args.out, raw=args.raw)
    kind = "raw measurements" if args.raw else "standardised features"
    for path in paths:
        print(f"wrote {path}")
    print(
        f"breast_homo split ({kind}): the FATE example data the reference solution uses, rebuilt "
        "from scikit-learn's copy of the Wisconsin data (see examples/breast_homo/README.md)"
    )
    return 0


def report_command(args: argparse.Namespace) -> int:
    from homolr.report import write_report

    paths = write_report(args.run_dir)
    print(f"report: {paths.html}")
    for png in paths.figures:
        print(f"figure: {png}")
    return 0


def export_command(args: argparse.Namespace) -> int:
    from homolr.learning import LogisticModel, export_onnx

    model = LogisticModel.load(args.model)
    export_onnx(model, args.output)
    print(f"wrote {args.output}")
    return 0


def bench_command(args: argparse.Namespace) -> int:
    import runpy

    root = Path(__file__).resolve().parents[2]
    script = root / "benchmarks" / f"bench_{args.what}.py"
    if not script.is_file():
        raise ConfigError(
            "'homolr bench' runs the benchmarks of a source checkout: clone the repository and "
            f"run 'make bench' there (no {script.relative_to(root)} beside this installation)"
        )
    from importlib.util import find_spec

    if find_spec("phe") is None:  # the benchmarks' peer (GPL): looked up, never imported here
        raise ConfigError(
            "the benchmarks compare against python-paillier: install the test tools first "
            "('make test' does, or pip install -e '.[dev]')"
        )
    sys.argv = [str(script), *args.args]
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


__all__ = [
    "build_plan",
    "init_command",
    "keygen_command",
    "mode_defaults",
    "predict_command",
    "ps_command",
    "report_command",
    "resolve_schedule",
    "worker_command",
]
