"""The Gaussian mechanism the key holder applies to a decrypted sum, inside the enclave.

The key holder decrypts only the sum of the members' contributions; :meth:`DpMechanism.release`
is applied to that sum before anything leaves the enclave, so the operator can neither skip the
noise nor see the sum without it. Order of operations on the sum ``S`` of ``n`` members::

    S + N(0, (z Delta)**2 I)       the Gaussian mechanism (Delta: L2 sensitivity of S)
    -> project onto ||.|| <= n B   record level only: post-processing, keeps the model in the ball
    -> snap to 2**-frac_bits       post-processing, hides the sampler's low-order bits

Everything after the noise is a function of the noisy sum alone, so the released value is a
post-processing of a Gaussian mechanism with sensitivity ``Delta`` and the accounting of
:mod:`homolr.privacy.accountant` applies. The PS then divides by ``n`` as it always does
(:func:`homolr.server.aggregation.global_weights` with equal weighting). Pure: no key, no I/O
besides the injected byte source.

Wiring (for whoever calls this from ``KeyHolder``): build one mechanism per decryption with
:meth:`DpMechanism.for_member_round` or :meth:`DpMechanism.for_record_round`, call
``ledger.spend(round)`` first (it refuses over budget), and apply :func:`admit_model` to every
model the key holder encrypts for the members: the sensitivity of the next round assumes
``||w|| <= model_bound`` and the operator chooses what it asks the key holder to encrypt.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from homolr.errors import ConfigError
from homolr.privacy.clipping import project
from homolr.privacy.config import PrivacyConfig
from homolr.privacy.noise import ByteSource, gaussian_noise, snap_to_grid
from homolr.privacy.sensitivity import member_sum_sensitivity, record_sum_sensitivity

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class DpMechanism:
    """Gaussian noise on one decrypted sum, calibrated to its L2 sensitivity.

    Attributes
    ----------
    config : PrivacyConfig
    sensitivity : float
        L2 sensitivity of the decrypted sum (not of the average), > 0.
    noise_multiplier : float
        Noise std over ``sensitivity``, > 0.
    frac_bits : int
        Grid of the released sum: multiples of ``2**-frac_bits`` (the plan's model scale).
    n_members : int
        Number of members in the sum; record level projects the sum onto the ball of radius
        ``n_members * config.model_bound`` (i.e. the average onto ``model_bound``).
    source : callable int -> bytes
        Noise bytes; ``os.urandom`` except in tests and simulations.
    """

    config: PrivacyConfig
    sensitivity: float
    noise_multiplier: float
    frac_bits: int
    n_members: int
    source: ByteSource = field(default=os.urandom, compare=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("sensitivity", "noise_multiplier"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ConfigError(f"{name} must be finite and > 0, got {value!r}")
        if not 0 <= self.frac_bits <= 52:
            raise ConfigError(f"frac_bits must be in [0, 52], got {self.frac_bits!r}")
        if self.n_members < 1:
            raise ConfigError(f"n_members must be >= 1, got {self.n_members!r}")

    @classmethod
    def for_member_round(
        cls,
        config: PrivacyConfig,
        noise_multiplier: float,
        *,
        n_members: int,
        frac_bits: int,
        source: ByteSource = os.urandom,
    ) -> DpMechanism:
        """Member level: the sum of ``n_members`` clipped updates, sensitivity ``clip``.

        Raises
        ------
        ConfigError
            Not a member-level config, or ``n_members * clip * 2**frac_bits >= 2**53`` (the
            float64 decoding of the sum would no longer be exact).
        """
        if config.level != "member":
            raise ConfigError(f"for_member_round needs level 'member', got {config.level!r}")
        if n_members * config.clip * 2.0**frac_bits >= 2.0**53:
            raise ConfigError(
                f"{n_members} updates of norm {config.clip} at 2**-{frac_bits} overflow float64's "
                "exact integers; lower clip or frac_bits"
            )
        sensitivity = member_sum_sensitivity(config.clip)
        return cls(config, sensitivity, noise_multiplier, frac_bits, n_members, source)

    @classmethod
    def for_record_round(
        cls,
        config: PrivacyConfig,
        noise_multiplier: float,
        *,
        lr: float,
        alpha: float,
        n_members: int,
        n_weights: int,
        frac_bits: int,
        source: ByteSource = os.urandom,
    ) -> DpMechanism:
        """Record level: the sum of ``n_members`` Taylor steps at learning rate ``lr``.

        ``frac_bits`` is the plan's model scale (the members' steps are at twice that scale).
        """
        sensitivity = record_sum_sensitivity(
            config,
            lr=lr,
            alpha=alpha,
            n_members=n_members,
            n_weights=n_weights,
            frac_bits=frac_bits,
        )
        return cls(config, sensitivity, noise_multiplier, frac_bits, n_members, source)

    @property
    def sigma(self) -> float:
        """Noise std added to every coordinate of the sum."""
        return self.noise_multiplier * self.sensitivity

    @property
    def radius(self) -> float | None:
        """Record level: L2 radius the released sum is projected onto (``n_members B``)."""
        bound = self.config.model_bound
        return None if self.config.level != "record" or bound is None else self.n_members * bound

    def release(self, total: npt.ArrayLike) -> FloatArray:
        """Noise, (record level) project, and snap the decrypted sum.

        Parameters
        ----------
        total : array-like of shape (n_weights,)
            The decrypted float64 sum of the ``n_members`` contributions.

        Returns
        -------
        ndarray of shape (n_weights,)
            On the ``2**-frac_bits`` grid; at record level of norm ``<= radius`` (projection,
            then rounding toward zero, which cannot increase the norm).
        """
        s = np.asarray(total, dtype=np.float64)
        if s.ndim != 1 or not np.all(np.isfinite(s)):
            raise ConfigError(f"the decrypted sum must be a finite 1-D array, got shape {s.shape}")
        noisy = s + gaussian_noise(s.shape, self.sigma, source=self.source)
        radius = self.radius
        if radius is None:
            return snap_to_grid(noisy, self.frac_bits)
        return snap_to_grid(project(noisy, radius), self.frac_bits, toward_zero=True)


def admit_model(config: PrivacyConfig, w: npt.ArrayLike, frac_bits: int) -> FloatArray:
    """The model the key holder may encrypt for the members' next round.

    Record level: projected onto the ball of radius ``model_bound`` and rounded toward zero onto
    the ``2**-frac_bits`` grid, so its encoding is exact and ``||w|| <= model_bound`` holds for
    whatever model the operator hands back. Member level: unchanged (the members clip their own
    updates, whatever the model).
    """
    v = np.asarray(w, dtype=np.float64)
    if config.level != "record" or config.model_bound is None:
        return np.array(v, dtype=np.float64, copy=True)
    return snap_to_grid(project(v, config.model_bound), frac_bits, toward_zero=True)


__all__ = ["DpMechanism", "admit_model"]
