"""Derive ``split.csv`` (row ids and their part) from the reference breast_homo files.

Run once by the maintainers, where the FATE reference files are available; the repository keeps
only the derived split (ids and part names, no data), and ``homolr.learning.write_breast_homo``
rebuilds the three files from scikit-learn's copy of the data set::

    python examples/breast_homo/derive_split.py ../shared/data src/homolr/learning/breast_homo_split.csv
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

PARTS = ("guest", "host", "test")


def main(reference_dir: Path, out: Path) -> None:
    rows: list[tuple[int, str]] = []
    for part in PARTS:
        with (reference_dir / f"breast_homo_{part}.csv").open(newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader)
            if header[:2] != ["id", "y"]:
                raise SystemExit(f"unexpected header in breast_homo_{part}.csv: {header[:3]}")
            rows += [(int(row[0]), part) for row in reader if row]
    ids = [i for i, _ in rows]
    if len(set(ids)) != len(ids) or sorted(ids) != list(range(569)):
        raise SystemExit("the reference files should hold each of the 569 rows exactly once")
    with out.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["id", "part"])
        writer.writerows(rows)
    print(f"wrote {out}: {len(rows)} rows")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
