"""The commands behind the CLI: turn parsed options into configurations and run them."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from homolr.errors import ConfigError


@dataclass(frozen=True)
class ModeDefaults:
    """Defaults of the options the reference-parity command sets explicitly."""

    iterations: int
    learning_rate: float
    alpha: float
    tolerance: float


#: Tuned on the reference files (see the README's "Accuracy" section for the measurements).
DEFAULTS: dict[str, ModeDefaults] = {
    "encrypted": ModeDefaults(iterations=200, learning_rate=2.0, alpha=0.001, tolerance=1e-4),
    "aggregate": ModeDefaults(iterations=40, learning_rate=0.5, alpha=0.001, tolerance=1e-4),
}

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


def build_plan(args: argparse.Namespace) -> object:
    from homolr.protocol.messages import TrainingPlan, Weighting

    d = DEFAULTS[args.mode]
    workers = args.workers
    min_workers = args.min_workers if args.min_workers is not None else min(2, workers)
    weighting: Weighting = "samples" if args.weighting is None else args.weighting
    return TrainingPlan(
        mode=args.mode,
        iterations=args.iters if args.iters is not None else d.iterations,
        learning_rate=args.learning_rate if args.learning_rate is not None else d.learning_rate,
        schedule=args.schedule,
        alpha=args.alpha if args.alpha is not None else d.alpha,
        init_weight=args.init_weight,
        eval_every=args.eval_every,
        min_workers=min_workers,
        expected_workers=workers,
        round_timeout_s=args.round_timeout,
        weighting=weighting,
        frac_bits=args.frac_bits,
        value_bits=96 if weighting == "samples" else 64,
        batch_size=args.batch_size,
        local_epochs=args.local_epochs,
        tolerance=args.tolerance if args.tolerance is not None else d.tolerance,
        n_features=1,  # replaced by the validation set's count before use
        seed=args.seed,
    )


def ps_command(args: argparse.Namespace) -> int:
    from homolr.protocol.messages import TrainingPlan
    from homolr.server.app import PsConfig, ServerSecurity, run_ps

    _require_dev_security("ps", args)
    plan = build_plan(args)
    assert isinstance(plan, TrainingPlan)
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


__all__ = ["DEFAULTS", "build_plan", "predict_command", "ps_command", "worker_command"]
