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
MODE_UNSPECIFIED: Mode
MODE_ENCRYPTED: Mode
MODE_AGGREGATE: Mode
WEIGHTING_UNSPECIFIED: Weighting
WEIGHTING_EQUAL: Weighting
WEIGHTING_SAMPLES: Weighting

class TrainingPlan(_message.Message):
    __slots__ = ("mode", "iterations", "learning_rate", "schedule", "alpha", "init_weight", "eval_every", "min_workers", "expected_workers", "round_timeout_s", "weighting", "frac_bits", "value_bits", "headroom_bits", "batch_size", "local_epochs", "tolerance", "n_features", "feature_names", "seed")
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
    def __init__(self, mode: _Optional[_Union[Mode, str]] = ..., iterations: _Optional[int] = ..., learning_rate: _Optional[float] = ..., schedule: _Optional[str] = ..., alpha: _Optional[float] = ..., init_weight: _Optional[float] = ..., eval_every: _Optional[int] = ..., min_workers: _Optional[int] = ..., expected_workers: _Optional[int] = ..., round_timeout_s: _Optional[float] = ..., weighting: _Optional[_Union[Weighting, str]] = ..., frac_bits: _Optional[int] = ..., value_bits: _Optional[int] = ..., headroom_bits: _Optional[int] = ..., batch_size: _Optional[int] = ..., local_epochs: _Optional[int] = ..., tolerance: _Optional[float] = ..., n_features: _Optional[int] = ..., feature_names: _Optional[_Iterable[str]] = ..., seed: _Optional[int] = ...) -> None: ...

class ServerInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ServerInfo(_message.Message):
    __slots__ = ("protocol_version", "run_id", "public_key", "plan", "attestation_type", "quote", "tls_certificate")
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    ATTESTATION_TYPE_FIELD_NUMBER: _ClassVar[int]
    QUOTE_FIELD_NUMBER: _ClassVar[int]
    TLS_CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    protocol_version: str
    run_id: str
    public_key: bytes
    plan: TrainingPlan
    attestation_type: str
    quote: bytes
    tls_certificate: bytes
    def __init__(self, protocol_version: _Optional[str] = ..., run_id: _Optional[str] = ..., public_key: _Optional[bytes] = ..., plan: _Optional[_Union[TrainingPlan, _Mapping]] = ..., attestation_type: _Optional[str] = ..., quote: _Optional[bytes] = ..., tls_certificate: _Optional[bytes] = ...) -> None: ...

class JoinRequest(_message.Message):
    __slots__ = ("worker_id", "run_id", "n_features", "n_samples")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    N_FEATURES_FIELD_NUMBER: _ClassVar[int]
    N_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    run_id: str
    n_features: int
    n_samples: int
    def __init__(self, worker_id: _Optional[str] = ..., run_id: _Optional[str] = ..., n_features: _Optional[int] = ..., n_samples: _Optional[int] = ...) -> None: ...

class JoinReply(_message.Message):
    __slots__ = ("round",)
    ROUND_FIELD_NUMBER: _ClassVar[int]
    round: int
    def __init__(self, round: _Optional[int] = ...) -> None: ...

class ModelRequest(_message.Message):
    __slots__ = ("worker_id", "run_id", "round")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    run_id: str
    round: int
    def __init__(self, worker_id: _Optional[str] = ..., run_id: _Optional[str] = ..., round: _Optional[int] = ...) -> None: ...

class ModelHeader(_message.Message):
    __slots__ = ("round", "finished", "reason", "encrypted", "length", "frac_bits", "payload_bytes")
    ROUND_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ENCRYPTED_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    FRAC_BITS_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_BYTES_FIELD_NUMBER: _ClassVar[int]
    round: int
    finished: bool
    reason: str
    encrypted: bool
    length: int
    frac_bits: int
    payload_bytes: int
    def __init__(self, round: _Optional[int] = ..., finished: _Optional[bool] = ..., reason: _Optional[str] = ..., encrypted: _Optional[bool] = ..., length: _Optional[int] = ..., frac_bits: _Optional[int] = ..., payload_bytes: _Optional[int] = ...) -> None: ...

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
