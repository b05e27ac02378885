"""Benchmark-only PS process: the development-mode PS, with a Paillier key the benchmark made.

``bench_aggregate.py`` replays updates encrypted once and cached on disk, so the PS it measures
must hold the key those updates were encrypted under. This script is that PS: it builds the same
:class:`~homolr.server.app.PsConfig` and calls the same :func:`~homolr.server.app.run_ps` as
``homolr ps --attestation none --insecure`` (servicer, training loop, key holder, process pool:
all the product's code), with three differences, all outside what is measured: the key is read
from ``--key`` (a ``homolr.enclave.sealing`` private-key document), the plan is given as JSON,
and no run directory is written.

Why a script and not ``homolr ps --key-file``: a PS whose operator chooses the key is exactly
what the threat model forbids (whoever supplies the key decrypts every member's update). A
product option, even refused outside development mode, would be one more path to review and
keep refused; this file lives beside the benchmarks, is never installed, and runs only without
attestation and without TLS (it prints the development-mode banner and a warning of its own).

Usage (bench_aggregate.py starts it; by hand only to debug it)::

    python benchmarks/ps_host.py --key KEY.json --plan '{"mode": "aggregate", ...}' \
        --validate-set VAL.csv --port-file PORT
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from pathlib import Path

from homolr.enclave.sealing import private_key_from_document
from homolr.protocol.messages import TrainingPlan
from homolr.server.app import PsConfig, PsKeys, run_ps
from homolr.server.security import ServerSecurity

WARNING = (
    "homolr bench ps: WARNING: benchmark PS: its Paillier key was read from {path}; whoever has "
    "that file decrypts every update. Development mode only (no attestation, no TLS): never use "
    "it with real data."
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--key", type=Path, required=True, help="private-key document (JSON)")
    parser.add_argument("--plan", required=True, help="TrainingPlan fields as a JSON object")
    parser.add_argument("--validate-set", type=Path, required=True)
    parser.add_argument("--port-file", type=Path, required=True)
    parser.add_argument("--join-timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    print(WARNING.format(path=args.key), file=sys.stderr, flush=True)
    private_key = private_key_from_document(json.loads(args.key.read_text()))
    plan = TrainingPlan(**json.loads(args.plan))
    config = PsConfig(
        plan=plan,
        validate_set=args.validate_set,
        host="127.0.0.1",
        port=0,
        out_dir=None,
        port_file=args.port_file,
        join_timeout_s=args.join_timeout,
    )
    keys = PsKeys(private_key, uuid.uuid4().hex)
    return run_ps(config, keys, ServerSecurity(attestation_type="none"))


if __name__ == "__main__":
    sys.exit(main())
