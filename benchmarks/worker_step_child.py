"""Child process of bench_training.py: one worker's encrypted step, timed, in a fresh interpreter.

It imports what ``homolr worker`` imports to compute (the worker loop, transport included) and
nothing of the benchmark, so its peak RSS is a worker's. Reads a JSON spec (``d``, ``rows``,
``repeat``, file paths of the public key, the model payload and where to write the update), runs
``EncryptedLocalStep.update`` ``repeat`` times on synthetic data, writes the packed update and
prints one JSON line: ``{"step_s": median seconds, "vm_hwm_kb": ..., "n_ciphertexts": ...}``.

Usage: python benchmarks/worker_step_child.py SPEC.json
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import homolr.worker.loop  # noqa: F401  (a worker process has its loop and transport loaded)
from homolr.crypto import PublicKey
from homolr.learning import Dataset
from homolr.protocol.messages import GlobalModel, ModelHeader, TrainingPlan
from homolr.worker.local import EncryptedLocalStep


def synthetic_dataset(d: int, rows: int, seed: int) -> Dataset:
    """``rows`` rows of ``d - 1`` standard normal features, labels from a random logistic model."""
    rng = np.random.default_rng([d, rows, seed])
    X = rng.normal(size=(rows, d - 1))
    true_w = rng.normal(size=d - 1) / np.sqrt(d)
    y = (rng.random(rows) < 1 / (1 + np.exp(-X @ true_w))).astype(np.int64)
    names = tuple(f"x{i}" for i in range(d - 1))
    return Dataset(X, y, np.arange(rows), names, f"synthetic {rows}x{d - 1}")


def vm_hwm_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    d, rows, repeat = int(spec["d"]), int(spec["rows"]), int(spec["repeat"])
    plan = TrainingPlan(**spec["plan"]).validate()
    public_key = PublicKey.from_bytes(Path(spec["public_key"]).read_bytes())
    header = ModelHeader(round=0, encrypted=True, length=d, frac_bits=plan.frac_bits, weight=1.0)
    model = GlobalModel(header, Path(spec["model"]).read_bytes())
    step = EncryptedLocalStep(synthetic_dataset(d, rows, 0), plan, public_key)
    public_key.raw_encrypt(0)  # the mask table is built once per process, not per round
    times = []
    for _ in range(max(repeat, 1)):
        start = time.perf_counter()
        packed = step.update(model)
        times.append(time.perf_counter() - start)
    Path(spec["update"]).write_bytes(packed.to_bytes())
    result = {
        "step_s": statistics.median(times),
        "vm_hwm_kb": vm_hwm_kb(),
        "n_ciphertexts": len(packed.ciphertexts),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
