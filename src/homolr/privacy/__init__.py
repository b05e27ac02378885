"""homolr.privacy: differential privacy added inside the enclave, around the decrypted sum.

Data flow (docs/privacy.md has the derivations)::

    member: clip_rows (record level) / clip_update (member level)
      -> encrypted contribution -> homomorphic sum -> key holder decrypts the sum
      -> PrivacyLedger.spend -> DpMechanism.release (noise, projection, grid)
      -> PS averages -> admit_model -> encrypted for the next round

Pure functions and small value classes; nothing here holds a key or does I/O besides reading the
noise bytes (``os.urandom`` unless a source is injected).
"""

from homolr.privacy.accountant import (
    CALIBRATION_RTOL,
    MAX_NOISE_MULTIPLIER,
    MIN_NOISE_MULTIPLIER,
    PrivacyLedger,
    calibrate_noise_multiplier,
    epsilon_spent,
    resolve_noise_multiplier,
    rounds_within_budget,
)
from homolr.privacy.clipping import clip_rows, clip_update, project
from homolr.privacy.config import (
    DP_WEIGHTING,
    LEVELS,
    MODE_OF_LEVEL,
    Level,
    PrivacyConfig,
    require_compatible,
)
from homolr.privacy.mechanism import DpMechanism, admit_model
from homolr.privacy.noise import (
    MAX_ABS_STANDARD_SAMPLE,
    ByteSource,
    add_noise_on_grid,
    deterministic_source,
    gaussian_noise,
    keyed_source,
    open_uniforms,
    snap_to_grid,
    standard_normal,
)
from homolr.privacy.sensitivity import (
    encoded_model_bound,
    fixed_point_error,
    member_sum_sensitivity,
    record_sensitivity,
    record_sum_sensitivity,
    row_term_bound,
    row_term_diameter,
)

__all__ = [
    "CALIBRATION_RTOL",
    "DP_WEIGHTING",
    "LEVELS",
    "MAX_ABS_STANDARD_SAMPLE",
    "MAX_NOISE_MULTIPLIER",
    "MIN_NOISE_MULTIPLIER",
    "MODE_OF_LEVEL",
    "ByteSource",
    "DpMechanism",
    "Level",
    "PrivacyConfig",
    "PrivacyLedger",
    "add_noise_on_grid",
    "admit_model",
    "calibrate_noise_multiplier",
    "clip_rows",
    "clip_update",
    "deterministic_source",
    "encoded_model_bound",
    "epsilon_spent",
    "fixed_point_error",
    "gaussian_noise",
    "keyed_source",
    "member_sum_sensitivity",
    "open_uniforms",
    "project",
    "record_sensitivity",
    "record_sum_sensitivity",
    "require_compatible",
    "resolve_noise_multiplier",
    "rounds_within_budget",
    "row_term_bound",
    "row_term_diameter",
    "snap_to_grid",
    "standard_normal",
]
