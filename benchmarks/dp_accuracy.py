"""Test accuracy versus epsilon on the reference data, with DP inserted where the key holder applies it.

Both modes are simulated in plaintext, in-process, with the real pieces of :mod:`homolr.privacy`
at the places the enclave will run them:

* encrypted mode, record-level DP: each member clips its rows (``clip_rows``, bias entry
  included) and takes the Taylor step ``M_i w + b_i`` (``sufficient_stats`` + ``linear_update``);
  the key holder spends the ledger, applies ``DpMechanism.for_record_round(...).release`` to the
  sum (noise of std ``z * sensitivity``, projection onto ``n B``, grid); the PS averages
  (``global_weights``); the key holder admits the model for the next round (``admit_model``).
* secure-aggregation mode, member-level DP (DP-FedAvg): each member trains locally
  (``sgd_epochs``), clips its update ``w_i - w`` (``clip_update``, toward zero on the grid); the
  key holder releases the noisy sum (``DpMechanism.for_member_round``); the PS adds its average to
  ``w``. Member-level DP hides a whole member, so with the reference's two members the noise is
  that of a data set of two; ``--members K ...`` (default 2 and 50) deals the same training
  rows to ``K`` members to show how it scales with the federation.

The noise multiplier is calibrated to epsilon for the mode's number of rounds; the noise bytes
come from a seeded SHAKE-256 stream (``deterministic_source``) so runs are reproducible. The
models are evaluated on the test rows as they are (not clipped), as a deployed model sees them.

Usage: python benchmarks/dp_accuracy.py [--seeds N] [--members K ...] [--json] [--png PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from homolr.learning import (
    Dataset,
    add_bias,
    demo_split,
    evaluate,
    linear_update,
    load_csv,
    sgd_epochs,
    sufficient_stats,
    train_fedavg,
    train_taylor,
)
from homolr.privacy import (
    DpMechanism,
    PrivacyConfig,
    PrivacyLedger,
    admit_model,
    calibrate_noise_multiplier,
    clip_rows,
    clip_update,
    deterministic_source,
)
from homolr.server.aggregation import global_weights

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
EPSILONS = (0.5, 1.0, 2.0, 4.0, 8.0)
DELTA = 1e-5
FRAC_BITS = 24


@dataclass(frozen=True)
class RecordPlan:
    """Encrypted mode with record-level DP (choices explained in docs/privacy.md, section 7)."""

    rounds: int = 20
    lr: float = 0.5
    alpha: float = 0.01
    clip: float = 2.5
    model_bound: float = 2.0


@dataclass(frozen=True)
class MemberPlan:
    """Secure-aggregation mode with member-level DP."""

    rounds: int = 10
    lr: float = 0.3
    alpha: float = 0.003
    batch_size: int = 16
    local_epochs: int = 5
    clip: float = 0.5


def load_reference() -> tuple[list[Dataset], Dataset, str]:
    names = ("guest", "host", "test")
    files = [SHARED / f"breast_homo_{n}.csv" for n in names]
    if all(f.is_file() for f in files):
        guest, host, test = (load_csv(f) for f in files)
        return [guest, host], test, "reference files (shared/data)"
    guest, host, test = demo_split(seed=0)
    return [guest, host], test, "demo split (scikit-learn's breast-cancer copy)"


def deal(members: Sequence[Dataset], k: int, seed: int) -> list[Dataset]:
    """The training rows of ``members`` dealt at random to ``k`` members (same total)."""
    X = np.vstack([m.X for m in members])
    y = np.concatenate([m.y for m in members])
    order = np.random.default_rng(seed).permutation(len(y))
    parts = np.array_split(order, k)
    names = members[0].feature_names
    return [Dataset(X[p], y[p], None, names, f"dealt[{i}]") for i, p in enumerate(parts)]


def train_record_dp(
    members: Sequence[Dataset], plan: RecordPlan, epsilon: float | None, seed: int
) -> np.ndarray:
    """Encrypted mode, record level; ``epsilon=None``: clipping and projection but no noise."""
    n, d = len(members), members[0].n_features + 1
    stats = [sufficient_stats(add_bias(clip_rows(m.X, plan.clip)), m.y) for m in members]
    config = PrivacyConfig(
        level="record",
        epsilon=epsilon,
        noise_multiplier=None if epsilon is not None else 1.0,
        delta=DELTA,
        clip=plan.clip,
        model_bound=plan.model_bound,
        min_samples=min(m.n_samples for m in members),
    )
    z = calibrate_noise_multiplier(epsilon, DELTA, plan.rounds) if epsilon else None
    ledger = PrivacyLedger(z, DELTA, budget=epsilon) if z is not None else None
    source = deterministic_source(f"record-{seed}".encode())
    names = tuple(f"m{k}" for k in range(n))
    w = np.zeros(d)
    for t in range(plan.rounds):
        w = admit_model(config, w, FRAC_BITS)
        total = sum((_taylor(s, w, plan.lr, plan.alpha) for s in stats), np.zeros(d))
        if z is not None and ledger is not None:
            ledger.spend(t)
            mech = DpMechanism.for_record_round(
                config,
                z,
                lr=plan.lr,
                alpha=plan.alpha,
                n_members=n,
                n_weights=d,
                frac_bits=FRAC_BITS,
                source=source,
            )
            total = mech.release(total)
        w = global_weights(total, names, "equal", {})
    return admit_model(config, w, FRAC_BITS)


def _taylor(stats: object, w: np.ndarray, lr: float, alpha: float) -> np.ndarray:
    M, b = linear_update(stats, lr, alpha)  # type: ignore[arg-type]
    return np.asarray(M @ w + b)


def train_member_dp(
    members: Sequence[Dataset], plan: MemberPlan, epsilon: float | None, seed: int
) -> np.ndarray:
    """Secure-aggregation mode, member level (DP-FedAvg); ``epsilon=None``: clipping only."""
    n, d = len(members), members[0].n_features + 1
    data = [(add_bias(m.X), m.y) for m in members]
    config = PrivacyConfig(
        level="member",
        epsilon=epsilon,
        noise_multiplier=None if epsilon is not None else 1.0,
        delta=DELTA,
        clip=plan.clip,
    )
    z = calibrate_noise_multiplier(epsilon, DELTA, plan.rounds) if epsilon else None
    source = deterministic_source(f"member-{seed}".encode())
    rngs = [np.random.default_rng([seed, k]) for k in range(n)]
    w = np.zeros(d)
    for _ in range(plan.rounds):
        total = np.zeros(d)
        for (Xb, y), rng in zip(data, rngs, strict=True):
            local = sgd_epochs(
                w,
                Xb,
                y,
                lr=plan.lr,
                alpha=plan.alpha,
                batch_size=plan.batch_size,
                epochs=plan.local_epochs,
                rng=rng,
            )
            total += clip_update(local - w, plan.clip, frac_bits=FRAC_BITS)[0]
        if z is not None:
            mech = DpMechanism.for_member_round(
                config, z, n_members=n, frac_bits=FRAC_BITS, source=source
            )
            total = mech.release(total)
        w = w + total / n
    return w


def _accuracy(w: np.ndarray, test: Dataset) -> float:
    return evaluate(w, add_bias(test.X), test.y).accuracy


def _summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "mean": statistics.fmean(values),
        "std": statistics.pstdev(values),
        "min": min(values),
        "max": max(values),
    }


def run(seeds: int, member_counts: Sequence[int]) -> dict[str, object]:
    members, test, source = load_reference()
    record, member = RecordPlan(), MemberPlan()
    federations = {k: members if k == 2 else deal(members, k, seed=0) for k in member_counts}
    columns = ["encrypted_record", *(f"aggregate_member_{k}" for k in member_counts)]
    rows: list[dict[str, object]] = []
    settings: list[tuple[str, float | None]] = [(f"{e:g}", e) for e in EPSILONS]
    settings.append(("inf (clip only)", None))
    for label, eps in settings:
        row: dict[str, object] = {"epsilon": label}
        row["encrypted_record"] = _summary(
            [_accuracy(train_record_dp(members, record, eps, s), test) for s in range(seeds)]
        )
        for k, fed in federations.items():
            row[f"aggregate_member_{k}"] = _summary(
                [_accuracy(train_member_dp(fed, member, eps, s), test) for s in range(seeds)]
            )
        row["z_record"] = calibrate_noise_multiplier(eps, DELTA, record.rounds) if eps else None
        row["z_member"] = calibrate_noise_multiplier(eps, DELTA, member.rounds) if eps else None
        rows.append(row)
    baseline: dict[str, object] = {"epsilon": "no DP (default plan)", "z_record": None}
    plain = train_taylor(members, iters=400, lr0=0.3, schedule="constant", alpha=0.01)
    baseline["encrypted_record"] = _summary([_accuracy(plain.w, test)])
    for k, fed in federations.items():
        models = [
            train_fedavg(
                fed,
                rounds=100,
                lr=0.2,
                batch_size=64,
                local_epochs=2,
                alpha=0.003,
                seed=s,
                weighting="equal",
            ).w
            for s in range(seeds)
        ]
        baseline[f"aggregate_member_{k}"] = _summary([_accuracy(w, test) for w in models])
    baseline["z_member"] = None
    rows.append(baseline)
    return {
        "data": source,
        "delta": DELTA,
        "seeds": seeds,
        "columns": columns,
        "record_plan": record.__dict__,
        "member_plan": member.__dict__,
        "rows": rows,
    }


def _title(column: str) -> str:
    if column == "encrypted_record":
        return "encrypted, record-level (2 members)"
    return f"aggregate, member-level ({column.rsplit('_', 1)[1]} members)"


def _format(result: dict[str, object]) -> str:
    def cell(s: dict[str, float]) -> str:
        return f"{s['mean']:.3f} ± {s['std']:.3f} [{s['min']:.3f}, {s['max']:.3f}]"

    columns = result["columns"]
    rows = result["rows"]
    assert isinstance(columns, list) and isinstance(rows, list)
    lines = [
        f"data: {result['data']}; delta = {result['delta']}; {result['seeds']} seeds; "
        "test accuracy as mean ± std [min, max]",
        f"record plan: {result['record_plan']}",
        f"member plan: {result['member_plan']}",
        "",
        f"{'epsilon':<21} {'z rec':>6} {'z mem':>6}  "
        + "  ".join(f"{_title(c):<36}" for c in columns),
    ]
    for row in rows:
        z_r = f"{row['z_record']:.2f}" if row["z_record"] else "-"
        z_m = f"{row['z_member']:.2f}" if row["z_member"] else "-"
        cells = "  ".join(f"{cell(row[c]):<36}" for c in columns)
        lines.append(f"{row['epsilon']:<21} {z_r:>6} {z_m:>6}  {cells}")
    return "\n".join(lines)


def _plot(result: dict[str, object], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = result["columns"]
    rows = result["rows"]
    assert isinstance(columns, list) and isinstance(rows, list)
    dp_rows = rows[: len(EPSILONS)]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for column, marker in zip(columns, "osD^v", strict=False):
        means = [r[column]["mean"] for r in dp_rows]
        stds = [r[column]["std"] for r in dp_rows]
        bars = ax.errorbar(
            EPSILONS, means, yerr=stds, marker=marker, capsize=3, label=_title(column)
        )
        ax.axhline(rows[-1][column]["mean"], linestyle=":", color=bars.lines[0].get_color())
    ax.set_xscale("log", base=2)
    ax.set_xticks(EPSILONS, [f"{e:g}" for e in EPSILONS])
    ax.set_xlabel(f"epsilon (delta = {result['delta']}), whole training")
    ax.set_ylabel("test accuracy (breast_homo_test)")
    ax.set_title("Accuracy vs privacy budget (dotted: same federation, no DP)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument(
        "--members",
        type=int,
        nargs="+",
        default=[2, 50],
        help="federation sizes for aggregate mode (2 = the reference split; more deal its rows)",
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--png", metavar="PATH")
    args = parser.parse_args(argv)
    result = run(args.seeds, args.members)
    print(json.dumps(result, indent=2) if args.json else _format(result))
    if args.png:
        _plot(result, args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
