"""Command-line entry points: ``homolr init | keygen | ps | worker | demo | predict | example-data |
report | export | bench``.

Every expected failure (bad option, bad file, unreachable peer, failed attestation, a run that did
not complete) is printed as one ``homolr <command>: error: ...`` line, never a traceback, and the
exit status says which kind of failure it was (:class:`homolr.errors.ExitCode`, the same for the PS
and the workers).
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

from homolr.errors import EXIT_CODES_HELP, ExitCode, HomolrError, Interrupted

KEY_BITS = (2048, 3072, 4096)
DEFAULT_PORT = 50051


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows every default that is a value (not None / False), keeps the epilog's lines."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in text:
            return text
        return super()._get_help_string(action) or text


def _parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, text: str
) -> argparse.ArgumentParser:
    return sub.add_parser(
        name, help=text, description=text, formatter_class=_Formatter, epilog=EXIT_CODES_HELP
    )


def _add_init(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = _parser(sub, "init", "write a commented federation.toml template for a consortium")
    p.add_argument("--out", type=Path, default=Path("federation.toml"), help="file to write")
    p.add_argument("--name", default="my-federation", help="the federation's name")
    p.add_argument(
        "--member",
        dest="members",
        action="append",
        default=[],
        metavar="CERT.pem",
        help="a member's certificate from 'homolr keygen' (repeat for each member)",
    )
    p.add_argument(
        "--features-from",
        type=Path,
        help="a CSV whose header gives the feature names (default: x0..x29)",
    )
    p.add_argument(
        "--mode", choices=("encrypted", "aggregate"), help="plan.mode (default: encrypted)"
    )
    p.add_argument("--iterations", type=int, help="plan.iterations (default: the mode's)")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")


def _add_keygen(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = _parser(
        sub,
        "keygen",
        "make this member's key pair and self-signed certificate (run it on the member's machine)",
    )
    p.add_argument("--id", dest="member_id", required=True, help="the member's id, e.g. guest")
    p.add_argument("--out", type=Path, default=Path("."), help="directory for the key pair")
    p.add_argument("--force", action="store_true", help="replace an existing key")


def _add_ps(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from homolr.learning import SCHEDULES
    from homolr.protocol.messages import MODES, PARTICIPATIONS

    p = _parser(sub, "ps", "run the parameter server (key holder; inside the SGX enclave)")
    p.add_argument(
        "--federation",
        type=Path,
        help="the federation file (required unless --attestation none --insecure)",
    )
    p.add_argument(
        "--validate-set",
        "--validation-set",
        dest="validate_set",
        type=Path,
        required=True,
        help="CSV the PS evaluates the global model on (columns matched by name)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (0 = any free port)")
    p.add_argument("--port-file", type=Path, help="write the bound port to this file")
    p.add_argument("--out", type=Path, help="run directory (default: runs/<UTC time>-<run id>)")
    p.add_argument(
        "--overwrite", action="store_true", help="reuse an --out that holds a finished run"
    )
    p.add_argument(
        "--join-timeout",
        type=float,
        default=None,
        help="seconds to wait for the members to join (default: the federation's, else 300)",
    )
    plan = p.add_argument_group(
        "training plan (development only: with a federation file the plan is the file's, and "
        "these flags are refused unless --attestation none)"
    )
    plan.add_argument("--mode", choices=MODES, default=None, help="default: encrypted")
    plan.add_argument(
        "--workers",
        "--worker-num",
        dest="workers",
        type=int,
        default=None,
        help="members expected, open membership (default: 2)",
    )
    plan.add_argument(
        "--min-workers",
        type=int,
        default=None,
        help="fewest members whose sum may be decrypted; below --workers it means quorum",
    )
    plan.add_argument(
        "--participation",
        choices=PARTICIPATIONS,
        default=None,
        help="all: every member in every round (default); quorum: at least --min-workers",
    )
    plan.add_argument("--key-bits", type=int, choices=KEY_BITS, default=None, help="default: 2048")
    plan.add_argument(
        "--iters",
        "--iterations",
        dest="iterations",
        type=int,
        default=None,
        help="steps (default: 400 encrypted, 100 aggregate)",
    )
    plan.add_argument(
        "--learning-rate",
        type=float,
        default=None,
        help="default: 0.3 encrypted, 0.2 aggregate",
    )
    plan.add_argument(
        "--schedule",
        choices=SCHEDULES,
        default=None,
        help="invsqrt: lr/sqrt(1+t), the reference; constant; inverse (default: constant; "
        "invsqrt when --learning-rate is given, as in the reference)",
    )
    plan.add_argument(
        "--alpha", type=float, default=None, help="L2 strength (default: 0.01 / 0.003)"
    )
    plan.add_argument(
        "--init-weight", type=float, default=None, help="initial weights (default: 0)"
    )
    plan.add_argument(
        "--eval-every", type=int, default=None, help="evaluate every N steps (default: 10)"
    )
    weighting = plan.add_mutually_exclusive_group()
    weighting.add_argument(
        "--equal-weights",
        dest="weighting",
        action="store_const",
        const="equal",
        help="average members equally (the reference; default in encrypted mode)",
    )
    weighting.add_argument(
        "--sample-weights",
        dest="weighting",
        action="store_const",
        const="samples",
        help="weight members by their sample counts (default in aggregate mode)",
    )
    plan.add_argument(
        "--frac-bits", type=int, default=None, help="fixed-point fractional bits (default: 24)"
    )
    plan.add_argument(
        "--batch-size", type=int, default=None, help="aggregate mode: mini-batch (default: 64)"
    )
    plan.add_argument(
        "--local-epochs", type=int, default=None, help="aggregate mode: epochs (default: 2)"
    )
    plan.add_argument(
        "--tolerance",
        type=float,
        default=None,
        help="stop when no weight moves more than this in a step (default: 0 = never)",
    )
    plan.add_argument(
        "--round-timeout",
        type=float,
        default=None,
        help="seconds a round waits once every member has the model (default: 60)",
    )
    plan.add_argument(
        "--first-round-timeout",
        type=float,
        default=None,
        help="the same for the first round after a (re)start (default: 300)",
    )
    plan.add_argument("--seed", type=int, default=None, help="mini-batch seed (default: 0)")
    plan.add_argument(
        "--standardize",
        action="store_true",
        default=None,
        help="federated standardisation round before training",
    )
    _add_security(p, server=True)


def _add_worker(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = _parser(sub, "worker", "take part in a run as a member (data owner)")
    p.add_argument("--train-set", type=Path, required=True, help="local training CSV")
    p.add_argument("--id", dest="worker_id", required=True, help="this member's id")
    p.add_argument(
        "--federation",
        type=Path,
        help="this member's copy of the federation file (required unless --attestation none)",
    )
    p.add_argument(
        "--server",
        "--host-ip",
        dest="server",
        default=f"127.0.0.1:{DEFAULT_PORT}",
        help="PS address HOST:PORT",
    )
    p.add_argument(
        "--port", type=int, default=None, help="PS port when --server/--host-ip has none"
    )
    p.add_argument(
        "--retry-budget",
        type=float,
        default=120.0,
        help="seconds to keep retrying a PS that does not answer",
    )
    p.add_argument(
        "--state-dir",
        type=Path,
        default=Path(".homolr"),
        help="where this member keeps its replay-protection state",
    )
    _add_security(p, server=False)


def _add_security(p: argparse.ArgumentParser, *, server: bool) -> None:
    group = p.add_argument_group("attestation and transport")
    group.add_argument(
        "--attestation",
        choices=("dcap", "simulated", "none"),
        default="dcap",
        help="dcap: SGX quote via Gramine; none: development mode, must be chosen explicitly; "
        "simulated: synthetic unsigned quotes, for tests only",
    )
    group.add_argument(
        "--insecure",
        action="store_true",
        help="plaintext gRPC instead of mutual TLS (development only; prints a warning)",
    )
    group.add_argument(
        "--mrenclave", help="hex MRENCLAVE the PS must have (worker policy; simulated identity)"
    )
    if server:
        group.add_argument(
            "--attestation-dir",
            type=Path,
            default=Path("/dev/attestation"),
            help="Gramine's attestation interface",
        )
        group.add_argument(
            "--sealed-dir",
            type=Path,
            help="checkpoint directory (an encrypted mount sealed to MRENCLAVE in SGX)",
        )
        group.add_argument(
            "--resume",
            action="store_true",
            help="continue from the checkpoint in --sealed-dir if there is one",
        )
        return
    group.add_argument("--cert", type=Path, help="this member's certificate (homolr keygen)")
    group.add_argument("--key", type=Path, help="this member's private key (homolr keygen)")
    group.add_argument("--mrsigner", help="hex MRSIGNER the PS must have (with --isv-prod-id)")
    group.add_argument("--isv-prod-id", type=int, help="ISVPRODID the PS must have")
    group.add_argument("--min-isv-svn", type=int, help="lowest ISVSVN accepted (with --mrsigner)")
    group.add_argument(
        "--allow-debug", action="store_true", help="accept a debug enclave (never in production)"
    )
    group.add_argument(
        "--allow-outdated-tcb",
        action="store_true",
        help="accept DCAP verdicts that ask for a TCB update (e.g. OUT_OF_DATE)",
    )


def _add_demo(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = _parser(sub, "demo", "one PS and two members on loopback with a breast-cancer split")
    p.add_argument("--mode", choices=("encrypted", "aggregate"), default="encrypted")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="data, logs, model")
    p.add_argument("--iters", type=int, default=None, help="steps (default: the mode's)")
    p.add_argument("--key-bits", type=int, choices=KEY_BITS, default=2048)
    p.add_argument(
        "--raw",
        action="store_true",
        help="raw (unstandardised) features with federated standardisation",
    )


def _add_predict(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = _parser(sub, "predict", "score a CSV with a trained model.json (columns by name)")
    p.add_argument("--model", type=Path, required=True, help="model.json of a finished run")
    p.add_argument("--data", type=Path, required=True, help="CSV with the model's features")
    p.add_argument("--output", type=Path, help="write id,probability,prediction rows here")


def _add_example_data(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = _parser(
        sub,
        "example-data",
        "write the reference breast_homo split (guest, host, test) rebuilt from scikit-learn's copy",
    )
    p.add_argument("--out", type=Path, default=Path("data"), help="directory for the three CSVs")
    p.add_argument("--raw", action="store_true", help="raw (unstandardised) Wisconsin measurements")


def _add_report(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = _parser(sub, "report", "plots and a one-page HTML report of a run directory")
    p.add_argument("run_dir", type=Path, help="the --out directory of a PS run")


def _add_export(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = _parser(sub, "export", "export a model.json to a standard format")
    p.add_argument("--model", type=Path, required=True, help="model.json of a finished run")
    p.add_argument("--format", choices=("onnx",), default="onnx", help="output format")
    p.add_argument("--output", type=Path, required=True, help="file to write")


def _add_bench(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = _parser(sub, "bench", "run a benchmark from benchmarks/ (needs the source tree)")
    p.add_argument("what", choices=("crypto", "training", "aggregate", "parity"))
    p.add_argument("args", nargs=argparse.REMAINDER, help="passed to the benchmark (e.g. --json)")


def build_parser() -> argparse.ArgumentParser:
    from homolr import __version__

    parser = argparse.ArgumentParser(
        prog="homolr",
        description=__doc__.splitlines()[0],
        epilog=EXIT_CODES_HELP,
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"homolr {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (
        _add_init,
        _add_keygen,
        _add_ps,
        _add_worker,
        _add_demo,
        _add_predict,
        _add_example_data,
        _add_report,
        _add_export,
        _add_bench,
    ):
        add(sub)
    return parser


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
        "init": _lazy("init_command"),
        "keygen": _lazy("keygen_command"),
        "ps": _lazy("ps_command"),
        "worker": _lazy("worker_command"),
        "demo": _cmd_demo,
        "predict": _lazy("predict_command"),
        "example-data": _lazy("example_data_command"),
        "report": _lazy("report_command"),
        "export": _lazy("export_command"),
        "bench": _lazy("bench_command"),
    }
    signal.signal(signal.SIGTERM, _raise_interrupted)
    try:
        return handlers[args.command](args)
    except HomolrError as exc:
        print(f"homolr {args.command}: error: {exc}", file=sys.stderr, flush=True)
        return int(exc.exit_code)
    except OSError as exc:
        print(f"homolr {args.command}: error: {exc}", file=sys.stderr, flush=True)
        return int(ExitCode.CONFIG)
    except KeyboardInterrupt:
        print(f"homolr {args.command}: interrupted", file=sys.stderr, flush=True)
        return int(ExitCode.SIGINT)


def _lazy(name: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        from homolr import commands

        handler: Callable[[argparse.Namespace], int] = getattr(commands, name)
        return handler(args)

    return run


def _cmd_demo(args: argparse.Namespace) -> int:
    from homolr.demo import run_demo

    return run_demo(
        args.out, mode=args.mode, iters=args.iters, key_bits=args.key_bits, raw=args.raw
    )


if __name__ == "__main__":
    sys.exit(main())
