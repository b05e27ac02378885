"""Command-line entry points: ``homolr ps | worker | demo | predict | certs | bench``.

Every expected failure (bad option, bad file, unreachable peer, failed attestation) is printed as one
``homolr <command>: error: ...`` line with exit status 1 (2 for usage errors), never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from homolr.errors import ConfigError, HomolrError

KEY_BITS = (2048, 3072, 4096)


def _add_ps(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from homolr.learning import SCHEDULES
    from homolr.protocol.messages import MODES

    p = sub.add_parser("ps", help="run the parameter server (model owner; key holder)")
    p.add_argument(
        "--workers",
        "--worker-num",
        dest="workers",
        type=int,
        default=2,
        help="number of workers expected (default 2)",
    )
    p.add_argument(
        "--min-workers",
        type=int,
        default=None,
        help="fewest workers whose sum may be decrypted (default: min(2, workers); never < 2)",
    )
    p.add_argument(
        "--validate-set",
        "--validation-set",
        dest="validate_set",
        type=Path,
        required=True,
        help="CSV (id,y,x0..) the PS evaluates the global model on",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument(
        "--port", type=int, default=50051, help="port (0 = any free port; see --port-file)"
    )
    p.add_argument("--port-file", type=Path, help="write the bound port to this file")
    p.add_argument(
        "--key-bits", type=int, choices=KEY_BITS, default=2048, help="Paillier modulus size"
    )
    p.add_argument(
        "--mode",
        choices=MODES,
        default="encrypted",
        help="encrypted: workers train on Enc(w) (default); aggregate: secure aggregation",
    )
    p.add_argument(
        "--iters",
        "--iterations",
        dest="iterations",
        type=int,
        default=None,
        help="rounds (default: 400 encrypted, 100 aggregate)",
    )
    p.add_argument(
        "--learning-rate",
        type=float,
        default=None,
        help="learning rate (default: 0.3 encrypted, 0.2 aggregate)",
    )
    p.add_argument(
        "--schedule",
        choices=SCHEDULES,
        default=None,
        help="learning-rate schedule: invsqrt (lr/sqrt(1+t), the reference), constant, inverse "
        "(default: constant; invsqrt when --learning-rate is given, as in the reference)",
    )
    p.add_argument(
        "--alpha",
        type=float,
        default=None,
        help="L2 strength (default: 0.01 encrypted, 0.003 aggregate)",
    )
    p.add_argument(
        "--init-weight", type=float, default=None, help="initial value of every weight (default 0)"
    )
    p.add_argument(
        "--eval-every", type=int, default=10, help="evaluate and print every N iterations"
    )
    weighting = p.add_mutually_exclusive_group()
    weighting.add_argument(
        "--equal-weights",
        dest="weighting",
        action="store_const",
        const="equal",
        help="average workers equally (the reference; default in encrypted mode)",
    )
    weighting.add_argument(
        "--sample-weights",
        dest="weighting",
        action="store_const",
        const="samples",
        help="weight workers by their sample counts (default in aggregate mode)",
    )
    p.add_argument(
        "--frac-bits", type=int, default=24, help="fixed-point fractional bits (default 24)"
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="aggregate mode: mini-batch size (default 64; 0 = full batch)",
    )
    p.add_argument(
        "--local-epochs",
        type=int,
        default=None,
        help="aggregate mode: local epochs per round (default 2)",
    )
    p.add_argument(
        "--tolerance",
        type=float,
        default=None,
        help="stop when no weight moves more than this in a round (default 0 = run all rounds)",
    )
    p.add_argument(
        "--round-timeout", type=float, default=60.0, help="seconds a round waits for workers"
    )
    p.add_argument(
        "--join-timeout", type=float, default=300.0, help="seconds to wait for workers to join"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the workers' mini-batch shuffles")
    p.add_argument("--out", type=Path, help="directory for metrics.jsonl and model.json")
    _add_security(p, server=True)


def _add_worker(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("worker", help="run a worker (data owner)")
    p.add_argument("--train-set", type=Path, required=True, help="local training CSV (id,y,x0..)")
    p.add_argument("--id", dest="worker_id", required=True, help="this worker's id")
    p.add_argument(
        "--server",
        "--host-ip",
        dest="server",
        default="127.0.0.1:50051",
        help="PS address HOST:PORT (default 127.0.0.1:50051)",
    )
    p.add_argument(
        "--port", type=int, default=None, help="PS port when --server/--host-ip has none"
    )
    p.add_argument(
        "--retry-budget",
        type=float,
        default=60.0,
        help="seconds to keep retrying an unreachable PS",
    )
    _add_security(p, server=False)


def _add_security(p: argparse.ArgumentParser, *, server: bool) -> None:
    p.add_argument(
        "--attestation",
        choices=("dcap", "simulated", "none"),
        default="dcap",
        help="dcap: SGX quote via Gramine (default); none: development mode, must be chosen "
        "explicitly; simulated: synthetic unsigned quotes, for tests only",
    )
    p.add_argument(
        "--insecure",
        action="store_true",
        help="plaintext gRPC instead of mutual TLS (development only; prints a warning)",
    )
    p.add_argument(
        "--mrenclave", help="hex MRENCLAVE the PS must have (worker policy; simulated PS identity)"
    )
    if server:
        p.add_argument(
            "--attestation-dir",
            type=Path,
            default=Path("/dev/attestation"),
            help="Gramine's attestation interface (default /dev/attestation)",
        )
        p.add_argument(
            "--client-ca", type=Path, help="CA certificate that signed the workers' certificates"
        )
        p.add_argument("--allow-workers", help="comma-separated worker ids allowed to take part")
        p.add_argument(
            "--sealed-dir",
            type=Path,
            help="checkpoint directory (an encrypted mount sealed to MRENCLAVE in SGX)",
        )
        p.add_argument(
            "--resume",
            action="store_true",
            help="continue from the checkpoint in --sealed-dir if there is one",
        )
        return
    p.add_argument("--cert", type=Path, help="this worker's client certificate (PEM)")
    p.add_argument("--key", type=Path, help="this worker's private key (PEM)")
    p.add_argument("--mrsigner", help="hex MRSIGNER the PS must have (with --isv-prod-id)")
    p.add_argument("--isv-prod-id", type=int, help="ISVPRODID the PS must have (with --mrsigner)")
    p.add_argument("--min-isv-svn", type=int, help="lowest ISVSVN accepted (with --mrsigner)")
    p.add_argument(
        "--allow-debug", action="store_true", help="accept a debug enclave (never in production)"
    )
    p.add_argument(
        "--allow-outdated-tcb",
        action="store_true",
        help="accept DCAP verdicts that ask for a TCB update (e.g. OUT_OF_DATE)",
    )


def _add_certs(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("certs", help="create a development CA and worker client certificates")
    p.add_argument(
        "--out", type=Path, required=True, help="directory for ca.pem and worker-<id>.pem/.key"
    )
    p.add_argument("--workers", required=True, help="comma-separated worker ids, e.g. guest,host")
    p.add_argument("--days", type=int, default=365, help="validity in days")
    p.add_argument("--overwrite", action="store_true", help="replace an existing CA in --out")


def _add_demo(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="one PS and two workers on loopback with a breast-cancer split")
    p.add_argument("--mode", choices=("encrypted", "aggregate"), default="encrypted")
    p.add_argument(
        "--out", type=Path, default=Path("runs/demo"), help="where data, logs and model go"
    )
    p.add_argument("--iters", type=int, default=None, help="rounds (default: the PS's default)")
    p.add_argument("--key-bits", type=int, choices=KEY_BITS, default=2048)


def _add_predict(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("predict", help="score a CSV with a trained model.json")
    p.add_argument(
        "--model", type=Path, required=True, help="model.json written by homolr ps --out"
    )
    p.add_argument(
        "--data", type=Path, required=True, help="CSV with the model's features (y optional)"
    )
    p.add_argument("--output", type=Path, help="write id,probability,prediction rows here")


def _add_bench(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("bench", help="run a benchmark from benchmarks/ (needs the source tree)")
    p.add_argument("what", choices=("crypto", "training"))
    p.add_argument("args", nargs=argparse.REMAINDER, help="passed to the benchmark (e.g. --json)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="homolr", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_ps, _add_worker, _add_demo, _add_predict, _add_certs, _add_bench):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
        "ps": _cmd_ps,
        "worker": _cmd_worker,
        "demo": _cmd_demo,
        "predict": _cmd_predict,
        "certs": _cmd_certs,
        "bench": _cmd_bench,
    }
    try:
        return handlers[args.command](args)
    except HomolrError as exc:
        print(f"homolr {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"homolr {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"homolr {args.command}: interrupted", file=sys.stderr)
        return 130


def _cmd_ps(args: argparse.Namespace) -> int:
    from homolr.commands import ps_command

    return ps_command(args)


def _cmd_worker(args: argparse.Namespace) -> int:
    from homolr.commands import worker_command

    return worker_command(args)


def _cmd_demo(args: argparse.Namespace) -> int:
    from homolr.demo import run_demo

    return run_demo(args.out, mode=args.mode, iters=args.iters, key_bits=args.key_bits)


def _cmd_predict(args: argparse.Namespace) -> int:
    from homolr.commands import predict_command

    return predict_command(args)


def _cmd_certs(args: argparse.Namespace) -> int:
    from homolr.commands import certs_command

    return certs_command(args)


def _cmd_bench(args: argparse.Namespace) -> int:
    import runpy

    root = Path(__file__).resolve().parents[2]
    script = root / "benchmarks" / f"bench_{args.what}.py"
    if not script.is_file():
        raise ConfigError(
            f"{script} not found: 'homolr bench' runs from a source checkout of homolr"
        )
    sys.argv = [str(script), *args.args]
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
