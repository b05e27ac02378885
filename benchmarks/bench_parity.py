"""The seed-parity run, timed: the README's reference command against its critical-path crypto floor.

Each run starts the README's "Reproducing the reference solution" command as real processes on
loopback -- ``homolr ps --worker-num 2 --iters 341 --learning-rate 0.15 --alpha 0.01 --init-weight 1
--equal-weights`` and two ``homolr worker`` processes, 2048-bit key, development mode -- through
the integration tests' harness (``tests/integration/harness.py``, the code path of
``test_reference_parity_prints_the_published_log``), checks that the five published evaluation
lines are printed, and records:

* ``wall_s``: from starting the PS to the exit of all three processes (what a user waits);
* ``training_s``: the PS's own "done in X s" (from the training loop's start, members' join
  included, to the final evaluation);
* CPU seconds of each process (``wait4``'s rusage).

The floor, measured in the same run before each repetition (this process, one core, medians of
many repetitions): per round, one member's ``matvec`` (31 x 31 plaintext matrix x ``Enc(w)``) and
packing of its update, plus the PS's decryption of the sum (2 packed ciphertexts); times 341.
Everything else a round does (decode ``Enc(w)``, transport, fold, averaging, the PS's re-encryption
of the model, evaluation every 10 rounds, waiting) is overhead over that floor; the target is a
wall time within 1.5x of it. The same measurement also reports those other crypto terms.

``--profile DIR`` runs once more with py-spy (``pip install py-spy``) attached to the three
processes (``--idle --threads --nonblocking``, raw collapsed stacks in DIR) and prints, per
process and thread, where the wall time of a round goes (seconds over the run / 341). That run's
timings are perturbed by the sampling and are not part of the statistics.

Usage: python benchmarks/bench_parity.py [--runs 3] [--json] [--data ../shared/data]
       [--profile DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the integration tests' harness is this benchmark's runner

from homolr.crypto import (  # noqa: E402
    EncryptedVector,
    PrivateKey,
    PublicKey,
    generate_keypair,
    matvec,
    pack,
)
from homolr.learning import add_bias, learning_rate, linear_update, load_csv, sufficient_stats  # noqa: E402
from homolr.protocol.messages import TrainingPlan  # noqa: E402
from homolr.worker.local import packing_spec  # noqa: E402
from tests.integration.harness import (  # noqa: E402
    REFERENCE_FLAGS,
    Cluster,
    Proc,
    eval_lines,
    reference_files,
)
from tests.integration.test_training import PUBLISHED  # noqa: E402

ITERATIONS = 341
TARGET_RATIO = 1.5
DEFAULT_DATA = ROOT.parent / "shared" / "data"
RUN_TIMEOUT_S = 900.0
PY_SPY_RATE = 200
_DONE = re.compile(r"done in ([0-9.]+) s")


# ------------------------------------------------------------------------------------ floor


@dataclass(frozen=True)
class Floor:
    """Medians, in seconds, of the critical-path crypto of one round and of its other terms."""

    matvec_s: float
    pack_s: float
    decrypt_sum_s: float
    decode_model_s: float
    encrypt_model_s: float

    @property
    def per_round_s(self) -> float:
        return self.matvec_s + self.pack_s + self.decrypt_sum_s

    @property
    def run_s(self) -> float:
        return ITERATIONS * self.per_round_s


def _median(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure_floor(
    public_key: PublicKey, private_key: PrivateKey, guest: Path, repeat: int = 41
) -> Floor:
    """One member's matvec + packing and the PS's decryption of the 2-ciphertext sum, on the
    reference data and plan (the guest's 31 x 31 step; every member's has the same shape)."""
    from homolr.enclave.keyholder import KeyHolder, ParticipationRule

    data = load_csv(guest)
    d = data.n_features + 1
    plan = TrainingPlan(
        n_features=d - 1, learning_rate=0.15, alpha=0.01, init_weight=1.0, weighting="equal"
    ).validate()
    stats = sufficient_stats(add_bias(data.X), data.y)
    M, b = linear_update(stats, learning_rate(plan.schedule, plan.learning_rate, 5), plan.alpha)
    holder = KeyHolder(private_key, ParticipationRule("quorum", None, 2))
    enc_w = holder.encrypt_model(np.ones(d), plan.frac_bits)
    payload = enc_w.to_bytes()
    spec = packing_spec(plan)
    new = matvec(M, enc_w, frac_bits=plan.frac_bits) + b
    packed = pack(new, spec)
    total = packed + packed

    def encrypt_prepared() -> None:
        holder.prepare_encryptions(d)  # the trainer does this while the members compute

    def encrypt_model() -> None:
        holder.encrypt_model(np.ones(d), plan.frac_bits).to_bytes()

    encrypt_times = []
    for _ in range(repeat):
        encrypt_prepared()
        start = time.perf_counter()
        encrypt_model()
        encrypt_times.append(time.perf_counter() - start)
    return Floor(
        matvec_s=_median(lambda: matvec(M, enc_w, frac_bits=plan.frac_bits) + b, repeat),
        pack_s=_median(lambda: pack(new, spec), repeat),
        decrypt_sum_s=_median(lambda: private_key.decrypt_in_process(total.ciphertexts), repeat),
        decode_model_s=_median(
            lambda: EncryptedVector.from_bytes(public_key, payload, frac_bits=plan.frac_bits),
            repeat,
        ),
        encrypt_model_s=statistics.median(encrypt_times),
    )


# -------------------------------------------------------------------------------------- runs


@dataclass
class Run:
    wall_s: float
    training_s: float
    cpu_s: dict[str, float]
    peak_rss_mb: dict[str, float]
    lines_ok: bool
    missing_lines: list[str] = field(default_factory=list)


def _wait_all(procs: Sequence[Proc], timeout: float) -> tuple[float, dict[str, Any]]:
    """Reap every process with ``wait4``; the time the last one exited and each one's rusage."""
    pending = {p.popen.pid: p for p in procs}
    usage: dict[str, Any] = {}
    give_up = time.monotonic() + timeout
    last = time.monotonic()
    while pending:
        if time.monotonic() > give_up:
            for p in pending.values():
                p.kill()
            raise RuntimeError(
                f"{', '.join(p.name for p in pending.values())} still running after {timeout} s"
            )
        for pid, proc in list(pending.items()):
            got, status, rusage = os.wait4(pid, os.WNOHANG)
            if got == pid:
                proc.popen.returncode = os.waitstatus_to_exitcode(status)
                usage[proc.name] = rusage
                last = time.monotonic()
                del pending[pid]
        time.sleep(0.01)
    return last, usage


def _py_spy(pid: int, out: Path) -> subprocess.Popen[bytes]:
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return subprocess.Popen(
        [
            exe,
            "record",
            "--pid",
            str(pid),
            "--idle",
            "--threads",
            "--nonblocking",
            "--format",
            "raw",
            "--rate",
            str(PY_SPY_RATE),
            "-o",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def one_run(data: Path, tmp: Path, profile: Path | None = None) -> Run:
    guest, host, test = reference_files(data)
    cluster = Cluster(tmp)
    spies = []
    try:
        start = time.monotonic()
        ps = cluster.start_ps(
            "--worker-num",
            "2",
            "--validate-set",
            str(test),
            "--iters",
            str(ITERATIONS),
            *REFERENCE_FLAGS,
            "--out",
            str(tmp / "out"),
        )
        workers = [cluster.start_worker("guest", guest), cluster.start_worker("host", host)]
        procs = [ps, *workers]
        if profile is not None:
            spies = [_py_spy(p.popen.pid, profile / f"{p.name}.txt") for p in procs]
        end, usage = _wait_all(procs, RUN_TIMEOUT_S)
    finally:
        cluster.stop_all()
        for spy in spies:
            spy.wait(60)
    codes = {p.name: p.popen.returncode for p in procs}
    if any(codes.values()):
        raise RuntimeError(f"exit statuses {codes}; PS log:\n{ps.output()[-3000:]}")
    lines = eval_lines(ps.stdout())
    missing = [line for line in PUBLISHED if line not in lines]
    done = _DONE.search(ps.output())
    return Run(
        wall_s=end - start,
        training_s=float(done.group(1)) if done else float("nan"),
        cpu_s={name: u.ru_utime + u.ru_stime for name, u in usage.items()},
        peak_rss_mb={name: u.ru_maxrss / 1024 for name, u in usage.items()},
        lines_ok=not missing,
        missing_lines=missing,
    )


# ---------------------------------------------------------------------------------- profile

#: (category, substrings of a stack; the first rule with any match wins), per kind of thread.
WORKER_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("step: matvec", ("matvec (homolr/crypto/vectors.py", "multi_products")),
    ("step: packing", ("pack (homolr/crypto/packing.py",)),
    ("step: decode Enc(w)", ("from_bytes (homolr/crypto/vectors.py",)),
    ("step: other", ("update (homolr/worker/local.py",)),
    ("replay guard (record the upload)", ("homolr/worker/replay.py",)),
    ("SubmitUpdate (upload)", ("submit (homolr/worker/transport.py",)),
    ("GetModel (waiting for the next model)", ("model (homolr/worker/transport.py",)),
    ("startup and join", ("<module>", "server_info", "join (homolr/worker/transport.py")),
)
PS_WORK_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("decrypt the sum", ("decrypt_chunk",)),
    ("evaluation", ("_evaluate",)),
    ("encrypt the next model", ("encrypt_model",)),
    ("precompute masks (overlaps the members' step)", ("prepare_encryptions",)),
    ("idle", ("_worker (concurrent/futures/thread.py",)),
)
PS_FOLD_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("fold updates", ("fold (homolr/enclave/keyholder.py",)),
    ("idle", ("_worker (concurrent/futures/thread.py",)),
)
PS_MAIN_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("idle (event loop waiting)", ("select (selectors.py", "_poll")),
    ("servicer", ("homolr/server/servicer.py",)),
    ("training loop", ("homolr/server/training.py",)),
    ("grpc / asyncio", ("grpc", "asyncio")),
)


def _rules_for(process: str, thread: str) -> tuple[tuple[str, tuple[str, ...]], ...] | None:
    if process.startswith("worker"):
        return WORKER_RULES if thread == "MainThread" else None
    if thread.startswith("homolr-work"):
        return PS_WORK_RULES
    if thread.startswith("homolr-fold"):
        return PS_FOLD_RULES
    return PS_MAIN_RULES if thread == "MainThread" else None


def breakdown(path: Path, process: str) -> dict[str, dict[str, float]]:
    """Seconds per round by category, per thread of interest, from py-spy's raw output."""
    counts: dict[str, Counter[str]] = {}
    for line in path.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        head, _, frames = stack.partition(";")
        thread = head.split(": ", 1)[1] if ": " in head else head
        rules = _rules_for(process, thread)
        if rules is None or not n.isdigit():
            continue
        category = next((name for name, keys in rules if any(k in frames for k in keys)), "other")
        counts.setdefault(thread, Counter())[category] += int(n)
    return {
        thread: {k: v / PY_SPY_RATE / ITERATIONS for k, v in c.most_common()}
        for thread, c in counts.items()
    }


# ------------------------------------------------------------------------------------ output


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def summary(runs: list[Run], floors: list[Floor]) -> dict[str, Any]:
    walls = [r.wall_s for r in runs]
    trainings = [r.training_s for r in runs]
    floor = Floor(
        *(
            statistics.median(getattr(f, name) for f in floors)
            for name in Floor.__dataclass_fields__
        )
    )
    return {
        "runs": [asdict(r) for r in runs],
        "all_published_lines": all(r.lines_ok for r in runs),
        "wall_s": {"median": statistics.median(walls), "min": min(walls), "max": max(walls)},
        "training_s": {
            "median": statistics.median(trainings),
            "min": min(trainings),
            "max": max(trainings),
        },
        "floor": {
            "per_round_ms": {
                "matvec": floor.matvec_s * 1e3,
                "packing": floor.pack_s * 1e3,
                "decrypt_sum_2_ciphertexts": floor.decrypt_sum_s * 1e3,
                "total": floor.per_round_s * 1e3,
            },
            "other_crypto_per_round_ms": {
                "decode_model": floor.decode_model_s * 1e3,
                "encrypt_model_with_precomputed_masks": floor.encrypt_model_s * 1e3,
            },
            "run_s": floor.run_s,
            "per_repetition_run_s": [f.run_s for f in floors],
        },
        "ratio_wall_to_floor": statistics.median(walls) / floor.run_s,
        "ratio_training_to_floor": statistics.median(trainings) / floor.run_s,
        "target_ratio": TARGET_RATIO,
    }


def print_summary(result: dict[str, Any]) -> None:
    w, t, f = result["wall_s"], result["training_s"], result["floor"]
    per = f["per_round_ms"]
    other = f["other_crypto_per_round_ms"]
    print(
        f"reference parity, {ITERATIONS} rounds, 2048-bit key, real processes: "
        f"{len(result['runs'])} runs, published lines "
        f"{'all printed' if result['all_published_lines'] else 'MISSING'}"
    )
    print(
        f"  wall (PS start -> all exited): median {w['median']:.1f} s "
        f"(min {w['min']:.1f}, max {w['max']:.1f})"
    )
    print(
        f"  training (PS 'done in'):       median {t['median']:.1f} s "
        f"(min {t['min']:.1f}, max {t['max']:.1f})"
    )
    print(
        f"  floor per round: matvec {per['matvec']:.2f} + packing {per['packing']:.2f} + PS "
        f"decryption of the sum {per['decrypt_sum_2_ciphertexts']:.2f} = {per['total']:.2f} ms; "
        f"x {ITERATIONS} = {f['run_s']:.1f} s"
    )
    print(
        f"  other crypto per round (not in the floor): decode Enc(w) {other['decode_model']:.2f} "
        f"ms, PS re-encryption with precomputed masks "
        f"{other['encrypt_model_with_precomputed_masks']:.2f} ms"
    )
    mark = "met" if result["ratio_wall_to_floor"] <= TARGET_RATIO else "missed"
    print(
        f"  wall / floor {result['ratio_wall_to_floor']:.2f}x, training / floor "
        f"{result['ratio_training_to_floor']:.2f}x (target <= {TARGET_RATIO}x: {mark})"
    )
    for i, run in enumerate(result["runs"]):
        cpu = ", ".join(f"{k} {v:.1f}" for k, v in run["cpu_s"].items())
        rss = ", ".join(f"{k} {v:.0f}" for k, v in run["peak_rss_mb"].items())
        print(f"  run {i + 1}: wall {run['wall_s']:.1f} s; CPU s: {cpu}; peak RSS MB: {rss}")


def print_profile(profile: dict[str, dict[str, dict[str, float]]], run: Run) -> None:
    print(
        f"\nprofiled run (py-spy at {PY_SPY_RATE} Hz, perturbed): wall {run.wall_s:.1f} s = "
        f"{run.wall_s / ITERATIONS * 1e3:.1f} ms per round; ms per round by thread:"
    )
    for process, threads in profile.items():
        for thread, cats in threads.items():
            total = sum(cats.values())
            parts = ", ".join(f"{k} {v * 1e3:.1f}" for k, v in cats.items())
            print(f"  {process} / {thread} ({total * 1e3:.1f}): {parts}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="timed repetitions")
    parser.add_argument("--json", action="store_true", help="print a JSON document")
    parser.add_argument(
        "--data",
        type=Path,
        help="folder with breast_homo_{guest,host,test}.csv (default: ../shared/data if there, "
        "else the split 'homolr example-data' writes, in a temporary folder)",
    )
    parser.add_argument("--profile", type=Path, help="also run once under py-spy, output here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="homolr-parity-data-") as data_tmp:
        data = args.data or DEFAULT_DATA
        if args.data is None and not reference_files(data)[0].is_file():
            from homolr.learning.breast_homo import write_breast_homo

            data = Path(data_tmp)
            write_breast_homo(data)
            print(
                f"bench_parity: no {DEFAULT_DATA}; using 'homolr example-data' files",
                file=sys.stderr,
            )
        return _measure(args, data)


def _measure(args: argparse.Namespace, data: Path) -> int:
    guest, _, _ = reference_files(data)
    if not guest.is_file():
        print(f"bench_parity: no breast_homo_guest.csv in {data}", file=sys.stderr)
        return 2
    public_key, private_key = generate_keypair(2048)
    load_before = load_average()
    runs, floors = [], []
    for _ in range(args.runs):
        floors.append(measure_floor(public_key, private_key, guest))
        with tempfile.TemporaryDirectory(prefix="homolr-parity-") as tmp:
            runs.append(one_run(data, Path(tmp)))
    result = summary(runs, floors)
    result["load"] = f"{load_before} before, {load_average()} after"
    result["data"] = str(data)
    profiled = None
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="homolr-parity-") as tmp:
            profiled = one_run(data, Path(tmp), args.profile)
        result["profile"] = {
            "run": asdict(profiled),
            "seconds_per_round": {
                name: breakdown(args.profile / f"{name}.txt", name)
                for name in ("ps", "worker-guest", "worker-host")
            },
        }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0 if result["all_published_lines"] else 1
    print_summary(result)
    print(f"  load average: {result['load']}")
    if profiled is not None:
        print_profile(result["profile"]["seconds_per_round"], profiled)
    return 0 if result["all_published_lines"] else 1


if __name__ == "__main__":
    sys.exit(main())
