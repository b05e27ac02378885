"""Data sets: CSV loading with precise validation, CSV writing, the demo split, the bias column.

File format (the FATE ``breast_homo_*`` layout used by the reference solution)::

    id,y,x0,x1,...,x29
    133,1,0.254879,-1.046633,...

* ``y`` (required; another name with ``label=``) is the binary label, written ``0``/``1``
  (``0.0``/``1.0`` accepted);
* ``id`` (optional) is an integer row id;
* every other column is a feature. Without ``features=`` they are kept in file order; with
  ``features=`` (the names the federation agreed on) they are matched by *name*, returned in
  that order whatever the file's order, and a missing or unexpected column is refused.

Every validation failure raises :class:`homolr.errors.DataError` with a compiler-style message
``<file>:<line>: column '<name>': <problem>``. Reading is streaming (``csv`` module, one pass)
and decodes UTF-8 line by line so that even an encoding error is reported with its line.

The reference rows are the Wisconsin Diagnostic Breast Cancer data as shipped by scikit-learn:
``id`` is the row index in :func:`sklearn.datasets.load_breast_cancer`, ``y`` its target
(1 = benign, 0 = malignant), and ``x0..x29`` the 30 features in the order "worst" (sklearn
columns 20-29), "mean" (0-9), "error" (10-19), standardised over all 569 rows. :func:`demo_split`
rebuilds files of the same layout and sizes from scikit-learn's copy.
"""

from __future__ import annotations

import csv
import math
import operator
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

from homolr.errors import ConfigError, DataError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

LABEL_COLUMN = "y"
ID_COLUMN = "id"
#: Sizes of the reference files breast_homo_guest / _host / _test.
DEMO_SIZES = (227, 228, 114)
#: sklearn column order of the reference files: "worst" features, then "mean", then "error".
REFERENCE_FEATURE_ORDER = (*range(20, 30), *range(0, 10), *range(10, 20))
SCALER_FITS = ("all", "train", "none")


@dataclass(frozen=True)
class Dataset:
    """A labelled data set held by one party.

    Attributes
    ----------
    X : ndarray of shape (n_samples, n_features), float64
        Feature matrix, without bias column.
    y : ndarray of shape (n_samples,), int64
        Labels in {0, 1}; empty (shape (0,)) for rows to score loaded by
        :func:`load_unlabelled_csv` from a file without a ``y`` column.
    ids : ndarray of shape (n_samples,), int64, or None
        Row ids when the file has an ``id`` column.
    feature_names : tuple of str, length n_features
        Names of the feature columns, in order.
    source : str
        Where the data came from (a path or a description), used in messages.
    ignored_columns : tuple of str
        Columns of the file that were neither ``id``, the label nor an expected feature and were
        skipped (only :func:`load_unlabelled_csv` with ``ignore_extra=True`` skips any), in file
        order, so that a caller can tell the user.
    """

    X: FloatArray
    y: IntArray
    ids: IntArray | None
    feature_names: tuple[str, ...]
    source: str
    ignored_columns: tuple[str, ...] = ()

    @property
    def n_samples(self) -> int:
        """Number of rows."""
        return int(self.X.shape[0])

    @property
    def n_features(self) -> int:
        """Number of feature columns (bias excluded)."""
        return int(self.X.shape[1])


def add_bias(X: FloatArray) -> FloatArray:
    """Prepend a column of ones (the reference puts the bias weight first, as ``w[0]``).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    Returns
    -------
    Xb : ndarray of shape (n_samples, n_features + 1), float64
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}")
    return np.hstack([np.ones((X.shape[0], 1)), X])


# --------------------------------------------------------------------------------- warnings

#: Below this many rows, :func:`data_warnings` says the set is too small to train on alone.
MIN_ROWS = 10


def data_warnings(dataset: Dataset, *, min_rows: int = MIN_ROWS) -> list[str]:
    """Plain-language warnings about a data set that loads but will train badly.

    Pure: nothing is printed; the worker (for its training set) and the PS (for its validation
    set) show them. Each warning starts with ``dataset.source``.

    Parameters
    ----------
    dataset : Dataset
    min_rows : int
        Fewer rows than this is reported as too few.

    Returns
    -------
    list of str
        In this order, each only when it applies: too few rows; fewer rows than features;
        constant feature columns (named, with their value); a single class among the labels
        (an unlabelled set, ``y`` empty, is not checked for classes).
    """
    where = dataset.source
    n, d = dataset.n_samples, dataset.n_features
    notes: list[str] = []
    if n < min_rows:
        notes.append(
            f"{where}: only {n} row{'s' if n != 1 else ''} (fewer than {min_rows}); its "
            "contribution will be noisy"
        )
    if n < d:
        notes.append(
            f"{where}: fewer rows ({n}) than features ({d}); on its own this data cannot "
            "determine the model (the federation's other members must make up for it)"
        )
    if n:
        constant = np.flatnonzero(dataset.X.max(axis=0) == dataset.X.min(axis=0))
        if constant.size:
            listed = ", ".join(
                f"'{dataset.feature_names[j]}' (= {dataset.X[0, j]:g})" for j in constant
            )
            plural = "s" if constant.size > 1 else ""
            notes.append(
                f"{where}: {constant.size} constant feature column{plural}: {listed}; "
                "no information for training in this file"
            )
    if dataset.y.size:
        classes = np.unique(dataset.y)
        if classes.size == 1:
            notes.append(
                f"{where}: every row has label {int(classes[0])}; a single class cannot "
                "train a classifier on its own"
            )
    return notes


# --------------------------------------------------------------------------------- CSV reading


def _where(path: str, line: int, column: str | None = None) -> str:
    """Message prefix ``file:line: column 'name':``."""
    prefix = f"{path}:{line}:"
    return f"{prefix} column '{column}':" if column is not None else prefix


def _decoded_lines(raw: Iterator[bytes], path: str) -> Iterator[str]:
    """Decode lines as UTF-8 one by one, so a bad byte is reported with its line number."""
    for number, line in enumerate(raw, start=1):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            field = line[: exc.start].count(b",") + 1
            raise DataError(
                f"{_where(path, number)} field {field}: not valid UTF-8 "
                f"(byte 0x{line[exc.start]:02x} at byte offset {exc.start} of the line)"
            ) from None
        yield text.removeprefix("\ufeff") if number == 1 else text


def _check_header(header: list[str], path: str, *, label: str, require_label: bool) -> None:
    """Validate the header row: named columns, no duplicates, a label column, not data."""
    if all(_is_number(name) for name in header):
        raise DataError(
            f"{_where(path, 1)} missing header: the first line looks like data "
            f"({','.join(header[:3])}...); expected column names such as 'id,y,x0,...'"
        )
    seen: dict[str, int] = {}
    for position, name in enumerate(header, start=1):
        if not name:
            raise DataError(f"{_where(path, 1)} column {position}: empty column name")
        if name in seen:
            raise DataError(
                f"{_where(path, 1, name)} duplicate column name "
                f"(columns {seen[name]} and {position})"
            )
        seen[name] = position
    if require_label and label not in seen:
        raise DataError(
            f"{_where(path, 1)} no label column '{label}' in the header "
            f"(got columns: {', '.join(header)})"
        )


def _is_number(text: str) -> bool:
    """Whether ``float(text)`` succeeds."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def _expected_features(features: Sequence[str] | None, label: str) -> tuple[str, ...] | None:
    """Validate the caller's list of feature names (a programming or plan error: ConfigError)."""
    if features is None:
        return None
    if isinstance(features, str):
        raise ConfigError(
            f"features must be a sequence of column names, not one string {features!r}"
        )
    names = tuple(features)
    if not names:
        raise ConfigError("features must name at least one column, got an empty list")
    bad = [n for n in names if not isinstance(n, str) or not n or n != n.strip()]
    if bad:
        raise ConfigError(f"feature names must be non-empty strings without edge spaces: {bad}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"features lists {_quoted(repeated)} more than once")
    reserved = [n for n in names if n in (label, ID_COLUMN)]
    if reserved:
        raise ConfigError(
            f"features must not include the label column '{label}' or the id column "
            f"'{ID_COLUMN}', got {_quoted(reserved)}"
        )
    return names


def _quoted(names: Sequence[str]) -> str:
    """``'a', 'b'`` for messages."""
    return ", ".join(repr(n) for n in names)


def _mismatch(path: str, expected: Sequence[str], missing: list[str], extra: list[str]) -> str:
    """Message for a header whose feature columns differ from the expected names."""
    parts = []
    if missing:
        parts.append(f"missing {len(missing)}: {_quoted(missing)}")
    if extra:
        parts.append(f"unexpected {len(extra)}: {_quoted(extra)}")
    folded = {n.casefold() for n in extra}
    hint = (
        " (column names are case-sensitive)" if any(n.casefold() in folded for n in missing) else ""
    )
    return (
        f"{_where(path, 1)} the header's feature columns do not match the {len(expected)} "
        f"expected features ({'; '.join(parts)}){hint}"
    )


def select_features(dataset: Dataset, names: Sequence[str]) -> Dataset:
    """``dataset`` with its feature columns matched by name to ``names`` (in that order).

    Raises
    ------
    DataError
        Naming the file and listing the missing and unexpected columns when the names differ.
    """
    names = tuple(names)
    if dataset.feature_names == names:
        return dataset
    have = {name: j for j, name in enumerate(dataset.feature_names)}
    missing = [n for n in names if n not in have]
    extra = [n for n in dataset.feature_names if n not in set(names)]
    if missing or extra:
        raise DataError(_mismatch(dataset.source, names, missing, extra))
    order = [have[n] for n in names]
    return replace(dataset, X=dataset.X[:, order], feature_names=names)


@dataclass(frozen=True)
class _Layout:
    """Column positions resolved from the header."""

    names: tuple[str, ...]
    label_name: str
    label: int | None
    id: int | None
    features: tuple[int, ...]
    ignored: tuple[int, ...]

    @classmethod
    def from_header(
        cls,
        header: list[str],
        path: str,
        *,
        label: str,
        expected: tuple[str, ...] | None,
        ignore_extra: bool,
    ) -> _Layout:
        """Resolve the columns; with ``expected`` names, match features by name, in that order."""
        label_pos = header.index(label) if label in header else None
        id_pos = header.index(ID_COLUMN) if ID_COLUMN in header else None
        candidates = [i for i in range(len(header)) if i not in (label_pos, id_pos)]
        if expected is None:
            return cls(tuple(header), label, label_pos, id_pos, tuple(candidates), ())
        position = {header[i]: i for i in candidates}
        wanted = set(expected)
        missing = [n for n in expected if n not in position]
        extra = [header[i] for i in candidates if header[i] not in wanted]
        if missing or (extra and not ignore_extra):
            raise DataError(_mismatch(path, expected, missing, [] if ignore_extra else extra))
        ignored = tuple(i for i in candidates if header[i] not in wanted)
        features = tuple(position[n] for n in expected)
        return cls(tuple(header), label, label_pos, id_pos, features, ignored)

    def feature_getter(self) -> Callable[[list[str]], Sequence[str]]:
        """Fast extraction of the feature fields of a row."""
        if not self.features:
            return lambda row: ()
        if len(self.features) == 1:
            index = self.features[0]
            return lambda row: (row[index],)
        return operator.itemgetter(*self.features)


def _parse_label(text: str, path: str, line: int, label: str) -> int:
    """Parse a label written 0/1 (or 0.0/1.0)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if value not in (0.0, 1.0):
        raise DataError(f"{_where(path, line, label)} label must be 0 or 1, got {text!r}")
    return int(value)


def _parse_id(text: str, path: str, line: int) -> int:
    """Parse an integer row id."""
    try:
        return int(text)
    except ValueError:
        raise DataError(
            f"{_where(path, line, ID_COLUMN)} id must be an integer, got {text!r}"
        ) from None


def _parse_features(fields: Sequence[str], layout: _Layout, path: str, line: int) -> list[float]:
    """Convert the feature fields to floats, naming the first bad column on failure."""
    try:
        return list(map(float, fields))
    except ValueError:
        pass
    for position, text in zip(layout.features, fields, strict=True):
        if not _is_number(text):
            name = layout.names[position]
            raise DataError(f"{_where(path, line, name)} feature is not a number: {text!r}")
    raise AssertionError("unreachable: float() failed on no field")  # pragma: no cover


def _check_width(row: list[str], layout: _Layout, path: str, line: int) -> None:
    """Reject a row whose number of fields differs from the header's."""
    expected = len(layout.names)
    if len(row) < expected:
        missing = layout.names[len(row)]
        raise DataError(
            f"{_where(path, line, missing)} row has {len(row)} fields, header has {expected} "
            f"(first missing column: '{missing}')"
        )
    if len(row) > expected:
        raise DataError(
            f"{_where(path, line, layout.names[-1])} row has {len(row)} fields, header has "
            f"{expected} (extra field {expected + 1} after the last column '{layout.names[-1]}')"
        )


def _check_finite(X: FloatArray, lines: list[int], layout: _Layout, path: str) -> None:
    """Reject nan/inf features, naming the first offending line and column."""
    bad = ~np.isfinite(X)
    if not bad.any():
        return
    row, col = (int(v) for v in np.argwhere(bad)[0])
    name = layout.names[layout.features[col]]
    raise DataError(f"{_where(path, lines[row], name)} feature is not finite: {X[row, col]!r}")


def _read_rows(
    reader: Iterator[list[str]], layout: _Layout, path: str, line_of: Callable[[], int]
) -> tuple[list[list[float]], list[int], list[int], list[int]]:
    """Parse and validate every data row; returns features, labels, ids and line numbers."""
    features: list[list[float]] = []
    labels: list[int] = []
    ids: list[int] = []
    lines: list[int] = []
    get_features = layout.feature_getter()
    for row in reader:
        line = line_of()
        if not row:
            continue
        _check_width(row, layout, path, line)
        if layout.label is not None:
            labels.append(_parse_label(row[layout.label], path, line, layout.label_name))
        if layout.id is not None:
            ids.append(_parse_id(row[layout.id], path, line))
        features.append(_parse_features(get_features(row), layout, path, line))
        lines.append(line)
    return features, labels, ids, lines


def load_csv(
    path: str | os.PathLike[str],
    *,
    features: Sequence[str] | None = None,
    label: str = LABEL_COLUMN,
) -> Dataset:
    """Load and validate a labelled CSV file.

    Parameters
    ----------
    path : str or path-like
        File with header ``[id,]<label>,<features...>`` (column order free).
    features : sequence of str, optional
        The expected feature names (e.g. the training plan's). When given, columns are matched
        by name and ``X``'s columns come in this order whatever the file's order; a file that
        lacks one of them or has any other column (besides ``id`` and the label) is refused,
        with every missing and unexpected name listed. When omitted, every column other than
        ``id`` and the label is a feature, in file order.
    label : str
        Name of the label column (default ``"y"``).

    Returns
    -------
    Dataset
        ``X`` of shape (n_samples, n_features), ``y`` of shape (n_samples,).

    Raises
    ------
    DataError
        Missing, unreadable, empty or non-UTF-8 file; missing header, no label column, duplicate
        or empty column names; feature columns that differ from ``features``; a row with the
        wrong number of fields; a non-numeric or non-finite feature; a label not in {0, 1}; a
        non-integer id; no data rows. The message names the file, the 1-based line number and
        the column.
    ConfigError
        ``features`` itself is invalid (empty, repeated names, includes ``id`` or the label).
    """
    expected = _expected_features(features, label)
    return _open_and_load(path, label=label, expected=expected, ignore_extra=False)


def load_unlabelled_csv(
    path: str | os.PathLike[str],
    *,
    features: Sequence[str] | None = None,
    label: str = LABEL_COLUMN,
    ignore_extra: bool = True,
) -> Dataset:
    """Load rows to score: like :func:`load_csv`, but the label column may be absent.

    Parameters
    ----------
    path : str or path-like
    features : sequence of str, optional
        The model's feature names; matched by name as in :func:`load_csv`. A missing one is
        always refused.
    label : str
        Name of the label column; when present its values are loaded into ``y``.
    ignore_extra : bool
        With ``features``: skip columns that are not features (nor ``id`` or the label) instead
        of refusing the file; their names are returned in ``Dataset.ignored_columns`` so the
        caller can say so.

    Returns
    -------
    Dataset
        ``y`` holds the labels when the file has a label column, else it is empty (shape (0,)).
    """
    expected = _expected_features(features, label)
    return _open_and_load(
        path, label=label, expected=expected, ignore_extra=ignore_extra, require_label=False
    )


def _open_and_load(
    path: str | os.PathLike[str],
    *,
    label: str,
    expected: tuple[str, ...] | None,
    ignore_extra: bool,
    require_label: bool = True,
) -> Dataset:
    name = os.fspath(path)
    try:
        with open(name, "rb") as raw:
            return _load_stream(
                raw,
                name,
                label=label,
                expected=expected,
                ignore_extra=ignore_extra,
                require_label=require_label,
            )
    except FileNotFoundError:
        raise DataError(f"{name}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{name}: is a directory, expected a CSV file") from None
    except OSError as exc:
        raise DataError(f"{name}: cannot read file ({exc.strerror or exc})") from None


def _load_stream(
    raw: Iterator[bytes],
    path: str,
    *,
    label: str = LABEL_COLUMN,
    expected: tuple[str, ...] | None = None,
    ignore_extra: bool = False,
    require_label: bool = True,
) -> Dataset:
    """Parse an open binary stream (see :func:`load_csv`); without a label column (allowed only
    when ``require_label`` is false) the labels are an empty array."""
    reader = csv.reader(_decoded_lines(raw, path), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise DataError(f"{path}: empty file (expected a header line such as 'id,y,x0,...')")
        header = [name.strip() for name in header]
        _check_header(header, path, label=label, require_label=require_label)
        layout = _Layout.from_header(
            header, path, label=label, expected=expected, ignore_extra=ignore_extra
        )
        features, labels, ids, lines = _read_rows(reader, layout, path, lambda: reader.line_num)
    except csv.Error as exc:
        raise DataError(f"{_where(path, reader.line_num)} malformed CSV ({exc})") from None
    if not lines:
        raise DataError(f"{_where(path, 2)} no data rows after the header")
    X = np.array(features, dtype=np.float64).reshape(len(lines), len(layout.features))
    _check_finite(X, lines, layout, path)
    return Dataset(
        X=X,
        y=np.array(labels, dtype=np.int64),
        ids=np.array(ids, dtype=np.int64) if layout.id is not None else None,
        feature_names=tuple(layout.names[i] for i in layout.features),
        source=path,
        ignored_columns=tuple(layout.names[i] for i in layout.ignored),
    )


# --------------------------------------------------------------------------------- CSV writing


def _csv_rows(dataset: Dataset) -> Iterator[list[str]]:
    """Header then data rows; floats written with ``repr`` so they round-trip exactly."""
    has_ids = dataset.ids is not None
    yield [*([ID_COLUMN] if has_ids else []), LABEL_COLUMN, *dataset.feature_names]
    for i in range(dataset.n_samples):
        head = [str(int(dataset.ids[i]))] if dataset.ids is not None else []
        yield [*head, str(int(dataset.y[i])), *map(repr, dataset.X[i].tolist())]


def write_csv(dataset: Dataset, path: str | os.PathLike[str]) -> None:
    """Write ``dataset`` in the format :func:`load_csv` reads, atomically.

    Parameters
    ----------
    dataset : Dataset
    path : str or path-like
        Destination; written to a temporary file in the same directory, then renamed.
    """
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            csv.writer(out, lineterminator="\n").writerows(_csv_rows(dataset))
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------------- demo split


def _stratified_parts(y: IntArray, sizes: Sequence[int], seed: int) -> list[IntArray]:
    """Split row indices into parts of the given sizes, each with the overall label balance."""
    from sklearn.model_selection import train_test_split

    rest = np.arange(len(y))
    parts: list[IntArray] = []
    for k, size in enumerate(sizes[:-1]):
        remaining = int(sum(sizes[k:]))
        if remaining != len(rest):
            raise ConfigError(f"part sizes {tuple(sizes)} do not add up to {len(y)} rows")
        part, rest = train_test_split(
            rest, train_size=size, stratify=y[rest], random_state=seed + k
        )
        parts.append(np.sort(part))
    return [*parts, np.sort(rest)]


def _standardise(X: FloatArray, fit_rows: IntArray) -> FloatArray:
    """Standardise every column with the mean and population std of ``fit_rows``."""
    mean = X[fit_rows].mean(axis=0)
    std = X[fit_rows].std(axis=0)
    return np.asarray((X - mean) / np.where(std > 0, std, 1.0))


def demo_split(seed: int = 0, *, scaler_fit: str = "train") -> tuple[Dataset, Dataset, Dataset]:
    """Build guest / host / test sets like the reference files from scikit-learn's copy.

    Rows of :func:`sklearn.datasets.load_breast_cancer` are split into 227 / 228 / 114 rows
    (the reference sizes), stratified on the label so each part has the overall balance
    (62.7 % of label 1). Labels keep scikit-learn's convention, which is also the reference's:
    ``y = 1`` is *benign*. Columns are reordered like the reference (worst, mean, error) and
    named ``x0..x29``; ``ids`` are scikit-learn row indices, as in the reference files.

    Parameters
    ----------
    seed : int
        Seed of the stratified shuffling (``random_state`` of scikit-learn's splitter).
    scaler_fit : {"train", "all", "none"}
        Rows whose mean and standard deviation standardise the features. ``"train"`` (default)
        uses guest + host only, so no statistic of the test rows leaks into training; ``"all"``
        uses all 569 rows, which is what the reference files did; ``"none"`` keeps the raw
        Wisconsin measurements (values up to ~4,250), as members hold them before any
        federated standardisation.

    Returns
    -------
    guest, host, test : Dataset
    """
    if scaler_fit not in SCALER_FITS:
        raise ConfigError(f"scaler_fit must be one of {', '.join(SCALER_FITS)}; got {scaler_fit!r}")
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    X = np.asarray(bunch.data, dtype=np.float64)[:, list(REFERENCE_FEATURE_ORDER)]
    y = np.asarray(bunch.target, dtype=np.int64)
    parts = _stratified_parts(y, DEMO_SIZES, seed)
    fit_rows = np.arange(len(y)) if scaler_fit == "all" else np.concatenate(parts[:2])
    Xs = X if scaler_fit == "none" else _standardise(X, fit_rows)
    names = tuple(f"x{i}" for i in range(X.shape[1]))
    labels = ("guest", "host", "test")
    guest, host, test = (
        Dataset(Xs[p], y[p], p.astype(np.int64), names, f"demo split seed={seed} ({label})")
        for p, label in zip(parts, labels, strict=True)
    )
    return guest, host, test
