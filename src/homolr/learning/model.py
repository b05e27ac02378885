"""The trained model: a scikit-learn classifier and a JSON file format (no pickle).

:class:`LogisticModel` is a real scikit-learn estimator (``BaseEstimator`` +
``ClassifierMixin``): it works in ``clone``, ``Pipeline``, ``cross_val_score`` and
``is_classifier``. It is trained by the federation, not by ``fit``: its parameters *are* the
trained model, and ``fit(X, y)`` only checks that ``X`` fits them and marks the estimator fitted
(what a pre-fitted wrapper can honestly do; see :meth:`LogisticModel.fit`).

Units. Training may run on standardised features ``z = (x - mean) / scale`` (the federation's
global scaler). The model keeps those *training-space* parameters (``coef``, ``intercept``,
:attr:`LogisticModel.weights`) together with the scaler and always takes **raw** ``X``:
prediction applies the scaler first, then the trained weights. The fitted attributes ``coef_``
and ``intercept_`` follow scikit-learn's meaning, ``decision_function(X) = X @ coef_.T +
intercept_`` on raw ``X`` (:func:`homolr.learning.scaling.unstandardize`); they differ from
the computed decision by float rounding only (about 1e-15 relative).

File format (UTF-8 JSON, one object), version 2::

    {
      "format": "homolr-logistic-model",
      "version": 2,
      "coef": [0.12, ...],              # n_features floats, training space
      "intercept": -0.3,                # training space
      "feature_names": ["x0", ...],     # n_features strings
      "scaler": {"mean": [...], "scale": [...]} or null,   # applied to raw X first
      "metadata": {...}                 # caller's: training plan, mode, federation, ...
    }

Version 1 files (no ``scaler`` field) still load, as models without a scaler. Floats are
written with ``repr`` precision, so a save/load round trip is exact.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d

from homolr.errors import ConfigError, DataError
from homolr.learning.metrics import sigmoid
from homolr.learning.scaling import Scaler, unstandardize

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

MODEL_FORMAT = "homolr-logistic-model"
MODEL_VERSION = 2
#: Versions :meth:`LogisticModel.load` reads.
READABLE_VERSIONS = (1, 2)
_FIELDS_V1 = ("format", "version", "coef", "intercept", "feature_names", "metadata")
_FIELDS_V2 = (*_FIELDS_V1[:5], "scaler", "metadata")


class ModelInputError(DataError, ValueError):
    """``X`` does not fit the model: not 2-D numbers, non-finite, wrong width or names.

    Also a ``ValueError``, as scikit-learn's conventions (and its estimator checks) expect.
    """


class LogisticModel(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Binary logistic regression trained by a federation: ``P(y = 1 | x)``.

    ``P(y = 1 | x) = sigmoid(((x - scaler_mean) / scaler_scale) @ coef + intercept)``, or
    ``sigmoid(x @ coef + intercept)`` without a scaler. Build one with :meth:`from_weights`
    or :meth:`load` (both return a fitted model); ``__init__`` only stores its arguments
    (scikit-learn convention) and :meth:`fit` validates them.

    Parameters
    ----------
    coef : array-like of shape (n_features,), optional
        Training-space coefficients (bias excluded).
    intercept : float
        Training-space intercept.
    feature_names : sequence of str, optional
        Names of the features, in column order (the training CSV's header).
    scaler_mean, scaler_scale : array-like of shape (n_features,), optional
        The standardisation applied to raw ``X`` before ``coef`` (both or neither).
    metadata : mapping, optional
        JSON-serialisable description of how the model was trained.

    Attributes
    ----------
    coef_ : ndarray of shape (1, n_features)
        Coefficients in raw units: ``decision_function(X) = X @ coef_.T + intercept_``.
    intercept_ : ndarray of shape (1,)
        Intercept in raw units.
    classes_ : ndarray of shape (2,)
        ``array([0, 1])``.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features,), dtype object
        Only when ``feature_names`` is given.
    scaler_ : Scaler or None
        The validated standardisation.
    """

    def __init__(
        self,
        coef: npt.ArrayLike | None = None,
        intercept: float = 0.0,
        feature_names: Sequence[str] | None = None,
        scaler_mean: npt.ArrayLike | None = None,
        scaler_scale: npt.ArrayLike | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self.coef = coef
        self.intercept = intercept
        self.feature_names = feature_names
        self.scaler_mean = scaler_mean
        self.scaler_scale = scaler_scale
        # Any: a dict from from_weights() and load(); None only when built by hand.
        self.metadata: Any = metadata

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        tags.input_tags.allow_nan = False
        return tags

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_weights(
        cls,
        w: npt.ArrayLike,
        feature_names: Sequence[str],
        metadata: Mapping[str, Any] | None = None,
        scaler: Scaler | None = None,
    ) -> LogisticModel:
        """Build a fitted model from a weight vector with the bias first (the training layout).

        Parameters
        ----------
        w : array-like of shape (n_features + 1,)
            ``w[0]`` is the intercept, ``w[1:]`` the coefficients, in training space.
        feature_names : sequence of str, length n_features
        metadata : mapping, optional
        scaler : Scaler, optional
            The standardisation the weights were trained on (raw ``X`` is scaled first).

        Raises
        ------
        ConfigError
            ``w`` not 1-D finite, its length disagrees with ``feature_names`` or the scaler,
            or the names are not distinct strings.
        """
        arr = np.asarray(w, dtype=np.float64)
        names = tuple(feature_names)
        if arr.ndim != 1 or arr.size != len(names) + 1:
            raise ConfigError(
                f"w must have shape (n_features + 1,) = ({len(names) + 1},) for "
                f"{len(names)} feature names, got shape {arr.shape}"
            )
        model = cls(
            coef=arr[1:].copy(),
            intercept=float(arr[0]),
            feature_names=names,
            scaler_mean=None if scaler is None else scaler.mean.copy(),
            scaler_scale=None if scaler is None else scaler.scale.copy(),
            metadata=dict(metadata or {}),
        )
        model._mark_fitted()
        return model

    def _validated(self) -> tuple[FloatArray, float, tuple[str, ...] | None, Scaler | None]:
        """The constructor parameters, checked (ConfigError names the parameter)."""
        if self.coef is None:
            raise ConfigError(
                "LogisticModel has no coefficients: it is trained by a federation (homolr ps); "
                "build it with LogisticModel.from_weights(...) or LogisticModel.load(path), or "
                "pass coef= (fit() does not train, it only validates the given parameters)"
            )
        coef = np.asarray(self.coef, dtype=np.float64)
        if coef.ndim == 2 and coef.shape[0] == 1:
            coef = coef[0]
        if coef.ndim != 1 or coef.size == 0:
            raise ConfigError(f"coef must have shape (n_features,), got {coef.shape}")
        w = np.concatenate([[np.float64(self.intercept)], coef])
        if not np.all(np.isfinite(w)):
            bad = np.flatnonzero(~np.isfinite(w)).tolist()
            raise ConfigError(
                f"w must be finite, got non-finite values at indices {bad} (bias first: "
                "index 0 is the intercept)"
            )
        names = None if self.feature_names is None else tuple(self.feature_names)
        if names is not None:
            if len(names) != coef.size or not all(isinstance(n, str) for n in names):
                raise ConfigError(
                    f"feature_names must be {coef.size} strings, got {len(names)}: {names!r:.80}"
                )
            if len(set(names)) != len(names):
                raise ConfigError(f"feature_names must be distinct, got {names!r:.80}")
        return coef, float(self.intercept), names, self._scaler(coef.size)

    def _scaler(self, n_features: int) -> Scaler | None:
        if (self.scaler_mean is None) != (self.scaler_scale is None):
            raise ConfigError("give both scaler_mean and scaler_scale, or neither")
        if self.scaler_mean is None:
            return None
        scaler = Scaler(np.asarray(self.scaler_mean), np.asarray(self.scaler_scale))
        if scaler.n_features != n_features:
            raise ConfigError(
                f"the scaler has {scaler.n_features} features, the coefficients {n_features}"
            )
        return scaler

    def _mark_fitted(self) -> None:
        """Derive the fitted attributes from the validated parameters."""
        coef, intercept, names, scaler = self._validated()
        self._w = np.concatenate([[intercept], coef])
        raw_coef, raw_intercept = (
            (coef, intercept) if scaler is None else unstandardize(coef, intercept, scaler)
        )
        self.coef_ = np.asarray(raw_coef, dtype=np.float64).reshape(1, -1)
        self.intercept_ = np.array([raw_intercept], dtype=np.float64)
        self.classes_: IntArray = np.array([0, 1], dtype=np.int64)
        self.n_features_in_ = int(coef.size)
        self.scaler_ = scaler
        if names is not None:
            self.feature_names_in_ = np.array(names, dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_

    def fit(self, X: npt.ArrayLike, y: npt.ArrayLike | None = None) -> LogisticModel:
        """Validate the stored parameters against ``X`` (and ``y``) and mark the model fitted.

        The model is trained by the federation; ``fit`` does **not** learn from ``X``. It
        exists so that scikit-learn tools which clone and refit (``Pipeline``,
        ``cross_val_score``, ``GridSearchCV``) can use the model as the fixed, pre-trained
        classifier it is: they get its predictions on their data.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Must have the model's width (and, for a DataFrame, its feature names).
        y : array-like of shape (n_samples,), optional
            Labels, checked to be in {0, 1} when given.

        Returns
        -------
        self

        Raises
        ------
        ConfigError
            No or invalid parameters.
        ModelInputError
            ``X`` does not fit them, or ``y`` is not binary 0/1.
        """
        self._mark_fitted()
        labels = None if y is None else _check_binary_labels(y)
        arr = self._check_X(X)
        if labels is not None and labels.shape != (arr.shape[0],):
            raise ModelInputError(
                f"y must have shape ({arr.shape[0]},) to match X, got {labels.shape}"
            )
        return self

    @property
    def weights(self) -> FloatArray:
        """Training-space weights with the bias first, shape (n_features + 1,)."""
        check_is_fitted(self)
        return np.array(self._w, copy=True)

    @property
    def scaler(self) -> Scaler | None:
        """The standardisation applied to raw ``X`` (None: the model takes ``X`` as is)."""
        check_is_fitted(self)
        return self.scaler_

    # ------------------------------------------------------------------ prediction

    def _check_X(self, X: npt.ArrayLike) -> FloatArray:
        """Validate ``X``: 2-D finite numbers, the model's width and (DataFrame) names."""
        self._check_names(X)
        try:
            arr = check_array(X, dtype=np.float64, ensure_all_finite=True, input_name="X")
        except ValueError as exc:  # a TypeError (not numbers at all) propagates as it is
            raise ModelInputError(
                f"X must be a 2-D array of finite numbers (n_samples, "
                f"n_features={self.n_features_in_}): {exc}"
            ) from None
        if arr.shape[1] != self.n_features_in_:
            raise ModelInputError(
                f"X has {arr.shape[1]} features, but LogisticModel is expecting "
                f"{self.n_features_in_} features as input (the model was trained with "
                f"{self.n_features_in_} features)"
            )
        return np.asarray(arr, dtype=np.float64)

    def _check_names(self, X: object) -> None:
        """A DataFrame's column names must be the model's, in order."""
        columns = getattr(X, "columns", None)
        known = getattr(self, "feature_names_in_", None)
        if columns is None or known is None:
            return
        given = [str(c) for c in columns]
        expected = [str(n) for n in known]
        if given == expected:
            return
        missing = [n for n in expected if n not in given]
        extra = [n for n in given if n not in expected]
        detail = (
            f"missing {missing}, unexpected {extra}"
            if missing or extra
            else "same names in another order; reorder the columns as feature_names_in_"
        )
        raise ModelInputError(f"X's column names do not match the model's features: {detail}")

    def decision_function(self, X: npt.ArrayLike) -> FloatArray:
        """Log-odds of label 1.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Raw features (the scaler, if any, is applied here).

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        check_is_fitted(self)
        arr = self._check_X(X)
        if self.scaler_ is not None:
            arr = self.scaler_.transform(arr)
        return np.asarray(arr @ self._w[1:] + self._w[0])

    def predict_proba(self, X: npt.ArrayLike) -> FloatArray:
        """Class probabilities, columns ordered as ``classes_``.

        Returns
        -------
        ndarray of shape (n_samples, 2)
        """
        p1 = sigmoid(self.decision_function(X))
        return np.column_stack([1.0 - p1, p1])

    def predict_log_proba(self, X: npt.ArrayLike) -> FloatArray:
        """Logarithm of :meth:`predict_proba`, computed without overflow or ``log(0)``.

        Returns
        -------
        ndarray of shape (n_samples, 2)
        """
        z = self.decision_function(X)
        return np.column_stack([-np.logaddexp(0.0, z), -np.logaddexp(0.0, -z)])

    def predict(self, X: npt.ArrayLike) -> IntArray:
        """Labels: 1 where ``P(y = 1) >= 0.5``, i.e. decision >= 0.

        (scikit-learn's ``LogisticRegression`` predicts 0 at a decision of exactly 0; the
        reference solution and :func:`homolr.learning.evaluate` count ``p >= 0.5`` as 1.)

        Returns
        -------
        ndarray of shape (n_samples,), int64
        """
        positive = self.decision_function(X) >= 0
        return np.asarray(self.classes_[positive.astype(np.intp)])

    # ------------------------------------------------------------------ interoperability

    def to_sklearn(self) -> Any:
        """An equivalent fitted :class:`sklearn.linear_model.LogisticRegression`.

        It holds the raw-unit ``coef_`` / ``intercept_``, so it takes raw ``X`` like this
        model and gives the same probabilities to float rounding. Its hyperparameters
        (``C``, ``solver``, ...) are scikit-learn's defaults and say nothing about how the
        federation trained it; ``feature_names_in_`` is not set (it would make scikit-learn
        warn on every NumPy input).
        """
        from sklearn.linear_model import LogisticRegression

        check_is_fitted(self)
        clf = LogisticRegression()
        clf.classes_ = self.classes_.copy()
        clf.coef_ = self.coef_.copy()
        clf.intercept_ = self.intercept_.copy()
        clf.n_features_in_ = self.n_features_in_
        clf.n_iter_ = np.zeros(1, dtype=np.int32)
        return clf

    # ------------------------------------------------------------------ serialisation

    def _names_or_default(self) -> list[str]:
        known = getattr(self, "feature_names_in_", None)
        if known is not None:
            return [str(n) for n in known]
        return [f"x{i}" for i in range(self.n_features_in_)]

    def to_dict(self) -> dict[str, Any]:
        """The JSON document (version 2) as a dict."""
        check_is_fitted(self)
        scaler = self.scaler_
        return {
            "format": MODEL_FORMAT,
            "version": MODEL_VERSION,
            "coef": [float(v) for v in self._w[1:]],
            "intercept": float(self._w[0]),
            "feature_names": self._names_or_default(),
            "scaler": None
            if scaler is None
            else {"mean": scaler.mean.tolist(), "scale": scaler.scale.tolist()},
            "metadata": dict(self.metadata or {}),
        }

    def to_json(self) -> str:
        """Serialise to the JSON document described in the module docstring.

        Raises
        ------
        ConfigError
            The metadata is not JSON-serialisable.
        """
        try:
            return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"model cannot be written as JSON: {exc}") from None

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`to_json` atomically (temporary file in the same directory + rename)."""
        _write_atomic(Path(path), self.to_json().encode("utf-8"))

    @classmethod
    def from_json(cls, text: str, source: str = "<string>") -> LogisticModel:
        """Parse and validate a model document (version 1 or 2).

        Raises
        ------
        DataError
            Invalid JSON, or a field missing or invalid; the message names source and field.
        """
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{source}:{exc.lineno}: column {exc.colno}: not valid JSON ({exc.msg})"
            ) from None
        return cls._from_document(doc, source)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LogisticModel:
        """Read a model file written by :meth:`save` (or a version 1 file).

        Raises
        ------
        DataError
            Missing or unreadable file, not UTF-8, invalid JSON or an invalid field.
        """
        name = os.fspath(path)
        try:
            text = Path(name).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise DataError(f"{name}: model file not found") from None
        except UnicodeDecodeError as exc:
            raise DataError(f"{name}: not UTF-8 (byte offset {exc.start})") from None
        except OSError as exc:
            raise DataError(f"{name}: cannot read model file ({exc.strerror or exc})") from None
        return cls.from_json(text, source=name)

    @classmethod
    def _from_document(cls, doc: object, source: str) -> LogisticModel:
        """Validate every field of a decoded document."""
        if not isinstance(doc, dict):
            raise DataError(f"{source}: expected a JSON object, got {type(doc).__name__}")
        for field in ("format", "version"):
            if field not in doc:
                raise DataError(
                    f"{source}: field '{field}': missing (required: {', '.join(_FIELDS_V2)})"
                )
        if doc["format"] != MODEL_FORMAT:
            raise DataError(
                f"{source}: field 'format': expected {MODEL_FORMAT!r}, got {doc['format']!r}"
            )
        version = doc["version"]
        if isinstance(version, bool) or version not in READABLE_VERSIONS:
            raise DataError(
                f"{source}: field 'version': unsupported version {version!r} "
                f"(this homolr reads versions {', '.join(map(str, READABLE_VERSIONS))})"
            )
        required = _FIELDS_V1 if version == 1 else _FIELDS_V2
        missing = [f for f in required if f not in doc]
        if missing:
            raise DataError(
                f"{source}: field '{missing[0]}': missing (required in version {version}: "
                f"{', '.join(required)})"
            )
        coef = _finite_numbers(doc["coef"], source, "coef")
        intercept = _finite_numbers([doc["intercept"]], source, "intercept")
        names = _names(doc["feature_names"], source, len(coef))
        scaler = _scaler(doc.get("scaler"), source, len(coef))
        if not isinstance(doc["metadata"], dict):
            raise DataError(
                f"{source}: field 'metadata': expected an object, "
                f"got {type(doc['metadata']).__name__}"
            )
        return cls.from_weights([*intercept, *coef], names, doc["metadata"], scaler)


def _check_binary_labels(y: npt.ArrayLike) -> npt.NDArray[Any]:
    """``y`` must be binary labels in {0, 1} (scikit-learn's messages); returned 1-D."""
    try:
        labels = column_or_1d(y, warn=True)
        check_classification_targets(labels)
    except ValueError as exc:
        raise ModelInputError(f"y: {exc}") from None
    kind = type_of_target(labels, input_name="y")
    if kind != "binary":
        raise ModelInputError(
            f"Only binary classification is supported. The type of the target is {kind}."
        )
    unknown = sorted(set(np.unique(labels).tolist()) - {0, 1}, key=str)
    if unknown:
        raise ModelInputError(
            f"y must hold the classes 0 and 1 of this binary model, got {unknown[:5]}"
        )
    return np.asarray(labels)


def _write_atomic(target: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``target``, then rename it over ``target``."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _finite_numbers(value: object, source: str, field: str) -> list[float]:
    """A non-empty list of finite JSON numbers (booleans rejected)."""
    if not isinstance(value, list) or not value:
        raise DataError(
            f"{source}: field '{field}': expected a non-empty list of numbers, got {value!r:.60}"
        )
    for i, v in enumerate(value):
        ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        if not ok:
            where = f"'{field}'" if field == "intercept" else f"'{field}[{i}]'"
            raise DataError(f"{source}: field {where}: expected a finite number, got {v!r}")
    return [float(v) for v in value]


def _names(value: object, source: str, n_features: int) -> tuple[str, ...]:
    """Feature names: distinct strings, one per coefficient."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DataError(
            f"{source}: field 'feature_names': expected a list of strings, got {value!r:.60}"
        )
    if len(value) != n_features:
        raise DataError(
            f"{source}: field 'feature_names': {len(value)} names for {n_features} coefficients"
        )
    if len(set(value)) != len(value):
        dup = next(v for v in value if value.count(v) > 1)
        raise DataError(f"{source}: field 'feature_names': duplicate name {dup!r}")
    return tuple(value)


def _scaler(value: object, source: str, n_features: int) -> Scaler | None:
    """The ``scaler`` field: null, or ``{"mean": [...], "scale": [...]}`` of the model's width."""
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"mean", "scale"}:
        raise DataError(
            f"{source}: field 'scaler': expected null or an object with exactly 'mean' and "
            f"'scale', got {value!r:.60}"
        )
    mean = _finite_numbers(value["mean"], source, "scaler.mean")
    scale = _finite_numbers(value["scale"], source, "scaler.scale")
    for field, numbers in (("scaler.mean", mean), ("scaler.scale", scale)):
        if len(numbers) != n_features:
            raise DataError(
                f"{source}: field '{field}': {len(numbers)} values for {n_features} features"
            )
    bad = [i for i, s in enumerate(scale) if s <= 0]
    if bad:
        raise DataError(
            f"{source}: field 'scaler.scale[{bad[0]}]': must be > 0, got {scale[bad[0]]}"
        )
    return Scaler(np.array(mean), np.array(scale))


def export_onnx(model: LogisticModel, path: str | os.PathLike[str]) -> Path:
    """Write ``model`` as an ONNX graph (float64 input ``X`` of shape (n, n_features)).

    The graph is ``skl2onnx``'s conversion of :meth:`LogisticModel.to_sklearn`, with outputs
    ``label`` (int64) and ``probabilities`` (shape (n, 2), no ZipMap).

    Raises
    ------
    ConfigError
        ``skl2onnx`` is not installed (``pip install 'homolr[onnx]'``).
    """
    try:
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import DoubleTensorType
    except ImportError:
        raise ConfigError(
            "ONNX export needs the optional package skl2onnx: pip install 'homolr[onnx]'"
        ) from None
    clf = model.to_sklearn()
    graph = convert_sklearn(
        clf,
        name="homolr-logistic-model",
        initial_types=[("X", DoubleTensorType([None, model.n_features_in_]))],
        options={id(clf): {"zipmap": False}},
    )
    target = Path(path)
    _write_atomic(target, graph.SerializeToString())
    return target


__all__ = [
    "MODEL_FORMAT",
    "MODEL_VERSION",
    "READABLE_VERSIONS",
    "LogisticModel",
    "ModelInputError",
    "export_onnx",
]
