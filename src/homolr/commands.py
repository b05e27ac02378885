"""The commands behind the CLI: turn parsed options into configurations and run them."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from homolr.errors import ConfigError
from homolr.protocol.messages import TrainingPlan, Weighting

if TYPE_CHECKING:
    from homolr.worker.security import WorkerSecurity


def mode_defaults(mode: str) -> Mapping[str, float | int | str]:
    """The tuned plan defaults of ``mode`` (measured in homolr.learning.training)."""
    from homolr.learning import AGGREGATE_DEFAULTS, ENCRYPTED_DEFAULTS

    return ENCRYPTED_DEFAULTS if mode == "encrypted" else AGGREGATE_DEFAULTS


SIMULATED_WARNING = (
    "WARNING: --attestation simulated: synthetic, unsigned quotes for tests; NO attestation at all."
)


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
    """Attestation binds the TLS key into the quote, so it needs TLS: refuse the mix early."""
    if args.insecure and args.attestation != "none":
        raise ConfigError(
            f"--attestation {args.attestation} binds the PS's TLS key into its quote and needs TLS: "
            "drop --insecure (or use --attestation none --insecure for development)"
        )


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from None


def _allow_list(text: str | None) -> tuple[str, ...]:
    from homolr.enclave import validate_worker_id

    if not text:
        return ()
    return tuple(validate_worker_id(w.strip()) for w in text.split(",") if w.strip())


def _pick(args: argparse.Namespace, name: str, defaults: Mapping[str, Any]) -> Any:
    value = getattr(args, name)
    return defaults[name] if value is None else value


def resolve_schedule(args: argparse.Namespace, defaults: Mapping[str, Any]) -> str:
    """The learning-rate schedule: explicit ``--schedule``; else ``invsqrt`` when a learning rate
    was given (what a learning rate means in the reference solution); else the mode's tuned one."""
    if args.schedule is not None:
        return str(args.schedule)
    return "invsqrt" if args.learning_rate is not None else str(defaults["schedule"])


def build_plan(args: argparse.Namespace) -> TrainingPlan:
    """The training plan the options describe (``n_features`` is filled in from the data later)."""
    d = mode_defaults(args.mode)
    workers = args.workers
    weighting: Weighting = _pick(args, "weighting", d)
    return TrainingPlan(
        mode=args.mode,
        iterations=args.iterations if args.iterations is not None else int(d["iterations"]),
        learning_rate=float(_pick(args, "learning_rate", d)),
        schedule=resolve_schedule(args, d),
        alpha=float(_pick(args, "alpha", d)),
        init_weight=float(_pick(args, "init_weight", d)),
        eval_every=args.eval_every,
        min_workers=args.min_workers if args.min_workers is not None else min(2, workers),
        expected_workers=workers,
        round_timeout_s=args.round_timeout,
        weighting=weighting,
        frac_bits=args.frac_bits,
        value_bits=96 if weighting == "samples" else 64,
        batch_size=int(_pick(args, "batch_size", {"batch_size": 64, **d})),
        local_epochs=int(_pick(args, "local_epochs", {"local_epochs": 1, **d})),
        tolerance=float(_pick(args, "tolerance", d)),
        n_features=1,  # replaced by the validation set's count before use
        seed=args.seed,
    )


def ps_command(args: argparse.Namespace) -> int:
    import uuid

    from homolr.crypto import generate_keypair
    from homolr.enclave import SealedStore, generate_server_identity, parse_measurement
    from homolr.server.app import PsConfig, PsKeys, run_ps
    from homolr.server.checkpoint import load_checkpoint
    from homolr.server.security import make_server_security, quote_provider

    _check_security_options(args)
    plan = build_plan(args)
    allowed = _allow_list(args.allow_workers)
    if not args.insecure and (args.client_ca is None or not allowed):
        raise ConfigError(
            "mTLS needs --client-ca (the CA that signed the workers' certificates, see 'homolr certs') "
            "and --allow-workers ID,ID; or pass --insecure for development"
        )
    if args.resume and args.sealed_dir is None:
        raise ConfigError("--resume needs --sealed-dir (where the checkpoint is)")
    _security_warnings("ps", args)
    store = SealedStore(args.sealed_dir) if args.sealed_dir is not None else None
    resume = load_checkpoint(store) if store is not None and args.resume else None
    if args.resume and resume is None:
        _warn("ps", f"--resume: no checkpoint in {args.sealed_dir}; starting a new run")
    if resume is not None:
        tls = resume.tls_identity or (None if args.insecure else generate_server_identity())
        keys = PsKeys(resume.private_key, resume.run_id, None if args.insecure else tls)
    else:
        _, private_key = generate_keypair(args.key_bits)
        keys = PsKeys(
            private_key, uuid.uuid4().hex, None if args.insecure else generate_server_identity()
        )
    simulated = parse_measurement("--mrenclave", args.mrenclave) or bytes(32)
    security = make_server_security(
        public_key=keys.private_key.public_key,
        provider=quote_provider(args.attestation, args.attestation_dir, simulated),
        attestation=args.attestation,
        tls_identity=keys.tls_identity,
        client_ca_pem=None if args.insecure else _read(args.client_ca, "--client-ca"),
        allowed_workers=allowed,
    )
    config = PsConfig(
        plan=plan,
        validate_set=args.validate_set,
        host=args.host,
        port=args.port,
        key_bits=args.key_bits,
        out_dir=args.out,
        port_file=args.port_file,
        join_timeout_s=args.join_timeout,
    )
    return run_ps(config, keys, security, store=store, resume=resume)


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
                "mTLS needs --cert and --key (this worker's certificate, see 'homolr certs'); "
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
    from homolr.learning import load_csv
    from homolr.protocol.messages import ServerInfo
    from homolr.worker.loop import run_worker
    from homolr.worker.security import open_connection, verify_server

    security = _worker_security(args)
    _security_warnings("worker", args)
    dataset = load_csv(args.train_set)
    target = _target(args.server, args.port)

    def log(text: str) -> None:
        print(f"homolr worker {args.worker_id}: {text}", file=sys.stderr, flush=True)

    connection, pinned = open_connection(target, security, retry_budget_s=args.retry_budget)

    def verify(info: ServerInfo) -> None:
        log(verify_server(info, pinned, security))

    with connection:
        outcome = run_worker(connection, dataset, args.worker_id, verify=verify, log=log)
    log(
        f"done: {outcome.rounds_submitted} rounds submitted, {outcome.rounds_refused} refused, "
        f"{outcome.seconds:.1f} s; PS said: {outcome.reason}"
    )
    return 0


def certs_command(args: argparse.Namespace) -> int:
    from homolr.enclave import write_dev_pki

    workers = _allow_list(args.workers)
    if not workers:
        raise ConfigError("--workers needs at least one worker id, e.g. --workers guest,host")
    pki = write_dev_pki(args.out, workers, days=args.days, overwrite=args.overwrite)
    print(
        f"development CA: {pki.ca_certificate_path} (key {pki.ca_private_key_path}; keep it offline)"
    )
    for worker_id, creds in sorted(pki.workers.items()):
        print(f"worker {worker_id}: --cert {creds.certificate_path} --key {creds.private_key_path}")
    return 0


def predict_command(args: argparse.Namespace) -> int:
    from homolr.learning import LogisticModel, load_unlabelled_csv

    model = LogisticModel.load(args.model)
    data = load_unlabelled_csv(args.data)
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


__all__ = [
    "build_plan",
    "certs_command",
    "mode_defaults",
    "predict_command",
    "ps_command",
    "resolve_schedule",
    "worker_command",
]
