"""Columns matched by name (``features=``), extra columns at predict time, and data warnings."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from homolr.errors import ConfigError, DataError
from homolr.learning import Dataset, data_warnings, load_csv, load_unlabelled_csv, write_csv

NAMES = ("radius", "texture", "area")


def make_dataset(rows: int = 12, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    return Dataset(
        X=rng.normal(size=(rows, 3)) * [1.0, 10.0, 1000.0],
        y=(np.arange(rows) % 2).astype(np.int64),
        ids=np.arange(rows, dtype=np.int64) + 100,
        feature_names=NAMES,
        source="memory",
    )


def write_columns(path: Path, dataset: Dataset, order: tuple[str, ...]) -> Path:
    """Write ``dataset`` with its columns (id, y and the features) in ``order``."""
    columns = {"y": dataset.y.astype(float), **dict(zip(NAMES, dataset.X.T, strict=True))}
    if dataset.ids is not None:
        columns["id"] = dataset.ids.astype(float)
    lines = [",".join(order)]
    for i in range(dataset.n_samples):
        lines.append(",".join(_text(name, columns[name][i]) for name in order))
    path.write_text("\n".join(lines) + "\n")
    return path


def _text(name: str, value: float) -> str:
    return str(int(value)) if name in ("id", "y") else repr(float(value))


@pytest.mark.parametrize(
    "order", list(itertools.permutations(("id", "y", *NAMES)))[::17], ids=lambda o: "-".join(o)
)
def test_reordered_columns_give_identical_X(tmp_path: Path, order: tuple[str, ...]) -> None:
    original = make_dataset()
    path = write_columns(tmp_path / "shuffled.csv", original, order)
    loaded = load_csv(path, features=NAMES)
    assert loaded.feature_names == NAMES
    np.testing.assert_array_equal(loaded.X, original.X)
    np.testing.assert_array_equal(loaded.y, original.y)
    assert loaded.ids is not None
    np.testing.assert_array_equal(loaded.ids, original.ids)
    assert loaded.ignored_columns == ()


def test_features_in_a_different_order_than_the_file(tmp_path: Path) -> None:
    original = make_dataset()
    path = tmp_path / "data.csv"
    write_csv(original, path)
    wanted = ("area", "radius", "texture")
    loaded = load_csv(path, features=wanted)
    assert loaded.feature_names == wanted
    np.testing.assert_array_equal(loaded.X, original.X[:, [2, 0, 1]])


def test_without_features_the_file_order_is_kept(tmp_path: Path) -> None:
    path = write_columns(tmp_path / "d.csv", make_dataset(), ("area", "y", "radius", "texture"))
    assert load_csv(path).feature_names == ("area", "radius", "texture")


def test_id_stays_optional(tmp_path: Path) -> None:
    original = make_dataset()
    no_ids = Dataset(original.X, original.y, None, NAMES, "memory")
    path = write_columns(tmp_path / "d.csv", no_ids, ("texture", "y", "area", "radius"))
    loaded = load_csv(path, features=NAMES)
    assert loaded.ids is None
    np.testing.assert_array_equal(loaded.X, original.X)


def mismatch(path: Path, **kwargs: object) -> str:
    with pytest.raises(DataError) as info:
        load_csv(path, **kwargs)  # type: ignore[arg-type]
    message = str(info.value)
    assert message.startswith(f"{path}:1:"), message
    return message


def test_missing_feature_is_refused_with_its_name(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("id,y,radius,area\n1,1,2.0,3.0\n")
    message = mismatch(path, features=NAMES)
    assert "missing 1: 'texture'" in message and "unexpected" not in message


def test_extra_feature_is_refused_with_its_name(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("id,y,radius,texture,area,smoothness,symmetry\n1,1,2.0,3.0,4,5,6\n")
    message = mismatch(path, features=NAMES)
    assert "unexpected 2: 'smoothness', 'symmetry'" in message and "missing" not in message


def test_missing_and_extra_are_both_listed_with_a_case_hint(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("y,Radius,texture,perimeter\n1,2.0,3.0,4\n")
    message = mismatch(path, features=NAMES)
    assert "missing 2: 'radius', 'area'" in message
    assert "unexpected 2: 'Radius', 'perimeter'" in message
    assert "case-sensitive" in message


def test_duplicate_column_in_the_file_is_refused_with_its_name(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("y,radius,texture,area,radius\n1,2.0,3.0,4,5\n")
    message = mismatch(path, features=NAMES)
    assert "column 'radius': duplicate column name (columns 2 and 5)" in message


@pytest.mark.parametrize(
    ("features", "needle"),
    [
        (("a", "b", "a"), "'a' more than once"),
        ((), "at least one"),
        ("abc", "not one string"),
        (("a", "y"), "label column 'y'"),
        (("id", "a"), "id column"),
        (("a", " b"), "edge spaces"),
    ],
)
def test_bad_feature_lists_are_a_config_error(
    tmp_path: Path, features: tuple[str, ...], needle: str
) -> None:
    path = tmp_path / "d.csv"
    path.write_text("y,a,b\n1,2,3\n")
    with pytest.raises(ConfigError, match=needle):
        load_csv(path, features=features)


def test_label_column_can_be_renamed(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("diagnosis,b,a\n1,2,3\n0,4,5\n")
    loaded = load_csv(path, features=("a", "b"), label="diagnosis")
    np.testing.assert_array_equal(loaded.X, [[3.0, 2.0], [5.0, 4.0]])
    np.testing.assert_array_equal(loaded.y, [1, 0])
    with pytest.raises(DataError, match="no label column 'y'"):
        load_csv(path)
    bad = tmp_path / "bad.csv"
    bad.write_text("diagnosis,a\n2,1\n")
    with pytest.raises(DataError, match=r"bad\.csv:2: column 'diagnosis': label must be 0 or 1"):
        load_csv(bad, label="diagnosis")


def test_errors_in_rows_still_name_the_right_column_after_reordering(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("area,y,texture,radius\n1,1,2,3\n4,0,oops,6\n")
    with pytest.raises(DataError, match=r"d\.csv:3: column 'texture': feature is not a number"):
        load_csv(path, features=NAMES)
    path.write_text("area,y,texture,radius\n1,1,2,3\n4,0,5,inf\n")
    with pytest.raises(DataError, match=r"d\.csv:3: column 'radius': feature is not finite"):
        load_csv(path, features=NAMES)


def test_unlabelled_load_ignores_and_reports_extra_columns(tmp_path: Path) -> None:
    path = tmp_path / "score.csv"
    path.write_text("patient,area,note,texture,id,radius\n7,1,2,3,11,4\n8,5,6,7,12,8\n")
    loaded = load_unlabelled_csv(path, features=NAMES)
    assert loaded.feature_names == NAMES
    np.testing.assert_array_equal(loaded.X, [[4.0, 3.0, 1.0], [8.0, 7.0, 5.0]])
    assert loaded.ignored_columns == ("patient", "note")
    assert loaded.y.size == 0
    assert loaded.ids is not None and loaded.ids.tolist() == [11, 12]


def test_unlabelled_load_refuses_missing_features_and_extra_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "score.csv"
    path.write_text("area,note,radius\n1,2,3\n")
    with pytest.raises(DataError, match="missing 1: 'texture'") as info:
        load_unlabelled_csv(path, features=NAMES)
    assert "unexpected" not in str(info.value)
    path.write_text("area,note,radius,texture\n1,2,3,4\n")
    with pytest.raises(DataError, match="unexpected 1: 'note'"):
        load_unlabelled_csv(path, features=NAMES, ignore_extra=False)


def test_unlabelled_load_keeps_labels_when_present(tmp_path: Path) -> None:
    path = tmp_path / "score.csv"
    path.write_text("texture,y,radius,area\n1,1,2,3\n4,0,5,6\n")
    loaded = load_unlabelled_csv(path, features=NAMES)
    np.testing.assert_array_equal(loaded.y, [1, 0])
    np.testing.assert_array_equal(loaded.X, [[2.0, 1.0, 3.0], [5.0, 4.0, 6.0]])


# ------------------------------------------------------------------------------ data_warnings


def test_a_healthy_set_has_no_warnings() -> None:
    assert data_warnings(make_dataset(rows=40)) == []


def test_too_few_rows_and_fewer_rows_than_features() -> None:
    rng = np.random.default_rng(1)
    names = tuple(f"x{i}" for i in range(8))
    small = Dataset(rng.normal(size=(5, 8)), np.array([0, 1, 0, 1, 1]), None, names, "tiny.csv")
    notes = data_warnings(small)
    assert len(notes) == 2
    assert notes[0].startswith("tiny.csv: only 5 rows (fewer than 10)")
    assert "fewer rows (5) than features (8)" in notes[1]
    assert data_warnings(small, min_rows=5) == notes[1:]


def test_constant_columns_are_named_with_their_value() -> None:
    base = make_dataset(rows=20)
    X = base.X.copy()
    X[:, 0] = 4000.5
    X[:, 2] = 0.0
    notes = data_warnings(Dataset(X, base.y, None, NAMES, "c.csv"))
    assert notes == [
        "c.csv: 2 constant feature columns: 'radius' (= 4000.5), 'area' (= 0); "
        "no information for training in this file"
    ]


def test_an_almost_constant_column_is_not_reported() -> None:
    base = make_dataset(rows=20)
    X = base.X.copy()
    X[:, 1] = 4000.0
    X[7, 1] = np.nextafter(4000.0, 5000.0)
    assert data_warnings(Dataset(X, base.y, None, NAMES, "c.csv")) == []


def test_single_class_is_reported_and_unlabelled_sets_are_not() -> None:
    base = make_dataset(rows=20)
    ones = Dataset(base.X, np.ones(20, dtype=np.int64), None, NAMES, "pos.csv")
    assert data_warnings(ones) == [
        "pos.csv: every row has label 1; a single class cannot train a classifier on its own"
    ]
    unlabelled = Dataset(base.X, np.zeros(0, dtype=np.int64), None, NAMES, "u.csv")
    assert data_warnings(unlabelled) == []
