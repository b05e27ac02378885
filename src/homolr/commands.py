"""The commands behind the CLI: turn parsed options into configurations and run them."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from homolr.errors import ConfigError
from homolr.protocol.messages import TrainingPlan, Weighting


def mode_defaults(mode: str) -> Mapping[str, float | int | str]:
    """The tuned plan defaults of ``mode`` (measured in homolr.learning.training)."""
    from homolr.learning import AGGREGATE_DEFAULTS, ENCRYPTED_DEFAULTS

    return ENCRYPTED_DEFAULTS if mode == "encrypted" else AGGREGATE_DEFAULTS


INSECURE_WARNING = (
    "WARNING: --insecure: gRPC traffic is NOT encrypted or authenticated (development only)."
)
UNVERIFIED_WARNING = (
    "WARNING: --attestation none: the PS is NOT verified; this worker encrypts for an unattested key "
    "(development only)."
)


def _warn(command: str, text: str) -> None:
    print(f"homolr {command}: {text}", file=sys.stderr, flush=True)


def _require_dev_security(command: str, args: argparse.Namespace) -> None:
    if args.attestation != "none" or not args.insecure:
        raise ConfigError(
            "attested TLS (--attestation dcap without --insecure) needs the enclave deployment; "
            "for development on this machine pass --attestation none --insecure explicitly"
        )
    _warn(command, INSECURE_WARNING)
    if command == "worker":
        _warn(command, UNVERIFIED_WARNING)


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
    from homolr.server.app import PsConfig, ServerSecurity, run_ps

    _require_dev_security("ps", args)
    plan = build_plan(args)
    plan.validate()
    config = PsConfig(
        plan=plan,
        validate_set=args.validate_set,
        host=args.host,
        port=args.port,
        key_bits=args.key_bits,
        out_dir=args.out,
        port_file=args.port_file,
        join_timeout_s=args.join_timeout,
        insecure=args.insecure,
        attestation=args.attestation,
    )
    return run_ps(config, ServerSecurity(attestation_type="none"))


def _target(server: str, port: int | None) -> str:
    if ":" in server.rsplit("]", 1)[-1]:
        return server
    return f"{server}:{port if port is not None else 50051}"


def worker_command(args: argparse.Namespace) -> int:
    from homolr.learning import load_csv
    from homolr.protocol.messages import ServerInfo
    from homolr.worker.loop import run_worker
    from homolr.worker.transport import Connection

    _require_dev_security("worker", args)
    dataset = load_csv(args.train_set)
    target = _target(args.server, args.port)

    def log(text: str) -> None:
        print(f"homolr worker {args.worker_id}: {text}", file=sys.stderr, flush=True)

    def verify(info: ServerInfo) -> None:
        if info.attestation_type != "none":
            raise ConfigError(
                f"the PS offers attestation '{info.attestation_type}' but this worker runs "
                "with --attestation none"
            )

    with Connection(target, retry_budget_s=args.retry_budget) as connection:
        outcome = run_worker(connection, dataset, args.worker_id, verify=verify, log=log)
    log(
        f"done: {outcome.rounds_submitted} rounds submitted, {outcome.rounds_refused} refused, "
        f"{outcome.seconds:.1f} s; PS said: {outcome.reason}"
    )
    return 0


def predict_command(args: argparse.Namespace) -> int:
    from homolr.learning import LogisticModel, load_csv

    model = LogisticModel.load(args.model)
    data = load_csv(args.data)
    proba = model.predict_proba(data.X)[:, 1]
    pred = (proba >= 0.5).astype(int)
    if args.output is not None:
        _write_predictions(args.output, data.ids, proba, pred)
    acc = float(np.mean(pred == data.y))
    print(
        f"{data.n_samples} rows scored with {args.model}: accuracy {acc:.4f} against the file's labels"
    )
    return 0


def _write_predictions(path: Path, ids: object, proba: np.ndarray, pred: np.ndarray) -> None:
    rows = ["id,probability,prediction"]
    id_list = list(ids) if ids is not None else list(range(len(proba)))  # type: ignore[call-overload]
    rows += [f"{i},{p:.6f},{c}" for i, p, c in zip(id_list, proba, pred, strict=True)]
    path.write_text("\n".join(rows) + "\n")


__all__ = [
    "build_plan",
    "mode_defaults",
    "predict_command",
    "ps_command",
    "resolve_schedule",
    "worker_command",
]
