"""The breast_homo example data, rebuilt from scikit-learn's copy of the Wisconsin data set.

The reference solution trains on FATE's ``breast_homo_guest.csv`` / ``_host.csv`` /
``_test.csv`` (FederatedAI/FATE, ``examples/data``, Apache-2.0). Their rows are the 569 rows of
the Wisconsin Diagnostic Breast Cancer data (UCI), which scikit-learn ships
(:func:`sklearn.datasets.load_breast_cancer`); the files are:

* ``id``: the row index in scikit-learn's copy; ``y``: its target (1 = benign);
* ``x0..x29``: the 30 features in the order "worst", "mean", "error"
  (:data:`~homolr.learning.data.REFERENCE_FEATURE_ORDER`), standardised over all 569 rows
  (population standard deviation) and rounded to 6 decimals.

homolr ships only which row goes where (``breast_homo_split.csv``: ``id,part`` in the reference
files' row order, derived once by ``examples/breast_homo/derive_split.py``), so
:func:`write_breast_homo` rebuilds the three files without copying them: same header, ids,
labels and row order, values equal to the published ones to 2e-15 (the published text carries
float noise in the last digit, e.g. ``-1.1429280000000002``).
"""

from __future__ import annotations

import csv
import io
import os
from importlib import resources
from pathlib import Path

import numpy as np
import numpy.typing as npt

from homolr.errors import DataError
from homolr.learning.data import REFERENCE_FEATURE_ORDER, Dataset, write_csv

IntArray = npt.NDArray[np.int64]

PARTS = ("guest", "host", "test")
SPLIT_RESOURCE = "breast_homo_split.csv"
#: Decimals of the published standardised values.
DECIMALS = 6


def breast_homo_split() -> dict[str, IntArray]:
    """Row ids of each part, in the reference files' row order.

    Returns
    -------
    dict
        ``{"guest": ids (227,), "host": ids (228,), "test": ids (114,)}``; together the 569
        rows of :func:`sklearn.datasets.load_breast_cancer`, each once.
    """
    text = resources.files("homolr.learning").joinpath(SPLIT_RESOURCE).read_text("utf-8")
    reader = csv.reader(io.StringIO(text))
    if next(reader, None) != ["id", "part"]:
        raise DataError(f"{SPLIT_RESOURCE}:1: expected the header 'id,part'")
    parts: dict[str, list[int]] = {part: [] for part in PARTS}
    for line, row in enumerate(reader, start=2):
        if len(row) != 2 or row[1] not in parts or not row[0].isdigit():
            raise DataError(f"{SPLIT_RESOURCE}:{line}: expected '<id>,<guest|host|test>'")
        parts[row[1]].append(int(row[0]))
    ids = sorted(i for part in parts.values() for i in part)
    if ids != list(range(569)):
        raise DataError(f"{SPLIT_RESOURCE}: expected each of the 569 row ids exactly once")
    return {part: np.array(rows, dtype=np.int64) for part, rows in parts.items()}


def breast_homo_sets(*, raw: bool = False) -> tuple[Dataset, Dataset, Dataset]:
    """The guest, host and test sets of the reference, from scikit-learn's copy.

    Parameters
    ----------
    raw : bool
        False: standardised over all 569 rows and rounded to 6 decimals, as published.
        True: the same rows and columns with the raw Wisconsin measurements (values up to
        ~4,250), for the federated standardisation demo.

    Returns
    -------
    guest, host, test : Dataset
    """
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    X = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target, dtype=np.int64)
    if not raw:
        X = np.round((X - X.mean(axis=0)) / X.std(axis=0), DECIMALS)
    X = X[:, list(REFERENCE_FEATURE_ORDER)]
    names = tuple(f"x{j}" for j in range(X.shape[1]))
    kind = "raw" if raw else "standardised"
    split = breast_homo_split()
    guest, host, test = (
        Dataset(X[ids], y[ids], ids, names, f"breast_homo_{part} ({kind}, rebuilt)")
        for part, ids in ((p, split[p]) for p in PARTS)
    )
    return guest, host, test


def write_breast_homo(
    out_dir: str | os.PathLike[str], *, raw: bool = False
) -> tuple[Path, Path, Path]:
    """Write ``breast_homo_guest.csv``, ``_host.csv`` and ``_test.csv`` into ``out_dir``.

    Parameters
    ----------
    out_dir : str or path-like
        Created if needed; existing files of these names are replaced (atomically).
    raw : bool
        Unstandardised features instead of the published standardised ones (see
        :func:`breast_homo_sets`).

    Returns
    -------
    guest, host, test : Path
    """
    target = Path(out_dir)
    target.mkdir(parents=True, exist_ok=True)
    paths = tuple(target / f"breast_homo_{part}.csv" for part in PARTS)
    for dataset, path in zip(breast_homo_sets(raw=raw), paths, strict=True):
        write_csv(dataset, path)
    guest, host, test = paths
    return guest, host, test


__all__ = ["PARTS", "breast_homo_sets", "breast_homo_split", "write_breast_homo"]
