"""Cost of encrypted training per round: homolr's step vs the reference algorithm, and how it scales.

Two parts (``--part ratio|scale|all``, default all):

**ratio** -- one iteration on the reference data, both algorithms measured in the same run. The
reference solution (Intel CCZoo ``phe_homo_lr``) computes, per worker and iteration, one encrypted
dot product per row (``z_i = Σ_j x_ij · Enc(w_j)``), the Taylor sigmoid per row, and an encrypted
gradient per weight, with python-paillier; weights travel one ciphertext each, both ways. homolr's
worker applies the same step as one plaintext-matrix × ``Enc(w)`` product built from its
sufficient statistics and uploads a packed ciphertext. Both run here at 2048 bits on the same data
and the same key (phe is given homolr's p, q). An iteration is the slowest worker's step (workers
run in parallel) + the PS's critical path: fold the updates into the key holder's per-chunk sums
(:class:`homolr.enclave.keyholder.RoundSum`, as the servicer does), decrypt, release, re-encrypt
the model with randomness precomputed while the workers computed (as the trainer does).

**scale** -- encrypted mode at d ∈ {31, 101, 301, 1001} weights with 2,000 rows per worker, on
**synthetic** data (standard normal features, labels from a random logistic model; the cost of
the step does not depend on the values beyond their fixed-point width). Per d: the worker step,
run in a child process like a real worker (benchmarks/worker_step_child.py) (``EncryptedLocalStep.update`` on ``Enc(w)``: decode,
matvec, pack), its peak RSS (VmHWM of the child, cross-checked with ``wait4``'s ru_maxrss), the
PS's critical path as above, bytes per worker and round (model down + update up, protobuf + gRPC
framing), next to the reference algorithm's **cost model**: per-row cost of the reference worker
step measured on python-paillier on this machine kind (shared/PERF.md: 30.9 / 142 / 407 ms per row
at 31 / 101 / 301 weights, 2026-12-02) × 2,000 rows, the 1,001-weight figure **extrapolated** from
a least-squares line through those three points (the reference does ~2d ciphertext-scalar
products per row, so its per-row cost is linear in d), plus its PS step (2 workers × d decryptions
+ d encryptions at python-paillier's rates, measured in this run). Because the machine's speed
drifts from day to day (and the machine kind may not be PERF.md's), the reference step is also
measured in this run on ``--reference-rows`` and 3x as many synthetic rows per d (default 2 and 6;
d phe encryptions of ``w`` first: ~30 s in all at d = 1,001), split into its per-round part (the
per-weight update) and its per-row part, and extrapolated to 2,000 rows: the "now" columns. Both workers are symmetric
(same rows, same d): one child measures the step, and its update is folded as both members'.

Usage: python benchmarks/bench_training.py [--json] [--part all] [--quick] [--rows N] [--repeat K]
(--rows measures the reference step of the ratio part on the first N rows of each worker and scales
it linearly to the full row count; it is linear in rows by construction. Default: all rows.
--quick: the scale part at d ∈ {31, 101} only.)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from homolr.crypto import PackingSpec, PrivateKey, PublicKey, generate_keypair
from homolr.enclave.keyholder import KeyHolder, ParticipationRule, UpdateLayout
from homolr.learning import Dataset, add_bias, demo_split, load_csv
from homolr.protocol import serde
from homolr.protocol.messages import GlobalModel, ModelHeader, TrainingPlan, Update, UpdateHeader
from homolr.worker.local import EncryptedLocalStep

GOAL_RATIO = 100.0
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
GRPC_FRAME = 5
SCALE_DIMS = (31, 101, 301, 1001)
QUICK_DIMS = (31, 101)
SCALE_ROWS = 2000
#: Reference worker step per row on python-paillier, 2048 bits (shared/PERF.md, 2026-12-02).
REFERENCE_MS_PER_ROW = {31: 30.9, 101: 142.0, 301: 407.0}


def _load() -> tuple[list[Dataset], str]:
    files = [SHARED / f"breast_homo_{n}.csv" for n in ("guest", "host")]
    if all(f.is_file() for f in files):
        return [load_csv(f) for f in files], "reference files (shared/data)"
    guest, host, _ = demo_split(seed=0)
    return [guest, host], "demo split (scikit-learn's breast-cancer copy)"


def _median_time(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _bytes(msgs: list[Any]) -> int:
    return sum(m.ByteSize() + GRPC_FRAME for m in msgs)


#: The reference solution's hyper-parameters.
PLAN_FIELDS = {"alpha": 0.01, "learning_rate": 0.15, "init_weight": 1.0, "weighting": "equal"}
CHILD = Path(__file__).resolve().parent / "worker_step_child.py"


def make_plan(d: int) -> TrainingPlan:
    return TrainingPlan(n_features=d - 1, **PLAN_FIELDS).validate()  # type: ignore[arg-type]


def model_message(holder: KeyHolder, w: np.ndarray, plan: TrainingPlan) -> GlobalModel:
    enc = holder.encrypt_model(w, plan.frac_bits)
    header = ModelHeader(round=0, encrypted=True, length=len(w), frac_bits=plan.frac_bits)
    return GlobalModel(header, enc.to_bytes())


def round_bytes(
    model: GlobalModel, update_payload: bytes, n_ciphertexts: int, plan: TrainingPlan
) -> int:
    """One worker's bytes of one round: the model down, the update up (protobuf + framing)."""
    width = len(update_payload) // n_ciphertexts
    header = UpdateHeader(
        "w0", "run", 0, plan.n_weights, plan.update_frac_bits, 64, 10, n_ciphertexts
    )
    up = list(
        serde.update_to_chunks(Update(header, update_payload), plan.chunk_ciphertexts * width)
    )
    return _bytes(list(serde.model_to_chunks(model))) + _bytes(up)


class PsStep:
    """The PS's critical path of one round, through the real key holder."""

    def __init__(self, private_key: PrivateKey, plan: TrainingPlan) -> None:
        self._holder = KeyHolder(private_key, ParticipationRule("quorum", None, 2))
        self._plan = plan
        self._round = 0
        self._layout = UpdateLayout(
            length=plan.n_weights,
            frac_bits=plan.update_frac_bits,
            spec=PackingSpec(value_bits=plan.value_bits, headroom_bits=plan.headroom_bits),
            chunk_ciphertexts=plan.chunk_ciphertexts,
            n_bits=private_key.public_key.n_bits,
        )

    @property
    def holder(self) -> KeyHolder:
        return self._holder

    def prepare(self) -> None:
        """The next model's randomness (the trainer does it while the workers compute)."""
        self._holder.prepare_encryptions(self._plan.n_weights)

    def __call__(self, updates: Mapping[str, bytes]) -> bytes:
        """Fold every update chunk by chunk, decrypt, release, encrypt the new model."""
        layout = self._layout
        width = self._holder.public_key.ciphertext_bytes
        round_sum = self._holder.open_round(
            self._round, layout, dict.fromkeys(updates, 1.0), frozenset(updates)
        )
        self._round += 1
        for member, payload in updates.items():
            for chunk in range(layout.n_chunks):
                lo, hi = layout.chunk_ciphertext_range(chunk)
                round_sum.fold(member, chunk, payload[lo * width : hi * width])
        for chunk in range(layout.n_chunks):
            round_sum.decrypt_chunk(chunk)
        release = round_sum.release()
        return self._holder.encrypt_model(release.values, self._plan.frac_bits).to_bytes()


def time_ps(ps: PsStep, updates: Mapping[str, bytes], repeat: int) -> tuple[float, float]:
    """Median seconds of the PS's critical path and of its overlapped precomputation."""
    ps_times, prep_times = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        ps.prepare()
        prep_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        ps(updates)
        ps_times.append(time.perf_counter() - start)
    return statistics.median(ps_times), statistics.median(prep_times)


# ----------------------------------------------------------------------------- ratio part


def reference_worker_step(
    pub: object, enc_w: list[Any], Xb: np.ndarray, y: np.ndarray, lr: float, alpha: float
) -> list[Any]:
    """The reference per-row step on encrypted weights with python-paillier."""
    m, d = Xb.shape
    errors = []
    for i in range(m):
        z = enc_w[0] * float(Xb[i, 0])
        for j in range(1, d):
            z = z + enc_w[j] * float(Xb[i, j])
        errors.append(z * 0.25 + (0.5 - float(y[i])))
    new = []
    for j in range(d):
        g = errors[0] * float(Xb[0, j])
        for i in range(1, m):
            g = g + errors[i] * float(Xb[i, j])
        g = g * (1.0 / m) + enc_w[j] * alpha
        new.append(enc_w[j] - g * lr)
    return new


def ratio_part(pk: PublicKey, sk: PrivateKey, rows: int, repeat: int) -> dict[str, Any]:
    from phe import paillier

    workers, source = _load()
    d = workers[0].n_features + 1
    plan = make_plan(d)
    ps = PsStep(sk, plan)
    w = np.ones(d)
    model = model_message(ps.holder, w, plan)
    steps = [EncryptedLocalStep(ds, plan, pk) for ds in workers]
    packed = [s.update(model) for s in steps]
    ours_worker = max(_median_time(partial(s.update, model), repeat) for s in steps)
    updates = {f"w{i}": p.to_bytes() for i, p in enumerate(packed)}
    ours_ps, ours_prep = time_ps(ps, updates, repeat)
    ours_bytes = round_bytes(model, updates["w0"], len(packed[0].ciphertexts), plan)

    ppub = paillier.PaillierPublicKey(int(pk.n))
    ppriv = paillier.PaillierPrivateKey(ppub, int(sk.p), int(sk.q))
    enc_w = [ppub.encrypt(float(v)) for v in w]
    ref_worker = 0.0
    scaled = False
    for ds in workers:
        Xb, y = add_bias(ds.X), ds.y
        n = ds.n_samples if rows <= 0 else min(rows, ds.n_samples)
        start = time.perf_counter()
        reference_worker_step(ppub, enc_w, Xb[:n], y[:n], 0.15, 0.01)
        elapsed = (time.perf_counter() - start) * ds.n_samples / n
        scaled = scaled or n < ds.n_samples
        ref_worker = max(ref_worker, elapsed)
    uploads = [enc_w, enc_w]
    start = time.perf_counter()
    avg = [sum(ppriv.decrypt(u[j]) for u in uploads) / len(uploads) for j in range(d)]
    ref_reenc = [ppub.encrypt(v) for v in avg]
    ref_ps = time.perf_counter() - start
    width = 2 * ((int(pk.n).bit_length() + 7) // 8)
    ref_payload = b"".join(
        int(c.ciphertext(be_secure=False)).to_bytes(width, "big") for c in ref_reenc
    )
    ref_model = GlobalModel(
        ModelHeader(round=0, encrypted=True, length=d, frac_bits=0), ref_payload
    )
    ref_bytes = 2 * _bytes(list(serde.model_to_chunks(ref_model)))
    ours_total = ours_worker + ours_ps
    ref_total = ref_worker + ref_ps
    return {
        "data": source,
        "key_bits": 2048,
        "n_weights": d,
        "rows_per_worker": [ds.n_samples for ds in workers],
        "reference_rows_measured": rows or "all",
        "reference_scaled_linearly": scaled,
        "homolr": {
            "worker_s": ours_worker,
            "ps_s": ours_ps,
            "ps_precompute_overlapped_s": ours_prep,
            "iteration_s": ours_total,
            "bytes_per_worker_round": ours_bytes,
        },
        "reference": {
            "worker_s": ref_worker,
            "ps_s": ref_ps,
            "iteration_s": ref_total,
            "bytes_per_worker_round": ref_bytes,
        },
        "speedup": ref_total / ours_total,
        "goal_speedup": GOAL_RATIO,
        "goal_met": ref_total / ours_total >= GOAL_RATIO,
        "bytes_ratio": ref_bytes / ours_bytes,
        "projected_341_iterations_s": {"homolr": 341 * ours_total, "reference": 341 * ref_total},
    }


def print_ratio(result: Mapping[str, Any], rows: int) -> None:
    from rich.console import Console
    from rich.table import Table

    ours, ref = result["homolr"], result["reference"]
    table = Table(title=f"encrypted training, one iteration, 2048-bit Paillier, {result['data']}")
    for col in ("", "homolr", "reference (phe)", "ratio"):
        table.add_column(col, justify="right")
    table.add_row(
        "worker step (slowest)",
        f"{ours['worker_s'] * 1e3:.1f} ms",
        f"{ref['worker_s'] * 1e3:.0f} ms",
        f"{ref['worker_s'] / ours['worker_s']:.0f}x",
    )
    table.add_row(
        "PS step (critical path)",
        f"{ours['ps_s'] * 1e3:.1f} ms",
        f"{ref['ps_s'] * 1e3:.0f} ms",
        f"{ref['ps_s'] / ours['ps_s']:.0f}x",
    )
    table.add_row(
        "PS randomness, during the worker step",
        f"{ours['ps_precompute_overlapped_s'] * 1e3:.1f} ms",
        "-",
        "",
    )
    mark = "[green]met[/]" if result["goal_met"] else "[red]missed[/]"
    table.add_row(
        "iteration",
        f"{ours['iteration_s'] * 1e3:.1f} ms",
        f"{ref['iteration_s'] * 1e3:.0f} ms",
        f"{result['speedup']:.0f}x (goal {GOAL_RATIO:.0f}x: {mark})",
    )
    table.add_row(
        "bytes / worker / round",
        f"{ours['bytes_per_worker_round']:,}",
        f"{ref['bytes_per_worker_round']:,}",
        f"{result['bytes_ratio']:.1f}x",
    )
    table.add_row(
        "341 iterations",
        f"{341 * ours['iteration_s']:.1f} s",
        f"{341 * ref['iteration_s'] / 60:.1f} min",
        "",
    )
    Console(width=120).print(table)
    if result["reference_scaled_linearly"]:
        print(
            f"reference worker step measured on {rows} rows per worker, scaled linearly to all rows"
        )


# ----------------------------------------------------------------------------- scale part


def reference_ms_per_row(d: int) -> tuple[float, bool]:
    """The reference worker step's cost per row at ``d`` weights: measured (PERF.md) or, off
    the measured sizes, from a least-squares line through them (second value True)."""
    if d in REFERENCE_MS_PER_ROW:
        return REFERENCE_MS_PER_ROW[d], False
    xs = np.array(list(REFERENCE_MS_PER_ROW), dtype=float)
    ys = np.array(list(REFERENCE_MS_PER_ROW.values()))
    slope, intercept = np.polyfit(xs, ys, 1)
    return float(slope * d + intercept), True


def measured_reference_cost(pk: PublicKey, d: int, rows: int) -> tuple[float, float]:
    """The reference worker step at ``d`` weights, measured now: (seconds per round that do not
    depend on the rows, seconds per row), from runs on ``rows`` and ``3 * rows`` synthetic rows
    (its final per-weight update costs ~3d ciphertext operations whatever the rows; the rest is
    linear in rows by construction)."""
    from phe import paillier

    ppub = paillier.PaillierPublicKey(int(pk.n))
    rng = np.random.default_rng(d)
    enc_w = [ppub.encrypt(1.0) for _ in range(d)]
    times = []
    for m in (rows, 3 * rows):
        Xb = np.hstack([np.ones((m, 1)), rng.normal(size=(m, d - 1))])
        y = np.arange(m) % 2
        start = time.perf_counter()
        reference_worker_step(ppub, enc_w, Xb, y, 0.15, 0.01)
        times.append(time.perf_counter() - start)
    per_row = max((times[1] - times[0]) / (2 * rows), 0.0)
    return max(times[0] - rows * per_row, 0.0), per_row


def phe_rates(pk: PublicKey, sk: PrivateKey, samples: int = 12) -> tuple[float, float]:
    """Seconds per python-paillier encryption and decryption (2048 bits, this run)."""
    from phe import paillier

    ppub = paillier.PaillierPublicKey(int(pk.n))
    ppriv = paillier.PaillierPrivateKey(ppub, int(sk.p), int(sk.q))
    start = time.perf_counter()
    cts = [ppub.encrypt(0.5 + i) for i in range(samples)]
    enc = (time.perf_counter() - start) / samples
    start = time.perf_counter()
    for c in cts:
        ppriv.decrypt(c)
    dec = (time.perf_counter() - start) / samples
    return enc, dec


def run_child(spec: Mapping[str, Any], workdir: Path) -> tuple[dict[str, Any], int]:
    """Run worker_step_child.py in a fresh interpreter; its JSON and ``wait4``'s ru_maxrss (kB)."""
    spec_path = workdir / "spec.json"
    spec_path.write_text(json.dumps(spec))
    out_path = workdir / "child.out"
    with out_path.open("wb") as out:
        child = subprocess.Popen(
            [sys.executable, str(CHILD), str(spec_path)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    text = out_path.read_text(errors="replace")
    if child.returncode != 0:
        raise RuntimeError(f"worker step child failed ({child.returncode}):\n{text[-3000:]}")
    return json.loads(text.strip().splitlines()[-1]), int(usage.ru_maxrss)


def scale_row(
    pk: PublicKey,
    sk: PrivateKey,
    d: int,
    repeat: int,
    phe_enc_s: float,
    phe_dec_s: float,
    workdir: Path,
    reference_rows: int,
) -> dict[str, Any]:
    plan = make_plan(d)
    ps = PsStep(sk, plan)
    model = model_message(ps.holder, np.ones(d), plan)
    (workdir / "pk.bin").write_bytes(pk.to_bytes())
    (workdir / "model.bin").write_bytes(model.payload)
    spec = {
        "d": d,
        "plan": {"n_features": d - 1, **PLAN_FIELDS},
        "rows": SCALE_ROWS,
        "repeat": repeat if d <= 301 else 1,
        "public_key": str(workdir / "pk.bin"),
        "model": str(workdir / "model.bin"),
        "update": str(workdir / "update.bin"),
    }
    child, maxrss_kb = run_child(spec, workdir)
    update = (workdir / "update.bin").read_bytes()
    ps_s, prep_s = time_ps(ps, {"w0": update, "w1": update}, repeat)
    per_row_ms, extrapolated = reference_ms_per_row(d)
    ref_worker = per_row_ms * SCALE_ROWS / 1e3
    ref_ps = d * (2 * phe_dec_s + phe_enc_s)
    measured = measured_reference_cost(pk, d, reference_rows) if reference_rows > 0 else None
    measured_ms = None if measured is None else measured[1] * 1e3
    measured_round = None if measured is None else measured[0] + measured[1] * SCALE_ROWS + ref_ps
    ours = child["step_s"] + ps_s
    return {
        "n_weights": d,
        "rows_per_worker": SCALE_ROWS,
        "worker_step_s": child["step_s"],
        "ps_critical_path_s": ps_s,
        "ps_precompute_overlapped_s": prep_s,
        "round_s": ours,
        "worker_peak_rss_mb": child["vm_hwm_kb"] / 1024,
        "worker_wait4_maxrss_mb": maxrss_kb / 1024,
        "bytes_per_worker_round": round_bytes(model, update, child["n_ciphertexts"], plan),
        "reference_ms_per_row": per_row_ms,
        "reference_ms_per_row_extrapolated": extrapolated,
        "reference_round_s": ref_worker + ref_ps,
        "ratio": (ref_worker + ref_ps) / ours,
        "reference_rows_measured_now": reference_rows,
        "reference_ms_per_row_measured_now": measured_ms,
        "reference_fixed_s_measured_now": None if measured is None else measured[0],
        "reference_round_s_measured_now": measured_round,
        "ratio_measured_now": None if measured_round is None else measured_round / ours,
    }


def scale_part(
    pk: PublicKey, sk: PrivateKey, dims: tuple[int, ...], repeat: int, reference_rows: int
) -> dict[str, Any]:
    phe_enc_s, phe_dec_s = phe_rates(pk, sk)
    with tempfile.TemporaryDirectory(prefix="homolr-bench-") as tmp:
        rows = [
            scale_row(pk, sk, d, repeat, phe_enc_s, phe_dec_s, Path(tmp), reference_rows)
            for d in dims
        ]
    return {
        "data": f"synthetic, {SCALE_ROWS} rows per worker, 2 workers",
        "key_bits": 2048,
        "phe_encrypt_ms": phe_enc_s * 1e3,
        "phe_decrypt_ms": phe_dec_s * 1e3,
        "rows": rows,
    }


def print_scale(result: Mapping[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"encrypted mode by model size, 2048-bit Paillier, {result['data']} (synthetic)"
    )
    for col in (
        "d",
        "worker step s",
        "PS path s",
        "s/round",
        "worker peak RSS MB",
        "bytes/worker/round",
        "reference ms/row",
        "reference s/round",
        "ratio",
        "reference ms/row now",
        "ratio now",
    ):
        table.add_column(col, justify="right")
    for r in result["rows"]:
        table.add_row(
            f"{r['n_weights']:,}",
            f"{r['worker_step_s']:.3f}",
            f"{r['ps_critical_path_s']:.3f}",
            f"{r['round_s']:.3f}",
            f"{r['worker_peak_rss_mb']:.0f}",
            f"{r['bytes_per_worker_round']:,}",
            f"{r['reference_ms_per_row']:.0f}"
            + (" (fit)" if r["reference_ms_per_row_extrapolated"] else ""),
            f"{r['reference_round_s']:.0f}",
            f"{r['ratio']:.0f}x",
            "-"
            if r["reference_ms_per_row_measured_now"] is None
            else f"{r['reference_ms_per_row_measured_now']:.0f}",
            "-" if r["ratio_measured_now"] is None else f"{r['ratio_measured_now']:.0f}x",
        )
    Console(width=160).print(table)
    print(
        "reference s/round: PERF.md's per-row cost of the reference worker step x rows (the "
        "'(fit)' row is extrapolated from a line through 31/101/301) + its PS step at "
        f"python-paillier's rates measured now ({result['phe_encrypt_ms']:.1f} ms per "
        f"encryption, {result['phe_decrypt_ms']:.1f} ms per decryption); 'now' columns: the "
        "reference step measured in this run on a few synthetic rows (per-round + per-row parts), "
        "extrapolated to 2,000 rows"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--json", action="store_true", help="print a JSON document instead of a table"
    )
    parser.add_argument("--part", choices=("ratio", "scale", "all"), default="all")
    parser.add_argument("--quick", action="store_true", help="scale part at d in {31, 101} only")
    parser.add_argument(
        "--rows", type=int, default=0, help="reference rows measured per worker (0 = all)"
    )
    parser.add_argument(
        "--repeat", type=int, default=5, help="repetitions of homolr's steps (median)"
    )
    parser.add_argument(
        "--reference-rows",
        type=int,
        default=2,
        help="scale part: also measure the reference step now on this many rows per d (0: skip)",
    )
    args = parser.parse_args(argv)
    pk, sk = generate_keypair(2048)
    document: dict[str, Any] = {"load": " ".join(Path("/proc/loadavg").read_text().split()[:3])}
    if args.part in ("ratio", "all"):
        document["ratio"] = ratio_part(pk, sk, args.rows, args.repeat)
    if args.part in ("scale", "all"):
        dims = QUICK_DIMS if args.quick else SCALE_DIMS
        document["scale"] = scale_part(pk, sk, dims, min(args.repeat, 3), args.reference_rows)
    if args.json:
        print(json.dumps(document, indent=2))
        return 0
    if "ratio" in document:
        print_ratio(document["ratio"], args.rows)
    if "scale" in document:
        print_scale(document["scale"])
    print(f"load average before: {document['load']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
