"""The trained model: scikit-learn-style prediction API and a JSON file format (no pickle).

File format (UTF-8 JSON, one object)::

    {
      "format": "homolr-logistic-model",
      "version": 1,
      "coef": [0.12, ...],              # n_features floats
      "intercept": -0.3,
      "feature_names": ["x0", ...],     # n_features strings
      "metadata": {...}                 # caller's: training plan, mode, key size, ...
    }

Floats are written with ``repr`` precision, so a save/load round trip is exact.
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

from homolr.errors import ConfigError, DataError
from homolr.learning.metrics import sigmoid

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

MODEL_FORMAT = "homolr-logistic-model"
MODEL_VERSION = 1
_FIELDS = ("format", "version", "coef", "intercept", "feature_names", "metadata")


class LogisticModel:
    """A binary logistic-regression model, ``P(y = 1 | x) = sigmoid(x @ coef_.T + intercept_)``.

    Build one with :meth:`from_weights` (validated) or :meth:`load`; ``__init__`` only stores.

    Parameters
    ----------
    coef : ndarray of shape (1, n_features)
    intercept : ndarray of shape (1,)
    feature_names : tuple of str, length n_features
    metadata : mapping, optional
        JSON-serialisable description of how the model was trained.

    Attributes
    ----------
    coef_ : ndarray of shape (1, n_features)
    intercept_ : ndarray of shape (1,)
    classes_ : ndarray of shape (2,)
        ``array([0, 1])``.
    feature_names_in_ : ndarray of shape (n_features,), dtype object
    metadata : dict
    """

    def __init__(
        self,
        coef: FloatArray,
        intercept: FloatArray,
        feature_names: Sequence[str],
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self.coef_ = coef
        self.intercept_ = intercept
        self.classes_: IntArray = np.array([0, 1], dtype=np.int64)
        self.feature_names_in_ = np.array(list(feature_names), dtype=object)
        self.metadata: dict[str, Any] = dict(metadata or {})

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_weights(
        cls,
        w: npt.ArrayLike,
        feature_names: Sequence[str],
        metadata: Mapping[str, Any] | None = None,
    ) -> LogisticModel:
        """Build from a weight vector with the bias first (the training convention).

        Parameters
        ----------
        w : array-like of shape (n_features + 1,)
            ``w[0]`` is the intercept, ``w[1:]`` the coefficients.
        feature_names : sequence of str, length n_features
        metadata : mapping, optional

        Raises
        ------
        ConfigError
            ``w`` not 1-D finite, or its length disagrees with ``feature_names``.
        """
        arr = np.asarray(w, dtype=np.float64)
        names = tuple(feature_names)
        if arr.ndim != 1 or arr.size != len(names) + 1:
            raise ConfigError(
                f"w must have shape (n_features + 1,) = ({len(names) + 1},) for "
                f"{len(names)} feature names, got shape {arr.shape}"
            )
        if not np.all(np.isfinite(arr)):
            bad = np.flatnonzero(~np.isfinite(arr)).tolist()
            raise ConfigError(f"w must be finite, got non-finite values at indices {bad}")
        return cls(arr[1:].reshape(1, -1).copy(), arr[:1].copy(), names, metadata)

    @property
    def n_features_in_(self) -> int:
        """Number of features the model expects."""
        return int(self.coef_.shape[1])

    @property
    def weights(self) -> FloatArray:
        """Weights with the bias first, shape (n_features + 1,)."""
        return np.concatenate([self.intercept_, self.coef_.ravel()])

    # ------------------------------------------------------------------ prediction

    def _check_X(self, X: npt.ArrayLike) -> FloatArray:
        """Validate the shape of ``X`` (n_samples, n_features)."""
        arr = np.asarray(X, dtype=np.float64)
        if arr.ndim != 2:
            raise DataError(
                f"X must be 2-D (n_samples, n_features={self.n_features_in_}), "
                f"got shape {arr.shape}"
            )
        if arr.shape[1] != self.n_features_in_:
            raise DataError(
                f"X has {arr.shape[1]} features, but the model was trained with "
                f"{self.n_features_in_} features"
            )
        return arr

    def decision_function(self, X: npt.ArrayLike) -> FloatArray:
        """Log-odds of label 1.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        return np.asarray(self._check_X(X) @ self.coef_.ravel() + self.intercept_[0])

    def predict_proba(self, X: npt.ArrayLike) -> FloatArray:
        """Class probabilities, columns ordered as ``classes_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, 2)
        """
        p1 = sigmoid(self.decision_function(X))
        return np.column_stack([1.0 - p1, p1])

    def predict(self, X: npt.ArrayLike) -> IntArray:
        """Labels (1 where ``P(y = 1) >= 0.5``, i.e. decision >= 0).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,), int64
        """
        return (self.decision_function(X) >= 0).astype(np.int64)

    # ------------------------------------------------------------------ serialisation

    def to_dict(self) -> dict[str, Any]:
        """The JSON document as a dict."""
        return {
            "format": MODEL_FORMAT,
            "version": MODEL_VERSION,
            "coef": [float(v) for v in self.coef_.ravel()],
            "intercept": float(self.intercept_[0]),
            "feature_names": [str(n) for n in self.feature_names_in_],
            "metadata": self.metadata,
        }

    def to_json(self) -> str:
        """Serialise to the JSON document described in the module docstring.

        Raises
        ------
        ConfigError
            The metadata is not JSON-serialisable, or a weight is not finite.
        """
        try:
            return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"model cannot be written as JSON: {exc}") from None

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`to_json` atomically (temporary file in the same directory + rename)."""
        text = self.to_json()
        target = Path(path)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def from_json(cls, text: str, source: str = "<string>") -> LogisticModel:
        """Parse and validate a model document.

        Parameters
        ----------
        text : str
            The JSON document.
        source : str
            Name used in error messages (the file path when loading).

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
        """Read a model file written by :meth:`save`.

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
        missing = [f for f in _FIELDS if f not in doc]
        if missing:
            raise DataError(
                f"{source}: field '{missing[0]}': missing (required: {', '.join(_FIELDS)})"
            )
        if doc["format"] != MODEL_FORMAT:
            raise DataError(
                f"{source}: field 'format': expected {MODEL_FORMAT!r}, got {doc['format']!r}"
            )
        if doc["version"] != MODEL_VERSION or isinstance(doc["version"], bool):
            raise DataError(
                f"{source}: field 'version': unsupported version {doc['version']!r} "
                f"(this homolr reads version {MODEL_VERSION})"
            )
        coef = _finite_numbers(doc["coef"], source, "coef")
        intercept = _finite_numbers([doc["intercept"]], source, "intercept")
        names = _names(doc["feature_names"], source, len(coef))
        if not isinstance(doc["metadata"], dict):
            raise DataError(
                f"{source}: field 'metadata': expected an object, "
                f"got {type(doc['metadata']).__name__}"
            )
        return cls(np.array([coef]), np.array(intercept), names, doc["metadata"])


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
