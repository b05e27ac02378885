"""CSV loading (every validation branch), writing, the bias column and the demo split."""

from __future__ import annotations

import builtins
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from homolr.errors import ConfigError, DataError
from homolr.learning import Dataset, add_bias, demo_split, load_csv, write_csv

HEADER = "id,y,x0,x1,x2"
GOOD_ROWS = ["1,1,0.5,-1.25,3", "2,0,1e-3,2.0,-0.0", "3,1,7,8,9"]


def write(tmp_path: Path, lines: list[str], name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def load_error(path: Path) -> str:
    with pytest.raises(DataError) as info:
        load_csv(path)
    return str(info.value)


def assert_names(message: str, path: Path, line: int, column: str) -> None:
    """The message names the file, the 1-based line and the column."""
    assert str(path) in message
    assert f":{line}:" in message
    assert f"column '{column}'" in message


# ------------------------------------------------------------------------------- happy paths


def test_load_good_file(tmp_path: Path) -> None:
    ds = load_csv(write(tmp_path, [HEADER, *GOOD_ROWS]))
    assert ds.X.dtype == np.float64 and ds.X.shape == (3, 3)
    assert ds.n_samples == 3 and ds.n_features == 3
    np.testing.assert_array_equal(ds.X[0], [0.5, -1.25, 3.0])
    np.testing.assert_array_equal(ds.y, [1, 0, 1])
    assert ds.ids is not None
    np.testing.assert_array_equal(ds.ids, [1, 2, 3])
    assert ds.feature_names == ("x0", "x1", "x2")
    assert ds.source.endswith("data.csv")


def test_load_without_id_and_with_free_column_order(tmp_path: Path) -> None:
    ds = load_csv(write(tmp_path, ["a,y,b", "1.5,1.0,2", "3,0.0,4"]))
    assert ds.ids is None
    assert ds.feature_names == ("a", "b")
    np.testing.assert_array_equal(ds.X, [[1.5, 2.0], [3.0, 4.0]])
    np.testing.assert_array_equal(ds.y, [1, 0])


def test_blank_lines_and_bom_are_tolerated_and_lines_still_counted(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(("\ufeff" + "\n".join([HEADER, "1,1,1,2,3", "", "2,1,1,x,3"])).encode())
    message = load_error(path)
    assert_names(message, path, 4, "x1")


def test_write_then_load_round_trips_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    original = Dataset(
        X=rng.normal(size=(20, 4)) * 1e3,
        y=rng.integers(0, 2, 20).astype(np.int64),
        ids=np.arange(100, 120, dtype=np.int64),
        feature_names=("a", "b", "c", "d"),
        source="memory",
    )
    path = tmp_path / "out.csv"
    write_csv(original, path)
    back = load_csv(path)
    np.testing.assert_array_equal(back.X, original.X)
    np.testing.assert_array_equal(back.y, original.y)
    assert back.ids is not None
    np.testing.assert_array_equal(back.ids, original.ids)
    assert back.feature_names == original.feature_names
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]  # no temporary file left


def test_write_without_ids(tmp_path: Path) -> None:
    ds = Dataset(np.eye(2), np.array([0, 1]), None, ("u", "v"), "memory")
    path = tmp_path / "noid.csv"
    write_csv(ds, path)
    assert path.read_text().splitlines()[0] == "y,u,v"
    assert load_csv(path).ids is None


def test_add_bias_puts_ones_first() -> None:
    X = np.arange(6.0).reshape(3, 2)
    Xb = add_bias(X)
    assert Xb.shape == (3, 3)
    np.testing.assert_array_equal(Xb[:, 0], 1.0)
    np.testing.assert_array_equal(Xb[:, 1:], X)
    with pytest.raises(ValueError, match="2-D"):
        add_bias(np.arange(3.0))


# ------------------------------------------------------------------------ file-level errors


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    message = load_error(path)
    assert str(path) in message and "not found" in message


def test_directory_instead_of_file(tmp_path: Path) -> None:
    message = load_error(tmp_path)
    assert str(tmp_path) in message and "directory" in message


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, [HEADER, *GOOD_ROWS])
    real_open = builtins.open

    def deny(file: Any, *args: Any, **kwargs: Any) -> Any:
        if str(file) == str(path):
            raise PermissionError(13, "Permission denied")
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", deny)
    message = load_error(path)
    assert str(path) in message and "Permission denied" in message


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    message = load_error(path)
    assert str(path) in message and "empty file" in message


def test_no_data_rows(tmp_path: Path) -> None:
    path = write(tmp_path, [HEADER])
    message = load_error(path)
    assert str(path) in message and ":2:" in message and "no data rows" in message


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(f"{HEADER}\n1,1,1,2,3\n2,0,1,\xe92,3\n".encode("latin-1"))
    message = load_error(path)
    assert str(path) in message and ":3:" in message and "field 4" in message
    assert "UTF-8" in message


def test_malformed_quoting(tmp_path: Path) -> None:
    path = write(tmp_path, [HEADER, '1,1,"1"x,2,3'])
    message = load_error(path)
    assert str(path) in message and ":2:" in message and "malformed CSV" in message


# ---------------------------------------------------------------------------- header errors


def test_missing_header(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD_ROWS)
    message = load_error(path)
    assert str(path) in message and ":1:" in message and "missing header" in message


def test_no_label_column(tmp_path: Path) -> None:
    path = write(tmp_path, ["id,label,x0", "1,1,2"])
    message = load_error(path)
    assert str(path) in message and ":1:" in message and "column 'y'" in message


def test_duplicate_column(tmp_path: Path) -> None:
    path = write(tmp_path, ["id,y,x0,x1,x0", "1,1,2,3,4"])
    message = load_error(path)
    assert_names(message, path, 1, "x0")
    assert "duplicate" in message and "columns 3 and 5" in message


def test_empty_column_name(tmp_path: Path) -> None:
    path = write(tmp_path, ["id,y,,x1", "1,1,2,3"])
    message = load_error(path)
    assert str(path) in message and ":1:" in message and "column 3" in message


# ------------------------------------------------------------------------------- row errors


def test_row_with_too_few_fields(tmp_path: Path) -> None:
    path = write(tmp_path, [HEADER, *GOOD_ROWS, "4,1,1,2"])
    message = load_error(path)
    assert_names(message, path, 5, "x2")
    assert "4 fields, header has 5" in message


def test_row_with_too_many_fields(tmp_path: Path) -> None:
    path = write(tmp_path, [HEADER, "4,1,1,2,3,9", *GOOD_ROWS])
    message = load_error(path)
    assert_names(message, path, 2, "x2")
    assert "6 fields, header has 5" in message


@pytest.mark.parametrize("bad", ["abc", "", "1.2.3", "0x10"])
def test_non_numeric_feature(tmp_path: Path, bad: str) -> None:
    path = write(tmp_path, [HEADER, *GOOD_ROWS, f"4,1,1,{bad},3"])
    message = load_error(path)
    assert_names(message, path, 5, "x1")
    assert "not a number" in message and repr(bad) in message


@pytest.mark.parametrize("bad", ["nan", "inf", "-Infinity", "1e999"])
def test_non_finite_feature(tmp_path: Path, bad: str) -> None:
    path = write(tmp_path, [HEADER, "4,1,1,2,3", f"5,0,1,2,{bad}", "6,1,1,2,3"])
    message = load_error(path)
    assert_names(message, path, 3, "x2")
    assert "not finite" in message


@pytest.mark.parametrize("bad", ["2", "-1", "0.5", "yes", "", "nan"])
def test_label_not_binary(tmp_path: Path, bad: str) -> None:
    path = write(tmp_path, [HEADER, *GOOD_ROWS, f"4,{bad},1,2,3"])
    message = load_error(path)
    assert_names(message, path, 5, "y")
    assert repr(bad) in message


def test_label_spellings_accepted(tmp_path: Path) -> None:
    rows = ["1,0,1,1,1", "2,1,1,1,1", "3,0.0,1,1,1", "4,1.0,1,1,1"]
    ds = load_csv(write(tmp_path, [HEADER, *rows]))
    np.testing.assert_array_equal(ds.y, [0, 1, 0, 1])


@pytest.mark.parametrize("bad", ["1.5", "a", "", "2.0"])
def test_id_not_integer(tmp_path: Path, bad: str) -> None:
    path = write(tmp_path, [HEADER, *GOOD_ROWS, f"{bad},1,1,2,3"])
    message = load_error(path)
    assert_names(message, path, 5, "id")


def test_reasonably_fast_on_a_large_file(tmp_path: Path) -> None:
    n = 20_000
    rng = np.random.default_rng(0)
    big = Dataset(
        rng.normal(size=(n, 30)),
        rng.integers(0, 2, n).astype(np.int64),
        np.arange(n, dtype=np.int64),
        tuple(f"x{i}" for i in range(30)),
        "big",
    )
    path = tmp_path / "big.csv"
    write_csv(big, path)
    loaded = load_csv(path)
    np.testing.assert_array_equal(loaded.X, big.X)


# ------------------------------------------------------------------------- reference files


def test_reference_files_match_the_readme(reference_sets: tuple[Dataset, ...]) -> None:
    expected = {"guest": (227, 150), "host": (228, 137), "test": (114, 70)}
    for ds, (name, (rows, ones)) in zip(reference_sets, expected.items(), strict=True):
        assert name in ds.source
        assert ds.n_samples == rows and int(ds.y.sum()) == ones
        assert ds.feature_names == tuple(f"x{i}" for i in range(30))


# ------------------------------------------------------------------------------ demo split


def test_demo_split_sizes_balance_and_disjointness() -> None:
    parts = demo_split(seed=3)
    assert [p.n_samples for p in parts] == [227, 228, 114]
    ids = np.concatenate([p.ids for p in parts if p.ids is not None])
    assert sorted(ids.tolist()) == list(range(569))
    for p in parts:
        assert abs(p.y.mean() - 357 / 569) < 0.01  # stratified
    assert demo_split(seed=3)[0].ids.tolist() == parts[0].ids.tolist()  # type: ignore[union-attr]
    assert demo_split(seed=4)[0].ids.tolist() != parts[0].ids.tolist()  # type: ignore[union-attr]


def test_demo_split_scaler_fit_on_train_only() -> None:
    guest, host, test = demo_split(seed=1)
    train = np.vstack([guest.X, host.X])
    np.testing.assert_allclose(train.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(train.std(axis=0), 1.0, atol=1e-12)
    assert np.abs(test.X.mean(axis=0)).max() > 1e-3  # the test rows did not shape the scaler


def test_demo_split_with_all_rows_rebuilds_the_reference_features(
    reference_sets: tuple[Dataset, ...],
) -> None:
    parts = demo_split(0, scaler_fit="all")
    demo_ids = np.concatenate([p.ids for p in parts if p.ids is not None])
    demo_X = np.vstack([p.X for p in parts])[np.argsort(demo_ids)]
    demo_y = np.concatenate([p.y for p in parts])[np.argsort(demo_ids)]
    for ref in reference_sets:
        assert ref.ids is not None
        # ids are sklearn row indices; same label convention (y = 1 is benign), same column
        # order (worst, mean, error) and same scaling (all 569 rows, population std).
        np.testing.assert_array_equal(demo_y[ref.ids], ref.y)
        np.testing.assert_allclose(demo_X[ref.ids], ref.X, atol=1e-6)


def test_demo_split_rejects_unknown_scaler_fit() -> None:
    with pytest.raises(ConfigError, match="train"):
        demo_split(0, scaler_fit="test")


def test_unlabelled_rows_load_for_scoring(tmp_path: Path) -> None:
    from homolr.learning import load_unlabelled_csv

    path = tmp_path / "new.csv"
    path.write_text("id,x0,x1\n7,0.5,-1\n8,1.5,2\n")
    data = load_unlabelled_csv(path)
    assert data.X.tolist() == [[0.5, -1.0], [1.5, 2.0]]
    assert data.y.size == 0 and data.ids is not None and data.ids.tolist() == [7, 8]
    with pytest.raises(DataError, match="no label column 'y'"):
        load_csv(path)
    labelled = tmp_path / "labelled.csv"
    labelled.write_text("id,y,x0\n1,1,0.5\n2,2,0.1\n")
    with pytest.raises(DataError, match=r"labelled.csv:3: column 'y'"):
        load_unlabelled_csv(labelled)  # a y column that is there is still checked
