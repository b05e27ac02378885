"""LogisticModel: sklearn-style prediction, JSON round trip, validation on load, atomic save."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from homolr.errors import ConfigError, DataError
from homolr.learning import MODEL_FORMAT, LogisticModel

NAMES = ("a", "b", "c")


def model() -> LogisticModel:
    return LogisticModel.from_weights(
        [0.25, 1.0, -2.0, 1 / 3], NAMES, {"mode": "encrypted", "key_bits": 2048}
    )


def test_from_weights_layout_bias_first() -> None:
    m = model()
    assert m.coef_.shape == (1, 3) and m.intercept_.shape == (1,)
    assert m.intercept_[0] == 0.25
    np.testing.assert_array_equal(m.coef_[0], [1.0, -2.0, 1 / 3])
    np.testing.assert_array_equal(m.weights, [0.25, 1.0, -2.0, 1 / 3])
    np.testing.assert_array_equal(m.classes_, [0, 1])
    assert list(m.feature_names_in_) == list(NAMES) and m.n_features_in_ == 3


def test_predictions_agree_with_sklearn_given_the_same_parameters() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3))
    y = (X[:, 0] - X[:, 1] + 0.3 * rng.normal(size=50) > 0).astype(int)
    reference = LogisticRegression().fit(X, y)
    ours = LogisticModel.from_weights(
        np.concatenate([reference.intercept_, reference.coef_[0]]), NAMES
    )
    np.testing.assert_allclose(ours.decision_function(X), reference.decision_function(X))
    np.testing.assert_allclose(ours.predict_proba(X), reference.predict_proba(X), rtol=1e-12)
    np.testing.assert_array_equal(ours.predict(X), reference.predict(X))
    assert ours.predict_proba(X).shape == (50, 2)


def test_wrong_number_of_columns_names_both_numbers() -> None:
    with pytest.raises(DataError, match=r"X has 2 features.*trained with 3"):
        model().predict(np.zeros((4, 2)))
    with pytest.raises(DataError, match="2-D"):
        model().predict_proba(np.zeros(3))


@pytest.mark.parametrize("w", [[1.0, 2.0], [[1.0, 2.0, 3.0, 4.0]], [0.0, np.nan, 1.0, 2.0]])
def test_from_weights_rejects_bad_vectors(w: Any) -> None:
    with pytest.raises(ConfigError):
        LogisticModel.from_weights(w, NAMES)


def test_json_round_trip_is_exact(tmp_path: Path) -> None:
    original = model()
    path = tmp_path / "model.json"
    original.save(path)
    loaded = LogisticModel.load(path)
    np.testing.assert_array_equal(loaded.weights, original.weights)
    assert loaded.metadata == {"mode": "encrypted", "key_bits": 2048}
    assert list(loaded.feature_names_in_) == list(NAMES)
    doc = json.loads(path.read_text())
    assert doc["format"] == MODEL_FORMAT and doc["version"] == 2 and doc["scaler"] is None
    assert [p.name for p in tmp_path.iterdir()] == ["model.json"]
    assert LogisticModel.from_json(original.to_json()).weights.tolist() == original.weights.tolist()


def test_save_is_atomic_on_failure(tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    model().save(path)
    before = path.read_text()
    bad = LogisticModel.from_weights([0.0, 1.0, 2.0, 3.0], NAMES, {"oops": object()})
    with pytest.raises(ConfigError, match="JSON"):
        bad.save(path)
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.json"]


def good_doc() -> dict[str, Any]:
    return json.loads(model().to_json())  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("format", "sklearn-pickle", "'format'"),
        ("version", 3, "'version'"),
        ("version", 0, "'version'"),
        ("version", True, "'version'"),
        ("coef", [], "'coef'"),
        ("coef", "1,2,3", "'coef'"),
        ("coef", [1.0, "x", 2.0], "'coef[1]'"),
        ("coef", [1.0, True, 2.0], "'coef[1]'"),
        ("intercept", None, "'intercept'"),
        ("intercept", "0.5", "'intercept'"),
        ("feature_names", ["a", "b"], "'feature_names'"),
        ("feature_names", ["a", 1, "c"], "'feature_names'"),
        ("feature_names", ["a", "a", "c"], "'feature_names'"),
        ("metadata", [], "'metadata'"),
    ],
)
def test_load_names_file_and_field(tmp_path: Path, field: str, value: Any, needle: str) -> None:
    doc = good_doc()
    doc[field] = value
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(DataError) as info:
        LogisticModel.load(path)
    assert str(path) in str(info.value) and needle in str(info.value)


@pytest.mark.parametrize(
    "field", ["format", "version", "coef", "intercept", "feature_names", "metadata"]
)
def test_load_missing_field(tmp_path: Path, field: str) -> None:
    doc = good_doc()
    del doc[field]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(DataError, match=f"field '{field}': missing") as info:
        LogisticModel.load(path)
    assert str(path) in str(info.value)


def test_load_non_finite_number(tmp_path: Path) -> None:
    path = tmp_path / "nan.json"
    path.write_text(model().to_json().replace('"intercept": 0.25', '"intercept": NaN'))
    with pytest.raises(DataError, match="'intercept'"):
        LogisticModel.load(path)


def test_load_file_level_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        LogisticModel.load(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{\n  "format": \n}')
    with pytest.raises(DataError, match=r"broken\.json:3: column 1: not valid JSON"):
        LogisticModel.load(broken)
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe{}")
    with pytest.raises(DataError, match="UTF-8"):
        LogisticModel.load(binary)
    array = tmp_path / "array.json"
    array.write_text("[1, 2]")
    with pytest.raises(DataError, match="JSON object"):
        LogisticModel.load(array)
    with pytest.raises(DataError, match="cannot read"):
        LogisticModel.load(tmp_path)


def test_no_pickle_in_the_learning_package() -> None:
    source = Path(__file__).resolve().parents[2] / "src" / "homolr" / "learning"
    for module in source.glob("*.py"):
        text = module.read_text()
        for banned in ("import pickle", "import marshal", "import shelve"):
            assert banned not in text, f"{module.name} uses {banned}"
