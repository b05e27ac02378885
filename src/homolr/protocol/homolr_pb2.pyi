from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Mode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODE_UNSPECIFIED: _ClassVar[Mode]
    MODE_ENCRYPTED: _ClassVar[Mode]
    MODE_AGGREGATE: _ClassVar[Mode]

class Weighting(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WEIGHTING_UNSPECIFIED: _ClassVar[Weighting]
    WEIGHTING_EQUAL: _ClassVar[Weighting]
    WEIGHTING_SAMPLES: _ClassVar[Weighting]

class Participation(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PARTICIPATION_UNSPECIFIED: _ClassVar[Participation]
    PARTICIPATION_ALL: _ClassVar[Participation]
    PARTICIPATION_QUORUM: _ClassVar[Participation]

class PrivacyLevel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PRIVACY_LEVEL_NONE: _ClassVar[PrivacyLevel]
    PRIVACY_LEVEL_MEMBER: _ClassVar[PrivacyLevel]
    PRIVACY_LEVEL_RECORD: _ClassVar[PrivacyLevel]

class RoundKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROUND_KIND_UNSPECIFIED: _ClassVar[RoundKind]
    ROUND_KIND_TRAIN: _ClassVar[RoundKind]
    ROUND_KIND_MOMENTS: _ClassVar[RoundKind]

class Outcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTCOME_UNSPECIFIED: _ClassVar[Outcome]
    OUTCOME_COMPLETED: _ClassVar[Outcome]
    OUTCOME_PAUSED: _ClassVar[Outcome]
    OUTCOME_STOPPED: _ClassVar[Outcome]
    OUTCOME_FAILED: _ClassVar[Outcome]
MODE_UNSPECIFIED: Mode
MODE_ENCRYPTED: Mode
MODE_AGGREGATE: Mode
WEIGHTING_UNSPECIFIED: Weighting
WEIGHTING_EQUAL: Weighting
WEIGHTING_SAMPLES: Weighting
PARTICIPATION_UNSPECIFIED: Participation
PARTICIPATION_ALL: Participation
PARTICIPATION_QUORUM: Participation
PRIVACY_LEVEL_NONE: PrivacyLevel
PRIVACY_LEVEL_MEMBER: PrivacyLevel
PRIVACY_LEVEL_RECORD: PrivacyLevel
ROUND_KIND_UNSPECIFIED: RoundKind
ROUND_KIND_TRAIN: RoundKind
ROUND_KIND_MOMENTS: RoundKind
OUTCOME_UNSPECIFIED: Outcome
OUTCOME_COMPLETED: Outcome
OUTCOME_PAUSED: Outcome
OUTCOME_STOPPED: Outcome
OUTCOME_FAILED: Outcome

class TrainingPlan(_message.Message):
    __slots__ = ("mode", "iterations", "learning_rate", "schedule", "alpha", "init_weight", "eval_every", "min_workers", "expected_workers", "round_timeout_s", "weighting", "frac_bits", "value_bits", "headroom_bits", "batch_size", "local_epochs", "tolerance", "n_features", "feature_names", "seed", "participation", "first_round_timeout_s", "key_bits", "chunk_ciphertexts", "standardize", "privacy_level", "dp_clip", "dp_noise_multiplier", "dp_epsilon", "dp_delta", "dp_model_bound", "feature_bounds", "dp_min_samples")
    MODE_FIELD_NUMBER: _ClassVar[int]
    ITERATIONS_FIELD_NUMBER: _ClassVar[int]
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    ALPHA_FIELD_NUMBER: _ClassVar[int]
    INIT_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    EVAL_EVERY_FIELD_NUMBER: _ClassVar[int]
    MIN_WORKERS_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_WORKERS_FIELD_NUMBER: _ClassVar[int]
    ROUND_TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    WEIGHTING_FIELD_NUMBER: _ClassVar[int]
    FRAC_BITS_FIELD_NUMBER: _ClassVar[int]
    VALUE_BITS_FIELD_NUMBER: _ClassVar[int]
    HEADROOM_BITS_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    LOCAL_EPOCHS_FIELD_NUMBER: _ClassVar[int]
    TOLERANCE_FIELD_NUMBER: _ClassVar[int]
    N_FEATURES_FIELD_NUMBER: _ClassVar[int]
    FEATURE_NAMES_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    PARTICIPATION_FIELD_NUMBER: _ClassVar[int]
    FIRST_ROUND_TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    KEY_BITS_FIELD_NUMBER: _ClassVar[int]
    CHUNK_CIPHERTEXTS_FIELD_NUMBER: _ClassVar[int]
    STANDARDIZE_FIELD_NUMBER: _ClassVar[int]
    PRIVACY_LEVEL_FIELD_NUMBER: _ClassVar[int]
    DP_CLIP_FIELD_NUMBER: _ClassVar[int]
    DP_NOISE_MULTIPLIER_FIELD_NUMBER: _ClassVar[int]
    DP_EPSILON_FIELD_NUMBER: _ClassVar[int]
    DP_DELTA_FIELD_NUMBER: _ClassVar[int]
    DP_MODEL_BOUND_FIELD_NUMBER: _ClassVar[int]
    FEATURE_BOUNDS_FIELD_NUMBER: _ClassVar[int]
    DP_MIN_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    mode: Mode
    iterations: int
    learning_rate: float
    schedule: str
    alpha: float
    init_weight: float
    eval_every: int
    min_workers: int
    expected_workers: int
    round_timeout_s: float
    weighting: Weighting
    frac_bits: int
    value_bits: int
    headroom_bits: int
    batch_size: int
    local_epochs: int
    tolerance: float
    n_features: int
    feature_names: _containers.RepeatedScalarFieldContainer[str]
    seed: int
    participation: Participation
    first_round_timeout_s: float
    key_bits: int
    chunk_ciphertexts: int
    standardize: bool
    privacy_level: PrivacyLevel
    dp_clip: float
    dp_noise_multiplier: float
    dp_epsilon: float
    dp_delta: float
    dp_model_bound: float
    feature_bounds: _containers.RepeatedScalarFieldContainer[float]
    dp_min_samples: int
    def __init__(self, mode: _Optional[_Union[Mode, str]] = ..., iterations: _Optional[int] = ..., learning_rate: _Optional[float] = ..., schedule: _Optional[str] = ..., alpha: _Optional[float] = ..., init_weight: _Optional[float] = ..., eval_every: _Optional[int] = ..., min_workers: _Optional[int] = ..., expected_workers: _Optional[int] = ..., round_timeout_s: _Optional[float] = ..., weighting: _Optional[_Union[Weighting, str]] = ..., frac_bits: _Optional[int] = ..., value_bits: _Optional[int] = ..., headroom_bits: _Optional[int] = ..., batch_size: _Optional[int] = ..., local_epochs: _Optional[int] = ..., tolerance: _Optional[float] = ..., n_features: _Optional[int] = ..., feature_names: _Optional[_Iterable[str]] = ..., seed: _Optional[int] = ..., participation: _Optional[_Union[Participation, str]] = ..., first_round_timeout_s: _Optional[float] = ..., key_bits: _Optional[int] = ..., chunk_ciphertexts: _Optional[int] = ..., standardize: _Optional[bool] = ..., privacy_level: _Optional[_Union[PrivacyLevel, str]] = ..., dp_clip: _Optional[float] = ..., dp_noise_multiplier: _Optional[float] = ..., dp_epsilon: _Optional[float] = ..., dp_delta: _Optional[float] = ..., dp_model_bound: _Optional[float] = ..., feature_bounds: _Optional[_Iterable[float]] = ..., dp_min_samples: _Optional[int] = ...) -> None: ...

class ServerInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ServerInfo(_message.Message):
    __slots__ = ("protocol_version", "run_id", "public_key", "plan", "attestation_type", "quote", "tls_certificate", "federation")
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    ATTESTATION_TYPE_FIELD_NUMBER: _ClassVar[int]
    QUOTE_FIELD_NUMBER: _ClassVar[int]
    TLS_CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    FEDERATION_FIELD_NUMBER: _ClassVar[int]
    protocol_version: str
    run_id: str
    public_key: bytes
    plan: TrainingPlan
    attestation_type: str
    quote: bytes
    tls_certificate: bytes
    federation: bytes
    def __init__(self, protocol_version: _Optional[str] = ..., run_id: _Optional[str] = ..., public_key: _Optional[bytes] = ..., plan: _Optional[_Union[TrainingPlan, _Mapping]] = ..., attestation_type: _Optional[str] = ..., quote: _Optional[bytes] = ..., tls_certificate: _Optional[bytes] = ..., federation: _Optional[bytes] = ...) -> None: ...

class JoinRequest(_message.Message):
    __slots__ = ("worker_id", "run_id", "n_features", "n_samples", "protocol_version")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    N_FEATURES_FIELD_NUMBER: _ClassVar[int]
    N_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    run_id: str
    n_features: int
    n_samples: int
    protocol_version: str
    def __init__(self, worker_id: _Optional[str] = ..., run_id: _Optional[str] = ..., n_features: _Optional[int] = ..., n_samples: _Optional[int] = ..., protocol_version: _Optional[str] = ...) -> None: ...

class JoinReply(_message.Message):
    __slots__ = ("round",)
    ROUND_FIELD_NUMBER: _ClassVar[int]
    round: int
    def __init__(self, round: _Optional[int] = ...) -> None: ...

class ModelRequest(_message.Message):
    __slots__ = ("worker_id", "run_id", "round", "have_scaler")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    HAVE_SCALER_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    run_id: str
    round: int
    have_scaler: bool
    def __init__(self, worker_id: _Optional[str] = ..., run_id: _Optional[str] = ..., round: _Optional[int] = ..., have_scaler: _Optional[bool] = ...) -> None: ...

class Scaler(_message.Message):
    __slots__ = ("mean", "scale")
    MEAN_FIELD_NUMBER: _ClassVar[int]
    SCALE_FIELD_NUMBER: _ClassVar[int]
    mean: _containers.RepeatedScalarFieldContainer[float]
    scale: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, mean: _Optional[_Iterable[float]] = ..., scale: _Optional[_Iterable[float]] = ...) -> None: ...

class ModelHeader(_message.Message):
    __slots__ = ("round", "finished", "reason", "encrypted", "length", "frac_bits", "payload_bytes", "pending", "step", "kind", "weight", "scaler", "outcome")
    ROUND_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ENCRYPTED_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    FRAC_BITS_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_BYTES_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    SCALER_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    round: int
    finished: bool
    reason: str
    encrypted: bool
    length: int
    frac_bits: int
    payload_bytes: int
    pending: bool
    step: int
    kind: RoundKind
    weight: float
    scaler: Scaler
    outcome: Outcome
    def __init__(self, round: _Optional[int] = ..., finished: _Optional[bool] = ..., reason: _Optional[str] = ..., encrypted: _Optional[bool] = ..., length: _Optional[int] = ..., frac_bits: _Optional[int] = ..., payload_bytes: _Optional[int] = ..., pending: _Optional[bool] = ..., step: _Optional[int] = ..., kind: _Optional[_Union[RoundKind, str]] = ..., weight: _Optional[float] = ..., scaler: _Optional[_Union[Scaler, _Mapping]] = ..., outcome: _Optional[_Union[Outcome, str]] = ...) -> None: ...

class ModelChunk(_message.Message):
    __slots__ = ("header", "data")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    header: ModelHeader
    data: bytes
    def __init__(self, header: _Optional[_Union[ModelHeader, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class UpdateHeader(_message.Message):
    __slots__ = ("worker_id", "run_id", "round", "length", "frac_bits", "value_bits", "headroom_bits", "n_ciphertexts", "payload_bytes")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    FRAC_BITS_FIELD_NUMBER: _ClassVar[int]
    VALUE_BITS_FIELD_NUMBER: _ClassVar[int]
    HEADROOM_BITS_FIELD_NUMBER: _ClassVar[int]
    N_CIPHERTEXTS_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_BYTES_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    run_id: str
    round: int
    length: int
    frac_bits: int
    value_bits: int
    headroom_bits: int
    n_ciphertexts: int
    payload_bytes: int
    def __init__(self, worker_id: _Optional[str] = ..., run_id: _Optional[str] = ..., round: _Optional[int] = ..., length: _Optional[int] = ..., frac_bits: _Optional[int] = ..., value_bits: _Optional[int] = ..., headroom_bits: _Optional[int] = ..., n_ciphertexts: _Optional[int] = ..., payload_bytes: _Optional[int] = ...) -> None: ...

class UpdateChunk(_message.Message):
    __slots__ = ("header", "data")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    header: UpdateHeader
    data: bytes
    def __init__(self, header: _Optional[_Union[UpdateHeader, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class SubmitReply(_message.Message):
    __slots__ = ("round", "received")
    ROUND_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_FIELD_NUMBER: _ClassVar[int]
    round: int
    received: int
    def __init__(self, round: _Optional[int] = ..., received: _Optional[int] = ...) -> None: ...
