"""Per-iteration cost of encrypted training: homolr's step vs the reference algorithm, same run.

The reference solution (Intel CCZoo ``phe_homo_lr``) computes, per worker and iteration, one
encrypted dot product per row (``z_i = Σ_j x_ij · Enc(w_j)``), the Taylor sigmoid per row, and an
encrypted gradient per weight, with python-paillier; weights travel one ciphertext each, both ways.
homolr's worker applies the same step as one plaintext-matrix × ``Enc(w)`` product built from its
sufficient statistics and uploads a packed ciphertext. Both run here at 2048 bits on the same data
and the same key (phe is given homolr's p, q).

An iteration is: the slowest worker's step (workers run in parallel) + the PS's step (sum, decrypt,
average, re-encrypt). Bytes are the serialized protobuf messages of one round for one worker.

Usage: python benchmarks/bench_training.py [--json] [--rows N] [--repeat K]
(--rows measures the reference step on the first N rows of each worker and scales it linearly to the
full row count; it is linear in rows by construction. Default: all rows.)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from homolr.crypto import generate_keypair
from homolr.enclave.keyholder import KeyHolder
from homolr.learning import Dataset, add_bias, demo_split, load_csv
from homolr.protocol import serde
from homolr.protocol.messages import GlobalModel, ModelHeader, TrainingPlan, Update, UpdateHeader
from homolr.server.aggregation import global_weights
from homolr.worker.local import EncryptedLocalStep

GOAL_RATIO = 100.0
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


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


def _bytes(msgs: list[object]) -> int:
    return sum(m.ByteSize() for m in msgs)  # type: ignore[attr-defined]


def reference_worker_step(
    pub: object, enc_w: list[object], Xb: np.ndarray, y: np.ndarray, lr: float, alpha: float
) -> list[object]:
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--json", action="store_true", help="print a JSON document instead of a table"
    )
    parser.add_argument(
        "--rows", type=int, default=0, help="reference rows measured per worker (0 = all)"
    )
    parser.add_argument(
        "--repeat", type=int, default=5, help="repetitions of homolr's step (median)"
    )
    args = parser.parse_args(argv)
    from phe import paillier

    workers, source = _load()
    d = workers[0].n_features + 1
    plan = TrainingPlan(
        n_features=d - 1, alpha=0.01, learning_rate=0.15, init_weight=1.0, weighting="equal"
    ).validate()
    pk, sk = generate_keypair(2048)
    holder = KeyHolder(sk, min_workers=2)
    w = np.ones(d)

    # homolr: worker step (per worker), PS step
    enc = holder.encrypt_model(w, plan.frac_bits)
    model = GlobalModel(
        ModelHeader(round=0, encrypted=True, length=d, frac_bits=plan.frac_bits), enc.to_bytes()
    )
    steps = [EncryptedLocalStep(ds, plan, pk) for ds in workers]
    packed = [s.update(model) for s in steps]
    ours_worker = max(_median_time(lambda s=s: s.update(model), args.repeat) for s in steps)
    subs = {f"w{i}": p for i, p in enumerate(packed)}

    def ps_step() -> None:
        agg = holder.decrypt_sum(subs)
        new = global_weights(agg.total, agg.workers, "equal", {})
        holder.encrypt_model(new, plan.frac_bits).to_bytes()

    # The PS precomputes the next Enc(w)'s randomness while the workers compute (as the trainer
    # does); that work overlaps the worker step, so the PS's critical path is measured without it.
    ps_times, prep_times = [], []
    for _ in range(args.repeat):
        start = time.perf_counter()
        holder.prepare_encryptions(d)
        prep_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        ps_step()
        ps_times.append(time.perf_counter() - start)
    ours_ps, ours_prep = statistics.median(ps_times), statistics.median(prep_times)
    header = UpdateHeader(
        "w0", "run", 0, d, packed[0].frac_bits, 64, 10, len(packed[0].ciphertexts)
    )
    ours_bytes = _bytes(list(serde.model_to_chunks(model))) + _bytes(
        list(serde.update_to_chunks(Update(header, packed[0].to_bytes())))
    )

    # reference: python-paillier on the same key
    ppub = paillier.PaillierPublicKey(int(pk.n))
    ppriv = paillier.PaillierPrivateKey(ppub, int(sk.p), int(sk.q))
    enc_w = [ppub.encrypt(float(v)) for v in w]
    ref_worker = 0.0
    scaled = False
    for ds in workers:
        Xb, y = add_bias(ds.X), ds.y
        rows = ds.n_samples if args.rows <= 0 else min(args.rows, ds.n_samples)
        start = time.perf_counter()
        reference_worker_step(ppub, enc_w, Xb[:rows], y[:rows], 0.15, 0.01)
        elapsed = (time.perf_counter() - start) * ds.n_samples / rows
        scaled = scaled or rows < ds.n_samples
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
    result = {
        "data": source,
        "key_bits": 2048,
        "n_weights": d,
        "rows_per_worker": [ds.n_samples for ds in workers],
        "reference_rows_measured": args.rows or "all",
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
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"encrypted training, one iteration, 2048-bit Paillier, {source}")
    for col in ("", "homolr", "reference (phe)", "ratio"):
        table.add_column(col, justify="right")
    table.add_row(
        "worker step (slowest)",
        f"{ours_worker * 1e3:.1f} ms",
        f"{ref_worker * 1e3:.0f} ms",
        f"{ref_worker / ours_worker:.0f}x",
    )
    table.add_row(
        "PS step (critical path)",
        f"{ours_ps * 1e3:.1f} ms",
        f"{ref_ps * 1e3:.0f} ms",
        f"{ref_ps / ours_ps:.0f}x",
    )
    table.add_row("PS randomness, during the worker step", f"{ours_prep * 1e3:.1f} ms", "-", "")
    mark = "[green]met[/]" if result["goal_met"] else "[red]missed[/]"
    table.add_row(
        "iteration",
        f"{ours_total * 1e3:.1f} ms",
        f"{ref_total * 1e3:.0f} ms",
        f"{ref_total / ours_total:.0f}x (goal {GOAL_RATIO:.0f}x: {mark})",
    )
    table.add_row(
        "bytes / worker / round",
        f"{ours_bytes:,}",
        f"{ref_bytes:,}",
        f"{ref_bytes / ours_bytes:.1f}x",
    )
    table.add_row(
        "341 iterations", f"{341 * ours_total:.1f} s", f"{341 * ref_total / 60:.1f} min", ""
    )
    Console().print(table)
    if scaled:
        print(
            f"reference worker step measured on {args.rows} rows per worker, scaled linearly to all rows"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
