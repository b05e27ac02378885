"""homolr.learning: data sets, local training steps, metrics and the model file.

Data flow: CSV -> :func:`load_csv` -> :class:`Dataset` -> :func:`add_bias` -> a local step
(:func:`linear_update` for the encrypted Taylor step, :func:`sgd_epochs` for secure aggregation)
-> averaged global weights -> :func:`evaluate` / :class:`LogisticModel`.

:func:`train_taylor` and :func:`train_fedavg` simulate both modes in plaintext (oracles for the
encrypted runs); :func:`replay_reference` reproduces the reference solution's log.

Members with raw data: :mod:`homolr.learning.scaling` (federated standardisation: moments, their
fixed-point plan, the global :class:`Scaler`); :func:`data_warnings` flags weak data sets;
:func:`write_breast_homo` rebuilds the reference files from scikit-learn's copy.
"""

from typing import TYPE_CHECKING, Any

from homolr.learning.breast_homo import breast_homo_sets, breast_homo_split, write_breast_homo
from homolr.learning.data import (
    Dataset,
    add_bias,
    data_warnings,
    demo_split,
    load_csv,
    load_unlabelled_csv,
    select_features,
    write_csv,
)
from homolr.learning.metrics import (
    Metrics,
    evaluate,
    format_eval_line,
    log_loss,
    roc_auc,
    sigmoid,
)
from homolr.learning.reference import replay_reference
from homolr.learning.scaling import (
    Moments,
    MomentsFixedPoint,
    Scaler,
    combine_moments,
    feature_moments,
    global_scaler,
    moments_fixed_point,
    moments_from_vector,
    moments_vector,
    scaler_warnings,
    unstandardize,
)
from homolr.learning.steps import (
    SCHEDULES,
    SufficientStats,
    learning_rate,
    linear_update,
    logistic_gradient,
    max_stable_lr,
    quantize,
    sgd_epochs,
    sufficient_stats,
    taylor_gradient,
)
from homolr.learning.training import (
    AGGREGATE_DEFAULTS,
    ENCRYPTED_DEFAULTS,
    TrainResult,
    average_weights,
    taylor_local,
    train_fedavg,
    train_taylor,
)

# homolr.learning.model subclasses scikit-learn's estimator classes: importing it loads
# scikit-learn (about 0.5 s and 100 MB). Members and the PS's training loop do not need it, so it
# is imported on first use of one of its names (PEP 562).
_MODEL_NAMES = ("MODEL_FORMAT", "MODEL_VERSION", "LogisticModel", "ModelInputError", "export_onnx")
if TYPE_CHECKING:
    from homolr.learning.model import (
        MODEL_FORMAT,
        MODEL_VERSION,
        LogisticModel,
        ModelInputError,
        export_onnx,
    )


def __getattr__(name: str) -> Any:
    if name in _MODEL_NAMES:
        from homolr.learning import model

        return getattr(model, name)
    raise AttributeError(f"module 'homolr.learning' has no attribute {name!r}")


__all__ = [
    "AGGREGATE_DEFAULTS",
    "ENCRYPTED_DEFAULTS",
    "MODEL_FORMAT",
    "MODEL_VERSION",
    "SCHEDULES",
    "Dataset",
    "LogisticModel",
    "Metrics",
    "ModelInputError",
    "Moments",
    "MomentsFixedPoint",
    "Scaler",
    "SufficientStats",
    "TrainResult",
    "add_bias",
    "average_weights",
    "breast_homo_sets",
    "breast_homo_split",
    "combine_moments",
    "data_warnings",
    "demo_split",
    "evaluate",
    "export_onnx",
    "feature_moments",
    "format_eval_line",
    "global_scaler",
    "learning_rate",
    "linear_update",
    "load_csv",
    "load_unlabelled_csv",
    "log_loss",
    "logistic_gradient",
    "max_stable_lr",
    "moments_fixed_point",
    "moments_from_vector",
    "moments_vector",
    "quantize",
    "replay_reference",
    "roc_auc",
    "scaler_warnings",
    "select_features",
    "sgd_epochs",
    "sigmoid",
    "sufficient_stats",
    "taylor_gradient",
    "taylor_local",
    "train_fedavg",
    "train_taylor",
    "unstandardize",
    "write_breast_homo",
    "write_csv",
]
