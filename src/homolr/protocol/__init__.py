"""The wire protocol: in-program messages (dataclasses), their protobuf serde, and the gRPC service."""

from homolr.protocol.messages import (
    MODES,
    PROTOCOL_VERSION,
    WEIGHTINGS,
    GlobalModel,
    JoinRequest,
    Mode,
    ModelHeader,
    ServerInfo,
    TrainingPlan,
    Update,
    UpdateHeader,
    Weighting,
)

__all__ = [
    "MODES",
    "PROTOCOL_VERSION",
    "WEIGHTINGS",
    "GlobalModel",
    "JoinRequest",
    "Mode",
    "ModelHeader",
    "ServerInfo",
    "TrainingPlan",
    "Update",
    "UpdateHeader",
    "Weighting",
]
