"""L2 sensitivity of one round's release, for both privacy levels (derivation: docs/privacy.md).

Record level (encrypted mode). One member's Taylor step is affine in the global model ``w``::

    M w + b = (1 - lr alpha) w - (lr / m) sum_j phi(x_j, y_j),
    phi(x, y) = x (0.25 x^T w + 0.5 - y)

For rows with ``||x|| <= C`` (bias entry included) and ``||w|| <= B`` every ``phi`` lies in the
ball of centre ``0.125 C**2 w`` and radius ``0.125 C**2 B + 0.5 C``, so any two ``phi`` (and any
mean of them) are at most ``K = 0.25 C**2 B + C`` apart. Adding or removing one row at a member
with ``m`` rows in the larger of the two data sets moves its ``M w + b`` by at most
``lr K / m``; the L2 term ``(1 - lr alpha) w`` does not move. Averaging then divides by the
member count (equal weighting) or turns the step into the pooled step over all ``N`` rows
(sample weighting), hence ``lr K / (n min m)`` or ``lr K / N``. Fixed point adds a small,
explicit term (:func:`fixed_point_error`).

Member level (secure-aggregation mode). Every member's update is clipped to ``clip`` (and
rounded toward zero onto the grid), so the sum of updates moves by at most ``clip`` when one
member's update is replaced by zero (Kairouz et al. 2021's "zero-out" neighbours).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from homolr.errors import ConfigError
from homolr.privacy.config import PrivacyConfig

WEIGHTINGS = ("equal", "samples")
#: Slack for the float64 decoding of the decrypted sum (and one division), relative to the
#: largest norm of a member's output: each operation errs by at most 2**-53 relatively.
DECODE_SLACK = 2.0**-50


def row_term_bound(clip: float, model_bound: float) -> float:
    """``L = 0.25 C**2 B + 0.5 C``: the largest ``||phi(x, y)||`` (``||x|| <= C``, ``||w|| <= B``)."""
    return 0.25 * clip * clip * model_bound + 0.5 * clip


def row_term_diameter(clip: float, model_bound: float) -> float:
    """``K = 0.25 C**2 B + C``: the largest distance between two ``phi`` (or means of them)."""
    return 0.25 * clip * clip * model_bound + clip


def encoded_model_bound(model_bound: float, n_weights: int, frac_bits: int) -> float:
    """Norm bound of the model after the key holder encodes it at ``frac_bits`` (round to nearest)."""
    return model_bound + math.sqrt(n_weights) * 2.0 ** -(frac_bits + 1)


def fixed_point_error(model_bound: float, n_weights: int, frac_bits: int) -> float:
    """Largest ``||u_fp - u||`` of one member's fixed-point step against the exact one.

    The worker computes ``Q_f(M) w_q + Q_2f(b)`` exactly on integers, with ``w_q`` the encoded
    model (``||w_q|| <= B_q``, :func:`encoded_model_bound`); against ``M w_q + b`` the error is
    at most ``||Q_f(M) - M||_F B_q + ||Q_2f(b) - b|| <= d 2**-(f+1) B_q + sqrt(d) 2**-(2f+1)``.
    """
    b_q = encoded_model_bound(model_bound, n_weights, frac_bits)
    return n_weights * 2.0 ** -(frac_bits + 1) * b_q + math.sqrt(n_weights) * 2.0 ** -(
        2 * frac_bits + 1
    )


def record_sensitivity(
    lr: float,
    clip: float,
    model_bound: float,
    alpha: float,
    sample_counts: Sequence[int],
    weighting: str,
    *,
    frac_bits: int | None = None,
    n_weights: int | None = None,
) -> float:
    """L2 sensitivity of one encrypted-mode round's global model to one row added or removed.

    Parameters
    ----------
    lr : float
        Learning rate of the round, > 0.
    clip : float
        Bound on every row's L2 norm, bias entry included (:func:`clip_rows`), > 0.
    model_bound : float
        Bound on the L2 norm of the global model the round starts from, > 0.
    alpha : float
        L2 coefficient, >= 0. It cancels in exact arithmetic (the term ``(1 - lr alpha) w`` is
        the same for neighbours); it enters only the float64 decoding slack.
    sample_counts : sequence of int
        Row count of every member in the round (or a public lower bound on it), each >= 2. The
        bound covers every pair of data sets that differ by one row at one member and in which
        the larger one has at least these counts.
    weighting : {"equal", "samples"}
        How the PS averages: plain mean over members, or weighted by row counts.
    frac_bits, n_weights : int or None
        Both set: include the fixed-point rounding of the encrypted step (model and matrix at
        ``frac_bits``, offset at ``2 frac_bits``) and the float64 decoding of the sum.

    Returns
    -------
    float
        ``lr K / (n min m)`` (equal) or ``lr K / sum m`` (samples), ``K = 0.25 C**2 B_q + C``,
        plus the rounding terms; ``B_q = B`` in exact arithmetic.
    """
    counts = _check_record_args(lr, clip, model_bound, alpha, sample_counts, weighting)
    if (frac_bits is None) != (n_weights is None):
        raise ConfigError("frac_bits and n_weights go together: give both or neither")
    if frac_bits is None or n_weights is None:
        return lr * row_term_diameter(clip, model_bound) / _divisor(counts, weighting)
    if frac_bits < 0 or n_weights < 1:
        raise ConfigError(f"need frac_bits >= 0 and n_weights >= 1, got {frac_bits}, {n_weights}")
    b_q = encoded_model_bound(model_bound, n_weights, frac_bits)
    exact = lr * row_term_diameter(clip, b_q) / _divisor(counts, weighting)
    error = fixed_point_error(model_bound, n_weights, frac_bits)
    rounding = 2 * error / (len(counts) if weighting == "equal" else 1)
    largest_output = abs(1 - lr * alpha) * b_q + lr * row_term_bound(clip, b_q) + error
    return exact + rounding + DECODE_SLACK * largest_output


def record_sum_sensitivity(
    config: PrivacyConfig,
    *,
    lr: float,
    alpha: float,
    n_members: int,
    n_weights: int,
    frac_bits: int,
) -> float:
    """Sensitivity of the decrypted *sum* of ``n_members`` Taylor steps (equal weighting).

    ``n_members`` times :func:`record_sensitivity` at the attested floor ``config.min_samples``:
    the PS divides this sum by ``n_members``, which the key holder counts itself.
    """
    if config.level != "record" or config.model_bound is None or config.min_samples is None:
        raise ConfigError("record_sum_sensitivity needs a record-level PrivacyConfig")
    if n_members < 1:
        raise ConfigError(f"n_members must be >= 1, got {n_members}")
    counts = [config.min_samples] * n_members
    per_model = record_sensitivity(
        lr,
        config.clip,
        config.model_bound,
        alpha,
        counts,
        "equal",
        frac_bits=frac_bits,
        n_weights=n_weights,
    )
    return n_members * per_model


def member_sum_sensitivity(clip: float) -> float:
    """Sensitivity of the sum of clipped, grid-rounded updates to zeroing one member's: ``clip``."""
    if not (math.isfinite(clip) and clip > 0):
        raise ConfigError(f"clip must be finite and > 0, got {clip!r}")
    return float(clip)


def _divisor(counts: Sequence[int], weighting: str) -> int:
    return len(counts) * min(counts) if weighting == "equal" else sum(counts)


def _check_record_args(
    lr: float,
    clip: float,
    model_bound: float,
    alpha: float,
    sample_counts: Sequence[int],
    weighting: str,
) -> list[int]:
    for name, value in (("lr", lr), ("clip", clip), ("model_bound", model_bound)):
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(f"{name} must be finite and > 0, got {value!r}")
    if not (math.isfinite(alpha) and alpha >= 0):
        raise ConfigError(f"alpha must be finite and >= 0, got {alpha!r}")
    if weighting not in WEIGHTINGS:
        raise ConfigError(f"unknown weighting {weighting!r}; allowed: {', '.join(WEIGHTINGS)}")
    counts = [int(c) for c in sample_counts]
    if not counts or min(counts) < 2:
        raise ConfigError(
            f"sample_counts must list every member's row count, each >= 2, got {counts!r}"
        )
    return counts


__all__ = [
    "DECODE_SLACK",
    "encoded_model_bound",
    "fixed_point_error",
    "member_sum_sensitivity",
    "record_sensitivity",
    "record_sum_sensitivity",
    "row_term_bound",
    "row_term_diameter",
]
