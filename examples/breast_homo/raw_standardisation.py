"""Encrypted-mode training on raw data, with federated standardisation and central standardisation.

Plaintext simulation of the encrypted path (24-bit fixed point, the recommended plan), on the demo
split of scikit-learn's Wisconsin copy with raw features; see
``homolr.learning.experiments`` for what each column means::

    python examples/breast_homo/raw_standardisation.py [n_seeds]
"""

from __future__ import annotations

import math
import sys

from homolr.learning.experiments import standardisation_experiment


def cell(value: float) -> str:
    return "diverges" if math.isnan(value) else f"{value:.3f}"


def main(seeds: int) -> None:
    print("seed | raw (lr 0.3) | raw (stable lr) | federated std. | one bound | central std.")
    for seed in range(seeds):
        r = standardisation_experiment(seed)
        print(
            f"{seed:4d} | {cell(r.raw):>12} | {cell(r.raw_stable):>15} | {cell(r.federated):>14} "
            f"| {cell(r.federated_one_bound):>9} | {cell(r.central):>12}"
        )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
