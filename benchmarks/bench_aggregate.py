"""Secure aggregation at scale: a real PS process fed replayed updates by light clients on loopback.

What runs. For each configuration (W weights, N members) the benchmark starts a real PS process
(``benchmarks/ps_host.py``: the product's ``run_ps`` in development mode, aggregate mode,
participation "all") and N light members in this process, one thread each, that use the product's
transport (:class:`homolr.worker.transport.Connection`): join, long-poll the model, and stream an
update with the plan's chunking (``chunk_ciphertexts`` ciphertexts per data message). The updates
are ``weight x (w_local - w)`` vectors of W random values packed in 64-bit slots (74-bit with the
headroom, 27 per 2048-bit ciphertext) and encrypted **once**, then cached on disk, so that ten
members do not have to encrypt on the same two cores as the PS they measure; each member replays
its cached update every round (the PS cannot tell: it folds each arriving chunk into its running
per-chunk sums and decrypts a chunk once every member's part of it is in).

The key. Cached updates need the PS to hold the key they were made under. The benchmark makes a
2048-bit key once (``<cache>/key-2048.json``, mode 0600) and starts the PS with it through
``ps_host.py``, a script beside the benchmarks that calls the same ``run_ps`` as ``homolr ps
--attestation none --insecure``. That is the least invasive design: the product gains no way to
accept an outside key (which is what the threat model forbids an operator to do), and nothing the
benchmark measures (servicer, training loop, key holder, process pool) differs from ``homolr ps``.

The cache (``--cache-dir``, default ``$XDG_CACHE_HOME/homolr-bench`` or ``~/.cache/homolr-bench``)
holds the key, one payload file per (key fingerprint, W, packing, member index) -- so the N=10
run reuses the N=2 run's first two updates -- and a small synthetic validation CSV per W.

What it reports, per configuration (medians over the measured rounds; round 0 is a warm-up, and
the last round is not measured because the final evaluation and the end notice follow it):

* ``round_s``: replay round wall time, from the first member's model answer of round r to the
  first member's model answer of round r+1 (upload + the PS's work; members compute nothing);
* ``tail_s``: the PS's tail, from the last member's SubmitUpdate reply (the PS replies after the
  member's last chunk is folded) to the next GetModel answer (the new model is published);
* ``ps_cpu_s``: CPU seconds per round of the PS process and its pool workers (``/proc/<pid>/stat``
  utime + stime of the whole process tree);
* ``ps_idle_rss_mb`` (VmRSS after the PS listens, before anyone joins) and ``ps_peak_rss_mb``
  (VmHWM of the PS's main process over the training: the benchmark resets VmHWM to the idle RSS
  through ``/proc/<pid>/clear_refs`` once the PS listens, because parsing a 100,000-column
  validation CSV at start peaks higher than any round; ``ps_start_peak_rss_mb`` keeps that start
  peak, and a ``*`` marks a peak the kernel would not reset), ``pool_peak_rss_mb`` (largest VmHWM
  of its pool workers), and ``peak - idle`` in units of one member's update (target: at most 2);
* bytes per weight per round per member, up (update) and down (model), protobuf + gRPC framing;
* ``member_encrypt_s``: one member's encryption of its update (this process, the machine's pool,
  warm tables, measured with the PS stopped); ``ps_decrypt_cpu_s``: the PS's decryption work per
  round (ciphertexts x one core's CRT decryption, measured here); ``floor_s`` =
  ``max(ps_decrypt_cpu_s / cores, member_encrypt_s)``, the best any design could do per round;
* ``real_round_s`` = ``member_encrypt_s + round_s``: a member encrypts its whole update before it
  streams it, so a real round costs at least that (members encrypt in parallel on their own
  machines); ``real_round_s / floor_s`` is how far the system is from the floor.

Caveat: the light members share the machine with the PS (their CPU is reported as
``clients_cpu_s``). Load from other processes distorts every figure: check ``uptime`` first.

Usage::

    python benchmarks/bench_aggregate.py [--json] [--quick] [--weights 101,10001] [--members 2,10]
        [--rounds 3] [--cache-dir DIR]
    python benchmarks/bench_aggregate.py --members 2,8      # PS memory vs members (W = 10,001)
    python benchmarks/bench_aggregate.py --profile DIR      # also py-spy the PS and its pool

Every run ends with, per W measured with several N, the PS's peak-RSS growth from the fewest to
the most members next to what holding every member's update until the round closes would add.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from homolr.crypto import (
    PackingSpec,
    PrivateKey,
    PublicKey,
    encrypt_packed,
    generate_keypair,
    parallel,
)
from homolr.enclave.sealing import private_key_from_document, private_key_to_document
from homolr.learning import Dataset, write_csv
from homolr.protocol import serde
from homolr.protocol.messages import JoinRequest, Update, UpdateHeader
from homolr.worker.transport import Connection

HERE = Path(__file__).resolve().parent
PS_HOST = HERE / "ps_host.py"
KEY_BITS = 2048
FRAC_BITS = 24
SPEC = PackingSpec(value_bits=64, headroom_bits=10)
CHUNK_CIPHERTEXTS = 256  # TrainingPlan's default
VALIDATION_ROWS = 16
GRPC_FRAME = 5  # gRPC's length-prefixed message header
DEFAULT_WEIGHTS = (101, 10_001, 100_001)
DEFAULT_MEMBERS = (2, 10)
QUICK_WEIGHTS = (101, 2_001)
MEMORY_WEIGHTS = 10_001
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KB = 1024


# ------------------------------------------------------------------------------------ the cache


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "homolr-bench"


def load_or_make_key(cache: Path, bits: int = KEY_BITS) -> PrivateKey:
    """The benchmark's Paillier key: made once, kept in ``cache`` (mode 0600)."""
    path = cache / f"key-{bits}.json"
    if path.is_file():
        return private_key_from_document(json.loads(path.read_text()))
    cache.mkdir(parents=True, exist_ok=True)
    _, private_key = generate_keypair(bits)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(private_key_to_document(private_key), out)
    os.replace(tmp, path)
    return private_key


def update_values(weights: int, member: int) -> np.ndarray:
    """Member ``member``'s replayed ``weight x (w_local - w)``: small deltas, as SGD makes."""
    rng = np.random.default_rng([weights, member])
    return rng.normal(0.0, 0.01, size=weights)


def cached_update(cache: Path, public_key: PublicKey, weights: int, member: int) -> bytes:
    """Member ``member``'s encrypted packed update of ``weights`` values (encrypted once)."""
    folder = (
        cache
        / "updates"
        / f"{public_key.fingerprint()[:16]}-w{weights}-f{FRAC_BITS}-v{SPEC.value_bits}"
        f"-h{SPEC.headroom_bits}"
    )
    path = folder / f"member-{member:03d}.bin"
    expected = SPEC.ciphertext_count(weights, public_key.n_bits) * public_key.ciphertext_bytes
    if path.is_file() and path.stat().st_size == expected:
        return path.read_bytes()
    folder.mkdir(parents=True, exist_ok=True)
    packed = encrypt_packed(
        public_key, update_values(weights, member), frac_bits=FRAC_BITS, spec=SPEC
    )
    payload = packed.to_bytes()
    if len(payload) != expected:
        raise RuntimeError(f"packed update has {len(payload)} bytes, expected {expected}")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(payload)
    os.replace(tmp, path)
    return payload


def validation_csv(cache: Path, weights: int) -> Path:
    """A small synthetic validation set with ``weights - 1`` features (the PS evaluates on it)."""
    path = cache / f"validation-w{weights}.csv"
    if not path.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(weights)
        X = np.round(rng.normal(size=(VALIDATION_ROWS, weights - 1)), 3)
        y = np.arange(VALIDATION_ROWS, dtype=np.int64) % 2
        names = tuple(f"x{i}" for i in range(weights - 1))
        write_csv(Dataset(X, y, np.arange(VALIDATION_ROWS), names, "synthetic"), path)
    return path


# ------------------------------------------------------------------------------ /proc probes


def _children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (the PS's pool workers)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, in seconds (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def status_kb(pid: int, key: str) -> int:
    """A ``/proc/<pid>/status`` figure in kB (VmRSS, VmHWM), 0 when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class TreeProbe:
    """CPU and peak memory of a process and its descendants, sampled from /proc."""

    pid: int
    main_hwm_kb: int = 0
    child_hwm_kb: int = 0

    def cpu(self) -> float:
        return sum(cpu_seconds(p) for p in [self.pid, *_children(self.pid)])

    def reset_peak(self) -> bool:
        """Reset the PS's VmHWM to its current RSS (``clear_refs`` 5, Linux >= 4.0).

        The PS's start (the validation CSV parsed, the key loaded) peaks higher than any round; the
        peak this benchmark reports is the training's, so it starts from the idle PS. Returns
        whether the kernel took the reset (if not, the peak also covers the start).
        """
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        except OSError:
            return False
        return True

    def sample_memory(self) -> None:
        self.main_hwm_kb = max(self.main_hwm_kb, status_kb(self.pid, "VmHWM"))
        for child in _children(self.pid):
            self.child_hwm_kb = max(self.child_hwm_kb, status_kb(child, "VmHWM"))


# ------------------------------------------------------------------------------ light members


@dataclass
class MemberLog:
    """When one replaying member saw each round's model and got its SubmitUpdate reply."""

    model_at: dict[int, float] = field(default_factory=dict)
    reply_at: dict[int, float] = field(default_factory=dict)
    up_bytes: int = 0
    down_bytes: int = 0
    error: str = ""


def wire_bytes(messages: Sequence[object]) -> int:
    """Serialized size of a stream's messages with gRPC's 5-byte message framing."""
    return sum(m.ByteSize() + GRPC_FRAME for m in messages)  # type: ignore[attr-defined]


def replay_member(
    target: str,
    member_id: str,
    payload: bytes,
    weights: int,
    key_fingerprint: str,
    on_model: Callable[[int, float], None],
    log: MemberLog,
) -> None:
    """Join, then per round: long-poll the model, stream the cached update; until the end."""
    try:
        with Connection(target, retry_budget_s=120.0) as conn:
            info = conn.server_info()
            if PublicKey.from_bytes(info.public_key).fingerprint() != key_fingerprint:
                raise RuntimeError("the PS holds another key than the cached updates'")
            plan = info.plan
            conn.join(JoinRequest(member_id, info.run_id, plan.n_features, 1000))
            width = PublicKey.from_bytes(info.public_key).ciphertext_bytes
            n_ciphertexts = len(payload) // width
            next_round = 0
            while True:
                model = conn.model(
                    member_id,
                    info.run_id,
                    next_round,
                    have_scaler=True,
                    max_payload_bytes=8 * weights,
                )
                now = time.monotonic()
                header = model.header
                if header.pending:
                    continue
                if header.finished:
                    if header.outcome != "completed":
                        raise RuntimeError(f"the PS ended the run: {header.reason}")
                    return
                on_model(header.round, now)
                log.model_at[header.round] = now
                update = Update(
                    UpdateHeader(
                        worker_id=member_id,
                        run_id=info.run_id,
                        round=header.round,
                        length=weights,
                        frac_bits=FRAC_BITS,
                        value_bits=SPEC.value_bits,
                        headroom_bits=SPEC.headroom_bits,
                        n_ciphertexts=n_ciphertexts,
                    ),
                    payload,
                )
                conn.submit(update, plan.chunk_ciphertexts * width)
                log.reply_at[header.round] = time.monotonic()
                if not log.up_bytes:
                    chunks = serde.update_to_chunks(update, plan.chunk_ciphertexts * width)
                    log.up_bytes = wire_bytes(list(chunks))
                    log.down_bytes = wire_bytes(list(serde.model_to_chunks(model)))
                next_round = header.round + 1
    except Exception as exc:  # reported with the configuration, never swallowed
        log.error = f"{type(exc).__name__}: {exc}"


# ----------------------------------------------------------------------------- measurements


@dataclass
class Result:
    weights: int
    members: int
    ciphertexts_per_update: int
    rounds_measured: int
    round_s: float
    round_s_min: float
    round_s_max: float
    tail_s: float
    tail_s_min: float
    tail_s_max: float
    ps_cpu_s: float
    clients_cpu_s: float
    ps_idle_rss_mb: float
    ps_peak_rss_mb: float
    ps_start_peak_rss_mb: float
    peak_covers_start: bool
    pool_peak_rss_mb: float
    update_mb: float
    up_bytes_per_weight: float
    down_bytes_per_weight: float
    member_encrypt_s: float
    ps_decrypt_cpu_s: float
    cores: int
    floor_s: float
    floor_term: str
    real_round_s: float
    real_over_floor: float


def one_core_decrypt_s(private_key: PrivateKey, payload: bytes, samples: int = 32) -> float:
    """Seconds per CRT decryption on one core (best of 3 batches)."""
    cts = private_key.public_key.ciphertexts_from_bytes(
        payload[: samples * private_key.public_key.ciphertext_bytes]
    )
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        private_key.decrypt_in_process(cts)
        best = min(best, (time.perf_counter() - start) / len(cts))
    return best


def member_encrypt_s(public_key: PublicKey, weights: int) -> float:
    """One member's encryption of a W-value update on this machine (warm pool and tables)."""
    values = update_values(weights, 999)
    encrypt_packed(public_key, values[: min(weights, 27 * 64)], frac_bits=FRAC_BITS, spec=SPEC)
    best = float("inf")
    for _ in range(2 if weights <= 20_000 else 1):
        start = time.perf_counter()
        encrypt_packed(public_key, values, frac_bits=FRAC_BITS, spec=SPEC)
        best = min(best, time.perf_counter() - start)
    return best


def usable_cores() -> int:
    return len(os.sched_getaffinity(0))


def py_spy(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling ``pid`` and its pool workers (wall time: idle included) into ``out``."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    args = ["record", "--pid", str(pid), "--idle", "--threads", "--subprocesses", "--nonblocking"]
    return subprocess.Popen(
        [exe, *args, "--format", "raw", "--rate", "200", "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def start_ps(
    key_path: Path, weights: int, members: int, iterations: int, val: Path, workdir: Path
) -> tuple[subprocess.Popen[bytes], int, Path]:
    plan = {
        "mode": "aggregate",
        "iterations": iterations,
        "eval_every": iterations,  # evaluate after the warm-up round and the last round only
        "expected_workers": members,
        "min_workers": members,
        "participation": "all",
        "weighting": "equal",
        "frac_bits": FRAC_BITS,
        "value_bits": SPEC.value_bits,
        "headroom_bits": SPEC.headroom_bits,
        "chunk_ciphertexts": CHUNK_CIPHERTEXTS,
        "key_bits": KEY_BITS,
        "round_timeout_s": 600.0,
        "first_round_timeout_s": 600.0,
        "n_features": weights - 1,
    }
    port_file = workdir / f"ps-w{weights}-n{members}.port"
    port_file.unlink(missing_ok=True)
    log_path = workdir / f"ps-w{weights}-n{members}.log"
    with log_path.open("wb") as log:
        ps = subprocess.Popen(
            [
                sys.executable,
                str(PS_HOST),
                "--key",
                str(key_path),
                "--plan",
                json.dumps(plan),
                "--validate-set",
                str(val),
                "--port-file",
                str(port_file),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if port_file.is_file() and port_file.read_text().strip():
            return ps, int(port_file.read_text()), log_path
        if ps.poll() is not None:
            break
        time.sleep(0.05)
    ps.kill()
    ps.wait(10)
    raise RuntimeError(f"the PS did not start:\n{log_path.read_text(errors='replace')[-3000:]}")


def run_config(
    private_key: PrivateKey,
    key_path: Path,
    cache: Path,
    weights: int,
    members: int,
    rounds: int,
    encrypt_s: float,
    decrypt_s: float,
    workdir: Path,
    profile: Path | None = None,
) -> Result:
    public_key = private_key.public_key
    payloads = [cached_update(cache, public_key, weights, i) for i in range(members)]
    val = validation_csv(cache, weights)
    warmup = 1
    iterations = warmup + rounds + 1
    ps, port, log_path = start_ps(key_path, weights, members, iterations, val, workdir)
    probe = TreeProbe(ps.pid)
    spy = None
    if profile is not None:
        spy = py_spy(ps.pid, profile / f"ps-w{weights}-n{members}.txt")
    try:
        time.sleep(0.5)
        idle_kb = status_kb(ps.pid, "VmRSS")
        start_hwm_kb = status_kb(ps.pid, "VmHWM")
        peak_reset = probe.reset_peak()
        first_model: dict[int, float] = {}
        cpu_at: dict[int, float] = {}
        client_cpu_at: dict[int, float] = {}
        lock = threading.Lock()

        def on_model(round_: int, now: float) -> None:
            with lock:
                if round_ in first_model:
                    return
                first_model[round_] = now
                cpu_at[round_] = probe.cpu()
                client_cpu_at[round_] = time.process_time()
                probe.sample_memory()

        logs = [MemberLog() for _ in range(members)]
        threads = [
            threading.Thread(
                target=replay_member,
                args=(
                    f"127.0.0.1:{port}",
                    f"m{i:03d}",
                    payloads[i],
                    weights,
                    public_key.fingerprint(),
                    on_model,
                    logs[i],
                ),
                daemon=True,
            )
            for i in range(members)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=1800)
        probe.sample_memory()
        errors = [f"m{i:03d}: {log.error}" for i, log in enumerate(logs) if log.error]
        if errors:
            raise RuntimeError(
                "; ".join(errors) + "\nPS log:\n" + log_path.read_text(errors="replace")[-3000:]
            )
        code = ps.wait(60)
        if code != 0:
            raise RuntimeError(f"PS exited {code}:\n{log_path.read_text(errors='replace')[-3000:]}")
    finally:
        if ps.poll() is None:
            ps.kill()
            ps.wait(10)
        if spy is not None:
            spy.wait(60)
    measured = range(warmup, warmup + rounds)
    walls = [first_model[r + 1] - first_model[r] for r in measured]
    tails = [first_model[r + 1] - max(log.reply_at[r] for log in logs) for r in measured]
    cpus = [cpu_at[r + 1] - cpu_at[r] for r in measured]
    client_cpus = [client_cpu_at[r + 1] - client_cpu_at[r] for r in measured]
    n_ct = len(payloads[0]) // public_key.ciphertext_bytes
    cores = usable_cores()
    ps_decrypt = n_ct * decrypt_s
    floor = max(ps_decrypt / cores, encrypt_s)
    real = encrypt_s + statistics.median(walls)
    return Result(
        weights=weights,
        members=members,
        ciphertexts_per_update=n_ct,
        rounds_measured=rounds,
        round_s=statistics.median(walls),
        round_s_min=min(walls),
        round_s_max=max(walls),
        tail_s=statistics.median(tails),
        tail_s_min=min(tails),
        tail_s_max=max(tails),
        ps_cpu_s=statistics.median(cpus),
        clients_cpu_s=statistics.median(client_cpus),
        ps_idle_rss_mb=idle_kb / PAGE_KB,
        ps_peak_rss_mb=probe.main_hwm_kb / PAGE_KB,
        ps_start_peak_rss_mb=start_hwm_kb / PAGE_KB,
        peak_covers_start=not peak_reset,
        pool_peak_rss_mb=probe.child_hwm_kb / PAGE_KB,
        update_mb=len(payloads[0]) / 1e6,
        up_bytes_per_weight=logs[0].up_bytes / weights,
        down_bytes_per_weight=logs[0].down_bytes / weights,
        member_encrypt_s=encrypt_s,
        ps_decrypt_cpu_s=ps_decrypt,
        cores=cores,
        floor_s=floor,
        floor_term="PS decryption" if ps_decrypt / cores >= encrypt_s else "member encryption",
        real_round_s=real,
        real_over_floor=real / floor,
    )


# ------------------------------------------------------------------------------------ output


def print_table(results: list[Result], title: str, load: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, caption=load)
    columns = (
        "W",
        "N",
        "ctxt",
        "round s (min-max)",
        "PS tail s",
        "PS CPU s/round",
        "PS RSS MB idle / peak (pool)",
        "peak - idle / update",
        "B/weight up / down",
        "member enc s",
        "PS dec CPU s",
        "floor s",
        "enc + round / floor",
    )
    for col in columns:
        table.add_column(col, justify="right")
    for r in results:
        table.add_row(
            f"{r.weights:,}",
            str(r.members),
            f"{r.ciphertexts_per_update:,}",
            f"{r.round_s:.3f} ({r.round_s_min:.3f}-{r.round_s_max:.3f})",
            f"{r.tail_s:.3f}",
            f"{r.ps_cpu_s:.2f}",
            f"{r.ps_idle_rss_mb:.0f} / {r.ps_peak_rss_mb:.0f}{'*' if r.peak_covers_start else ''}"
            f" ({r.pool_peak_rss_mb:.0f})",
            f"{(r.ps_peak_rss_mb - r.ps_idle_rss_mb) / r.update_mb:.2f}x",
            f"{r.up_bytes_per_weight:.2f} / {r.down_bytes_per_weight:.2f}",
            f"{r.member_encrypt_s:.3f}",
            f"{r.ps_decrypt_cpu_s:.3f}",
            f"{r.floor_s:.3f} ({'dec' if r.floor_term == 'PS decryption' else 'enc'})",
            f"{r.real_over_floor:.2f}x",
        )
    Console(width=200).print(table)


def memory_summary(results: list[Result]) -> list[dict[str, float]]:
    """Per model size: the PS's peak RSS growth from the fewest to the most members, next to
    what holding every member's update until the round closes would add."""
    out = []
    for weights in sorted({r.weights for r in results}):
        group = [r for r in results if r.weights == weights]
        few, many = min(group, key=lambda r: r.members), max(group, key=lambda r: r.members)
        if few is many:
            continue
        out.append(
            {
                "weights": weights,
                "members_from": few.members,
                "members_to": many.members,
                "ps_peak_rss_growth_mb": many.ps_peak_rss_mb - few.ps_peak_rss_mb,
                "pool_peak_rss_growth_mb": many.pool_peak_rss_mb - few.pool_peak_rss_mb,
                "holding_every_update_would_add_mb": (many.members - few.members) * many.update_mb,
            }
        )
    return out


def load_average() -> str:
    return "load average " + " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _ints(text: str) -> list[int]:
    return [int(x.replace("_", "")) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print a JSON document")
    parser.add_argument("--quick", action="store_true", help="smoke run: small models, 2 rounds")
    parser.add_argument("--weights", type=_ints, help="comma-separated model sizes W")
    parser.add_argument(
        "--members",
        type=_ints,
        help="comma-separated member counts N; given alone, the memory mode (W = 10,001)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds per configuration")
    parser.add_argument("--cache-dir", type=Path, default=default_cache_dir())
    parser.add_argument(
        "--profile",
        type=Path,
        help="attach py-spy to each PS (and its pool); raw stacks go to this folder (perturbs)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        weights, members, rounds = args.weights or QUICK_WEIGHTS, args.members or [2, 3], 2
    elif args.members is not None and args.weights is None:  # the memory mode
        weights, members, rounds = [MEMORY_WEIGHTS], args.members, args.rounds
    else:
        weights = args.weights or DEFAULT_WEIGHTS
        members, rounds = args.members or DEFAULT_MEMBERS, args.rounds
    cache = args.cache_dir
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    private_key = load_or_make_key(cache)
    key_path = cache / f"key-{KEY_BITS}.json"
    public_key = private_key.public_key
    load_before = load_average()
    for w in weights:  # encrypt what is missing before anything is timed
        for i in range(max(members)):
            cached_update(cache, public_key, w, i)
        validation_csv(cache, w)
    decrypt_s = one_core_decrypt_s(private_key, cached_update(cache, public_key, weights[0], 0))
    encrypt = {w: member_encrypt_s(public_key, w) for w in weights}
    parallel.shutdown()  # this process's pool stays out of the PS's way
    results = []
    with tempfile.TemporaryDirectory(prefix="homolr-bench-") as tmp:
        for w in weights:
            for n in members:
                results.append(
                    run_config(
                        private_key,
                        key_path,
                        cache,
                        w,
                        n,
                        rounds,
                        encrypt[w],
                        decrypt_s,
                        Path(tmp),
                        args.profile,
                    )
                )
    load = f"{load_before} before, {load_average()} after"
    document: dict[str, object] = {
        "key_bits": KEY_BITS,
        "packing": {"value_bits": SPEC.value_bits, "headroom_bits": SPEC.headroom_bits},
        "chunk_ciphertexts": CHUNK_CIPHERTEXTS,
        "cores": usable_cores(),
        "one_core_decrypt_ms": decrypt_s * 1e3,
        "load": load,
        "results": [asdict(r) for r in results],
    }
    document["memory"] = memory_summary(results)
    if args.json:
        print(json.dumps(document, indent=2))
        return 0
    title = (
        f"secure aggregation, real PS on loopback, {KEY_BITS}-bit key, 64-bit slots, "
        f"{CHUNK_CIPHERTEXTS} ciphertexts per message, {rounds} measured rounds (medians)"
    )
    print_table(results, title, load)
    print(f"one-core CRT decryption: {decrypt_s * 1e3:.2f} ms; cores: {usable_cores()}")
    for m in memory_summary(results):
        print(
            f"W = {m['weights']:,}: PS peak RSS {m['ps_peak_rss_growth_mb']:+.1f} MB (pool workers "
            f"{m['pool_peak_rss_growth_mb']:+.1f} MB) from {m['members_from']} to "
            f"{m['members_to']} members; holding every update until the round closes would add "
            f"{m['holding_every_update_would_add_mb']:.1f} MB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
