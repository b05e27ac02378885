"""LogisticModel as a scikit-learn estimator, with its scaler, its v2 file and ONNX export."""

from __future__ import annotations

import json
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.base import clone, is_classifier
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils import estimator_checks
from sklearn.utils.estimator_checks import check_estimator

from homolr.errors import ConfigError, DataError
from homolr.learning import (
    Dataset,
    LogisticModel,
    Scaler,
    train_taylor,
    unstandardize,
)
from homolr.learning.model import ModelInputError, export_onnx

# ------------------------------------------------------------------ scikit-learn's own checks

#: Checks that a pre-fitted, fixed-classes model passes (run on 2- and 3-feature models: the
#: checks' data sets have 2 or 3 features; a check counts as passed if it passes at its width).
APPLICABLE = {
    "check_classifier_not_supporting_multiclass",
    "check_classifiers_one_label_sample_weights",
    "check_classifiers_regression_target",
    "check_complex_data",
    "check_decision_proba_consistency",
    "check_dict_unchanged",
    "check_do_not_raise_errors_in_init_or_set_params",
    "check_dont_overwrite_parameters",
    "check_estimator_cloneable",
    "check_estimator_repr",
    "check_estimator_sparse_array",
    "check_estimator_sparse_matrix",
    "check_estimator_sparse_tag",
    "check_estimator_tags_renamed",
    "check_estimators_empty_data_messages",
    "check_estimators_fit_returns_self",
    "check_estimators_nan_inf",
    "check_estimators_overwrite_params",
    "check_estimators_partial_fit_n_features",
    "check_estimators_pickle",
    "check_estimators_unfitted",
    "check_f_contiguous_array_estimator",
    "check_fit1d",
    "check_fit2d_predict1d",
    "check_fit_check_is_fitted",
    "check_fit_idempotent",
    "check_fit_score_takes_y",
    "check_get_params_invariance",
    "check_methods_sample_order_invariance",
    "check_methods_subset_invariance",
    "check_mixin_order",
    "check_n_features_in",
    "check_no_attributes_set_in_init",
    "check_non_transformer_estimators_n_iter",
    "check_parameters_default_constructible",
    "check_pipeline_consistency",
    "check_readonly_memmap_input",
    "check_requires_y_none",
    "check_set_params",
    "check_supervised_y_2d",
    "check_supervised_y_no_nan",
    "check_valid_tag_types",
}
#: Checks whose data have another width: run on their own with a model of that width.
OTHER_WIDTHS = {
    "check_n_features_in_after_fitting": 4,
    "check_dtype_object": 10,
    "check_fit2d_1sample": 10,
}
#: Checks that cannot apply to a model trained elsewhere, with fixed classes 0 and 1.
NOT_APPLICABLE = {
    "check_classifiers_train": "expects fit() to learn a good model from the check's data",
    "check_classifiers_one_label": "expects fit() on one class to predict that class",
    "check_classifiers_classes": "fits string / {1, 2} labels; the model's classes are 0 and 1",
    "check_classifier_data_not_an_array": "fits labels {1, 2}; the model's classes are 0 and 1",
    "check_estimators_dtypes": "fits labels {0, 1, 2}; the model is binary 0/1",
    "check_fit2d_1feature": "fits labels {1, 2}; the model's classes are 0 and 1",
    "check_positive_only_tag_during_fit": "fits the 3-class iris labels; the model is binary",
    "check_array_api_input": "skipped by scikit-learn unless SCIPY_ARRAY_API is set",
}


def run_checks(width: int) -> dict[str, str]:
    model = LogisticModel(coef=np.linspace(-1.0, 1.0, width), intercept=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the checks' own warnings (skips, conversions)
        results = check_estimator(model, on_fail=None, on_skip=None)
    status: dict[str, str] = {}
    for result in results:
        previous = status.get(result["check_name"], "passed")
        status[result["check_name"]] = "passed" if previous == result["status"] else "failed"
    return status


def test_scikit_learn_estimator_checks() -> None:
    passed: defaultdict[str, bool] = defaultdict(bool)
    for width in (2, 3):
        for name, status in run_checks(width).items():
            passed[name] |= status == "passed"
    unknown = set(passed) - APPLICABLE - set(NOT_APPLICABLE) - set(OTHER_WIDTHS)
    assert not unknown, f"new scikit-learn checks to classify: {sorted(unknown)}"
    failing = sorted(name for name in APPLICABLE if not passed[name])
    assert not failing, f"applicable checks failing: {failing}"
    now_passing = sorted(name for name in NOT_APPLICABLE if passed[name])
    assert not now_passing, f"checks listed as not applicable now pass: {now_passing}"
    for name, width in OTHER_WIDTHS.items():
        model = LogisticModel(coef=np.linspace(-1.0, 1.0, width), intercept=0.1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            getattr(estimator_checks, name)("LogisticModel", model)


# ------------------------------------------------------------------ sklearn tools


def wisconsin() -> tuple[np.ndarray, np.ndarray]:
    bunch = load_breast_cancer()
    return np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target, dtype=np.int64)


def scaled_model() -> tuple[LogisticModel, np.ndarray, np.ndarray]:
    """A model trained on standardised Wisconsin data, with its scaler (raw X in)."""
    X, y = wisconsin()
    scaler = Scaler.fit(X)
    clf = LogisticRegression(max_iter=1000).fit(scaler.transform(X), y)
    w = np.concatenate([clf.intercept_, clf.coef_[0]])
    names = [f"f{j}" for j in range(30)]
    return LogisticModel.from_weights(w, names, {"mode": "test"}, scaler=scaler), X, y


def test_clone_pipeline_is_classifier_and_cross_validation() -> None:
    model, X, y = scaled_model()
    assert is_classifier(model)
    copy = clone(model)
    assert copy.get_params()["intercept"] == model.intercept
    with pytest.raises(Exception, match="not fitted"):
        copy.predict(X)
    np.testing.assert_array_equal(copy.fit(X, y).predict_proba(X), model.predict_proba(X))
    pipe = Pipeline([("identity", FunctionTransformer()), ("model", model)]).fit(X, y)
    np.testing.assert_array_equal(pipe.predict(X), model.predict(X))
    scores = cross_val_score(model, X, y, cv=3)
    assert scores.shape == (3,) and float(scores.mean()) > 0.97


def test_fit_without_parameters_says_how_to_get_a_model() -> None:
    with pytest.raises(ConfigError, match=r"from_weights.*load"):
        LogisticModel().fit(np.zeros((3, 2)), [0, 1, 0])


def test_fit_refuses_a_wrong_width_and_non_binary_labels() -> None:
    model = LogisticModel(coef=[1.0, 2.0])
    with pytest.raises(ModelInputError, match="X has 3 features, but LogisticModel is expecting 2"):
        model.fit(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="Only binary classification"):
        model.fit(np.zeros((3, 2)), [0, 1, 2])
    with pytest.raises(DataError, match="classes 0 and 1"):
        model.fit(np.zeros((3, 2)), [1, 2, 2])
    with pytest.raises(DataError, match=r"y must have shape \(3,\)"):
        model.fit(np.zeros((3, 2)), [0, 1])


def test_predict_takes_raw_data_and_coef_is_in_raw_units() -> None:
    model, X, y = scaled_model()
    scaler = model.scaler
    assert scaler is not None
    trained = model.weights
    expected = scaler.transform(X) @ trained[1:] + trained[0]
    np.testing.assert_array_equal(model.decision_function(X), expected)
    raw = X @ model.coef_[0] + model.intercept_[0]
    assert np.max(np.abs(raw - expected)) < 1e-12 * np.max(np.abs(expected))
    coef_raw, intercept_raw = unstandardize(trained[1:], trained[0], scaler)
    np.testing.assert_array_equal(model.coef_[0], coef_raw)
    assert model.intercept_[0] == intercept_raw
    assert model.score(X, y) > 0.98
    np.testing.assert_allclose(np.exp(model.predict_log_proba(X)), model.predict_proba(X))
    assert np.all(np.isfinite(model.predict_log_proba(X * 1e6)))


def test_to_sklearn_gives_identical_predictions_on_raw_data() -> None:
    model, X, _ = scaled_model()
    clf = model.to_sklearn()
    assert isinstance(clf, LogisticRegression)
    np.testing.assert_allclose(clf.predict_proba(X), model.predict_proba(X), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(clf.predict(X), model.predict(X))


def test_to_sklearn_on_the_reference_training(
    reference_sets: tuple[Dataset, Dataset, Dataset],
) -> None:
    guest, host, test = reference_sets
    result = train_taylor([guest, host], iters=341, lr0=0.15, init_weight=1.0)
    model = LogisticModel.from_weights(result.w, guest.feature_names)
    clf = model.to_sklearn()
    np.testing.assert_allclose(
        clf.predict_proba(test.X), model.predict_proba(test.X), rtol=0, atol=1e-15
    )
    np.testing.assert_array_equal(clf.predict(test.X), model.predict(test.X))
    assert round(float(clf.score(test.X, test.y)), 3) == 0.930  # the reference's last line


class FakeFrame:
    """Just enough of a DataFrame: named columns and ``__array__``."""

    def __init__(self, data: np.ndarray, columns: list[str]) -> None:
        self.data, self.columns = data, columns

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self.data if dtype is None else self.data.astype(dtype)


def test_named_columns_must_match_the_model() -> None:
    model = LogisticModel.from_weights([0.0, 1.0, 2.0], ["a", "b"])
    data = np.array([[1.0, 2.0]])
    assert model.predict_proba(FakeFrame(data, ["a", "b"])).shape == (1, 2)
    with pytest.raises(ModelInputError, match="another order"):
        model.predict(FakeFrame(data, ["b", "a"]))
    with pytest.raises(ModelInputError, match=r"missing \['b'\], unexpected \['c'\]"):
        model.predict(FakeFrame(data, ["a", "c"]))


def test_bad_inputs_are_model_input_errors() -> None:
    model = LogisticModel.from_weights([0.0, 1.0, 2.0], ["a", "b"])
    for bad in (np.zeros(2), np.array([[np.nan, 1.0]]), np.zeros((0, 2))):
        with pytest.raises(ModelInputError):
            model.predict(bad)
    with pytest.raises(ModelInputError, match="Reshape your data"):
        model.predict(np.zeros(2))


# ------------------------------------------------------------------ file format


def test_version_2_round_trip_with_scaler(tmp_path: Path) -> None:
    model, X, _ = scaled_model()
    path = tmp_path / "model.json"
    model.save(path)
    doc = json.loads(path.read_text())
    assert doc["version"] == 2 and set(doc["scaler"]) == {"mean", "scale"}
    loaded = LogisticModel.load(path)
    np.testing.assert_array_equal(loaded.weights, model.weights)
    assert loaded.scaler == Scaler(model.scaler_.mean, model.scaler_.scale)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert loaded.metadata == {"mode": "test"}


def test_version_1_files_still_load(tmp_path: Path) -> None:
    v1 = {
        "format": "homolr-logistic-model",
        "version": 1,
        "coef": [1.0, -2.0],
        "intercept": 0.5,
        "feature_names": ["a", "b"],
        "metadata": {"mode": "encrypted"},
    }
    path = tmp_path / "old.json"
    path.write_text(json.dumps(v1))
    model = LogisticModel.load(path)
    assert model.scaler is None
    np.testing.assert_array_equal(model.weights, [0.5, 1.0, -2.0])
    np.testing.assert_array_equal(model.decision_function([[1.0, 1.0]]), [-0.5])


@pytest.mark.parametrize(
    ("scaler", "needle"),
    [
        ({"mean": [0.0]}, "'scaler'"),
        ({"mean": [0.0, 1.0], "scale": [1.0]}, "'scaler.scale': 1 values"),
        ({"mean": [0.0, 1.0], "scale": [1.0, 0.0]}, r"'scaler.scale\[1\]': must be > 0"),
        ({"mean": [0.0, "x"], "scale": [1.0, 1.0]}, r"'scaler.mean\[1\]'"),
        ([1, 2], "'scaler'"),
    ],
)
def test_bad_scaler_fields_are_named(tmp_path: Path, scaler: object, needle: str) -> None:
    doc = json.loads(LogisticModel.from_weights([0.0, 1.0, 2.0], ["a", "b"]).to_json())
    doc["scaler"] = scaler
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(DataError, match=needle):
        LogisticModel.load(path)
    del doc["scaler"]
    path.write_text(json.dumps(doc))
    with pytest.raises(DataError, match="field 'scaler': missing"):
        LogisticModel.load(path)


def test_from_weights_checks_the_scaler_width() -> None:
    with pytest.raises(ConfigError, match="scaler has 3 features"):
        LogisticModel.from_weights([0.0, 1.0, 2.0], ["a", "b"], scaler=Scaler.fit(np.eye(3)))


# ------------------------------------------------------------------ ONNX


def test_export_onnx_matches_predictions(tmp_path: Path) -> None:
    pytest.importorskip("skl2onnx")
    from onnx.reference import ReferenceEvaluator

    model, X, _ = scaled_model()
    path = export_onnx(model, tmp_path / "model.onnx")
    session = ReferenceEvaluator(str(path))
    labels, proba = session.run(None, {"X": X})
    np.testing.assert_allclose(proba, model.predict_proba(X), rtol=0, atol=1e-9)
    np.testing.assert_array_equal(labels, model.to_sklearn().predict(X))


def test_export_onnx_without_skl2onnx_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import builtins

    real_import = builtins.__import__

    def no_skl2onnx(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("skl2onnx"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_skl2onnx)
    model = LogisticModel.from_weights([0.0, 1.0], ["a"])
    with pytest.raises(ConfigError, match=r"pip install 'homolr\[onnx\]'"):
        export_onnx(model, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()
