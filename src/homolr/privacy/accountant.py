"""Privacy accounting for the Gaussian mechanism composed over training rounds.

Every round releases one Gaussian mechanism with the same noise multiplier ``z`` (noise std over
L2 sensitivity), and every protected unit (member or row) takes part in every round: full
participation, full batch, no subsampling, so there is no amplification to account for.

Which accountant
    The adaptive composition of ``T`` Gaussian mechanisms of multiplier ``z`` is *exactly* one
    Gaussian mechanism of multiplier ``z / sqrt(T)`` (Dong, Roth & Su 2022, "Gaussian
    differential privacy", JRSS-B, Corollary 3.3: mu-GDP composes to ``sqrt(T) mu``-GDP, and the
    Gaussian mechanism is exactly ``1/z``-GDP). Its ``(epsilon, delta)`` curve is the analytic
    Gaussian mechanism's (Balle & Wang 2018), which ``dp_accounting.get_epsilon_gaussian``
    computes. This is the tightest possible accounting of this mechanism: dp_accounting's PLD
    accountant composing the ``T`` events agrees with it to 1e-6 and takes 30-350 ms instead of
    1 ms, and its RDP accountant is 7-9 % looser (docs/privacy.md, section 2, has the table; the
    tests check all three).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from homolr.errors import ConfigError, PolicyError
from homolr.privacy.config import PrivacyConfig

#: Search range of :func:`calibrate_noise_multiplier`.
MIN_NOISE_MULTIPLIER = 1e-3
MAX_NOISE_MULTIPLIER = 1e7
#: Relative tolerance of :func:`calibrate_noise_multiplier` on the multiplier.
CALIBRATION_RTOL = 1e-9


def epsilon_spent(noise_multiplier: float, rounds: int, delta: float) -> float:
    """Epsilon of ``rounds`` Gaussian releases of multiplier ``noise_multiplier`` at ``delta``.

    Parameters
    ----------
    noise_multiplier : float
        Noise std divided by the L2 sensitivity of each release, > 0.
    rounds : int
        Number of releases, >= 0 (0 spends nothing).
    delta : float
        ``0 < delta < 1``.

    Returns
    -------
    float
        The smallest epsilon such that the composition is ``(epsilon, delta)``-DP (to 1e-12).
    """
    _check_positive("noise_multiplier", noise_multiplier)
    _check_rounds("rounds", rounds)
    _check_delta(delta)
    if rounds == 0:
        return 0.0
    import dp_accounting  # 0.6 s of scipy: loaded where accounting happens, not by every member

    # dp_accounting takes log1p(-1) = -inf (delta(eps) = 0) on its way; that is not an error.
    with np.errstate(divide="ignore"):
        sigma = noise_multiplier / math.sqrt(rounds)
        return float(dp_accounting.get_epsilon_gaussian(sigma, delta))


def calibrate_noise_multiplier(target_epsilon: float, delta: float, rounds: int) -> float:
    """Smallest noise multiplier whose ``rounds`` releases stay within ``target_epsilon``.

    Bisection on :func:`epsilon_spent` (decreasing in the multiplier) until the bracket is
    narrower than ``CALIBRATION_RTOL`` times its upper end, which is returned: the result ``z``
    satisfies ``epsilon_spent(z, rounds, delta) <= target_epsilon`` and exceeds the exact
    smallest multiplier by at most a relative 1e-9. A target so loose that even
    ``MIN_NOISE_MULTIPLIER`` meets it returns that floor.

    Raises
    ------
    ConfigError
        Invalid arguments, or a target that needs a multiplier above ``MAX_NOISE_MULTIPLIER``.
    """
    _check_positive("target_epsilon", target_epsilon)
    _check_delta(delta)
    _check_rounds("rounds", rounds)
    if rounds == 0:
        raise ConfigError("rounds is 0; there is nothing to calibrate for")

    def spent(z: float) -> float:
        return epsilon_spent(z, rounds, delta)

    if spent(MAX_NOISE_MULTIPLIER) > target_epsilon:
        raise ConfigError(
            f"privacy field 'epsilon' is {target_epsilon!r}: unreachable in {rounds} rounds at "
            f"delta={delta!r} even with noise multiplier {MAX_NOISE_MULTIPLIER:g} "
            f"(which spends {spent(MAX_NOISE_MULTIPLIER):.3g})"
        )
    if spent(MIN_NOISE_MULTIPLIER) <= target_epsilon:
        return MIN_NOISE_MULTIPLIER
    return _bisect(spent, target_epsilon, MIN_NOISE_MULTIPLIER, MAX_NOISE_MULTIPLIER)


def _bisect(spent: Callable[[float], float], target: float, lo: float, hi: float) -> float:
    """Bisect (geometrically, then arithmetically) with ``spent(lo) > target >= spent(hi)``."""
    while hi - lo > CALIBRATION_RTOL * hi:
        mid = math.sqrt(lo * hi) if hi > 4 * lo else 0.5 * (lo + hi)
        if spent(mid) <= target:
            hi = mid
        else:
            lo = mid
    return hi


def rounds_within_budget(
    noise_multiplier: float, target_epsilon: float, delta: float, max_rounds: int
) -> int:
    """How many rounds of multiplier ``noise_multiplier`` fit in ``target_epsilon``.

    Returns
    -------
    int
        The largest ``k <= max_rounds`` with ``epsilon_spent(noise_multiplier, k, delta) <=
        target_epsilon`` (0 when not even one round fits).
    """
    _check_positive("noise_multiplier", noise_multiplier)
    _check_positive("target_epsilon", target_epsilon)
    _check_delta(delta)
    _check_rounds("max_rounds", max_rounds)
    lo, hi = 0, max_rounds
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if epsilon_spent(noise_multiplier, mid, delta) <= target_epsilon:
            lo = mid
        else:
            hi = mid - 1
    return lo


def resolve_noise_multiplier(config: PrivacyConfig, rounds: int) -> float:
    """The multiplier a run uses: the configured one, else calibrated to ``epsilon`` and ``rounds``."""
    if config.noise_multiplier is not None:
        return config.noise_multiplier
    assert config.epsilon is not None  # PrivacyConfig requires one of the two
    return calibrate_noise_multiplier(config.epsilon, config.delta, rounds)


class PrivacyLedger:
    """Releases made so far and the epsilon they spent; refuses a release over the budget.

    The key holder keeps one per run and calls :meth:`spend` before every noisy release (every
    decryption of a sum, not every round: a second decryption in the same round costs again).

    Parameters
    ----------
    noise_multiplier : float
        Multiplier of every release, > 0.
    delta : float
        ``0 < delta < 1``.
    budget : float or None
        Epsilon not to exceed; None records without a limit.
    """

    def __init__(
        self, noise_multiplier: float, delta: float, *, budget: float | None = None
    ) -> None:
        _check_positive("noise_multiplier", noise_multiplier)
        _check_delta(delta)
        if budget is not None:
            _check_positive("budget", budget)
        self._noise_multiplier = noise_multiplier
        self._delta = delta
        self._budget = budget
        self._rounds: list[int] = []

    @classmethod
    def from_config(cls, config: PrivacyConfig, rounds: int) -> PrivacyLedger:
        """The ledger of a run of ``rounds`` planned rounds; ``config.epsilon`` is the budget."""
        z = resolve_noise_multiplier(config, rounds)
        return cls(z, config.delta, budget=config.epsilon)

    @property
    def noise_multiplier(self) -> float:
        return self._noise_multiplier

    @property
    def delta(self) -> float:
        return self._delta

    @property
    def budget(self) -> float | None:
        return self._budget

    @property
    def rounds(self) -> tuple[int, ...]:
        """Round of every release so far, in order (a round may appear twice)."""
        return tuple(self._rounds)

    @property
    def releases(self) -> int:
        return len(self._rounds)

    @property
    def epsilon(self) -> float:
        """Epsilon spent by the releases so far (at :attr:`delta`)."""
        return self.epsilon_after(self.releases)

    def epsilon_after(self, releases: int) -> float:
        """Epsilon spent after ``releases`` releases in total."""
        return epsilon_spent(self._noise_multiplier, releases, self._delta)

    def exhausted_after(self, releases: int) -> bool:
        """Whether, after ``releases`` releases in total, one more would exceed the budget."""
        _check_rounds("releases", releases)
        return self._budget is not None and self.epsilon_after(releases + 1) > self._budget

    def spend(self, round: int) -> float:
        """Record one release for ``round`` and return the epsilon spent so far.

        Raises
        ------
        PolicyError
            The release would exceed the budget; nothing is recorded.
        """
        if self.exhausted_after(self.releases):
            raise PolicyError(
                f"privacy budget exhausted: release {self.releases + 1} (round {round}) would "
                f"spend epsilon {self.epsilon_after(self.releases + 1):.4g} > budget "
                f"{self._budget!r} at delta={self._delta!r}"
            )
        self._rounds.append(round)
        return self.epsilon


def _check_positive(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name} must be a number, got {type(value).__name__}")
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{name} must be finite and > 0, got {value!r}")


def _check_delta(delta: float) -> None:
    if isinstance(delta, bool) or not isinstance(delta, int | float) or not 0 < delta < 1:
        raise ConfigError(f"delta must be a number with 0 < delta < 1, got {delta!r}")


def _check_rounds(name: str, rounds: int) -> None:
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 0:
        raise ConfigError(f"{name} must be an integer >= 0, got {rounds!r}")


__all__ = [
    "CALIBRATION_RTOL",
    "MAX_NOISE_MULTIPLIER",
    "MIN_NOISE_MULTIPLIER",
    "PrivacyLedger",
    "calibrate_noise_multiplier",
    "epsilon_spent",
    "resolve_noise_multiplier",
    "rounds_within_budget",
]
