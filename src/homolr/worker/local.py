"""A member's local computation for one round, in either mode. Pure: no network, no files.

Encrypted-model mode
    The member holds only ``Enc(w)``. The reference step with the Taylor sigmoid
    ``p = 0.5 + 0.25 Xw`` is affine in ``w``::

        w_new = w - lr_t ((0.25 XᵀX/m + αI) w + Xᵀ(0.5 − y)/m) = M_t w + b_t

    so the member precomputes its plaintext sufficient statistics once (``XᵀX``, ``Xᵀ(0.5 − y)``,
    ``m``) and per round evaluates ``Enc(s·w_new) = (s·M_t) · Enc(w) + s·b_t`` homomorphically (one
    plaintext-matrix × encrypted-vector product, O(d²) whatever the number of rows), ``s`` being its
    weight share. The result is packed homomorphically for the upload (scale ``2·frac_bits``).

Secure-aggregation mode
    The member receives the plaintext global model ``w``, trains it locally (exact sigmoid,
    mini-batches, ``local_epochs``), then encodes, packs and encrypts ``s·(w_local − w)`` (scale
    ``frac_bits``); values outside the plan's slot range are refused here, before anything is sent.

Moments round (``plan.standardize``)
    The member encrypts its row count, per-feature sums and sums of squares, pre-scaled by the
    plan's feature bounds (:attr:`TrainingPlan.moments_plan`); only their sum over the members is
    ever decrypted.

The schedule index is the model header's ``step`` (a retried round uses the same step, and the
mini-batch shuffle is seeded by it, so a retried step reproduces the same contribution).
"""

from __future__ import annotations

import hashlib

import numpy as np
from numpy.typing import NDArray

from homolr.crypto import (
    EncryptedVector,
    PackedVector,
    PackingSpec,
    PublicKey,
    encrypt_packed,
    matvec,
    pack,
)
from homolr.errors import ConfigError, ProtocolError
from homolr.learning import (
    Dataset,
    add_bias,
    learning_rate,
    linear_update,
    sgd_epochs,
    sufficient_stats,
)
from homolr.privacy import clip_rows, clip_update
from homolr.protocol.messages import GlobalModel, TrainingPlan

FloatArray = NDArray[np.float64]


def packing_spec(plan: TrainingPlan) -> PackingSpec:
    return PackingSpec(value_bits=plan.value_bits, headroom_bits=plan.headroom_bits)


def _check_header(model: GlobalModel, plan: TrainingPlan, *, encrypted: bool) -> None:
    h = model.header
    if h.encrypted != encrypted:
        kind = "encrypted" if encrypted else "plaintext"
        raise ProtocolError(
            f"round {h.round}: the PS sent a {'plaintext' if encrypted else 'encrypted'} "
            f"model; the plan's mode needs a {kind} one"
        )
    if h.length != plan.n_weights:
        raise ProtocolError(
            f"round {h.round}: model has {h.length} weights; the plan has {plan.n_weights}"
        )
    if not 0.0 < h.weight <= 1.0 or not np.isfinite(h.weight):
        raise ProtocolError(f"round {h.round}: weight share {h.weight!r} is not in (0, 1]")
    if h.step >= plan.iterations:
        raise ProtocolError(
            f"round {h.round}: step {h.step} is beyond the plan's {plan.iterations} iterations"
        )


class EncryptedLocalStep:
    """Encrypted-model mode: ``Enc(w) -> pack(s·M_t · Enc(w) + s·b_t)``."""

    def __init__(self, dataset: Dataset, plan: TrainingPlan, public_key: PublicKey) -> None:
        self._plan = plan
        self._public_key = public_key
        X = dataset.X
        if plan.privacy_level == "record":
            if dataset.n_samples < plan.dp_min_samples:
                raise ConfigError(
                    f"{dataset.source} has {dataset.n_samples} rows; the federation's privacy "
                    f"plan needs at least min_samples = {plan.dp_min_samples} per member (one "
                    "row's influence is bounded by lr / min_samples)"
                )
            X = clip_rows(X, plan.dp_clip)  # ||[1, x]|| <= clip: the bound the noise assumes
        self._stats = sufficient_stats(add_bias(X), dataset.y)

    def update(self, model: GlobalModel) -> PackedVector:
        plan = self._plan
        _check_header(model, plan, encrypted=True)
        if model.header.frac_bits != plan.frac_bits:
            raise ProtocolError(
                f"round {model.header.round}: model scale is {model.header.frac_bits} fractional "
                f"bits; the plan says {plan.frac_bits}"
            )
        enc_w = EncryptedVector.from_bytes(
            self._public_key, model.payload, frac_bits=plan.frac_bits
        )
        if len(enc_w) != plan.n_weights:
            raise ProtocolError(
                f"round {model.header.round}: {len(enc_w)} ciphertexts for {plan.n_weights} weights"
            )
        lr = learning_rate(plan.schedule, plan.learning_rate, model.header.step)
        M, b = linear_update(self._stats, lr, plan.alpha)
        share = model.header.weight
        if share != 1.0:
            M, b = share * M, share * b
        new = matvec(M, enc_w, frac_bits=plan.frac_bits) + b
        return pack(new, packing_spec(plan))


class AggregateLocalStep:
    """Secure-aggregation mode: plaintext local SGD, then an encrypted packed delta."""

    def __init__(
        self, dataset: Dataset, plan: TrainingPlan, public_key: PublicKey, worker_id: str
    ) -> None:
        self._plan = plan
        self._public_key = public_key
        self._Xb = add_bias(dataset.X)
        self._y = dataset.y
        self._seed = int.from_bytes(hashlib.sha256(worker_id.encode()).digest()[:8], "big")

    def global_weights(self, model: GlobalModel) -> FloatArray:
        plan = self._plan
        _check_header(model, plan, encrypted=False)
        if len(model.payload) != 8 * plan.n_weights:
            raise ProtocolError(
                f"round {model.header.round}: model payload has {len(model.payload)} "
                f"bytes; expected {8 * plan.n_weights}"
            )
        w = np.frombuffer(model.payload, dtype="<f8").astype(np.float64)
        if not np.all(np.isfinite(w)):
            raise ProtocolError(f"round {model.header.round}: model has non-finite weights")
        return w

    def local_weights(self, model: GlobalModel) -> FloatArray:
        """The member's locally trained model for this step (plaintext), shape ``(n_weights,)``."""
        plan = self._plan
        w = self.global_weights(model)
        rng = np.random.default_rng([plan.seed, model.header.step, self._seed])
        lr = learning_rate(plan.schedule, plan.learning_rate, model.header.step)
        return sgd_epochs(
            w,
            self._Xb,
            self._y,
            lr=lr,
            alpha=plan.alpha,
            batch_size=plan.batch_size,
            epochs=plan.local_epochs,
            rng=rng,
        )

    def update(self, model: GlobalModel) -> PackedVector:
        delta = self.local_weights(model) - self.global_weights(model)
        if self._plan.privacy_level == "member":
            # clipped here, by the member: protects it whatever the others do
            delta, _ = clip_update(delta, self._plan.dp_clip, frac_bits=self._plan.frac_bits)
        return encrypt_packed(
            self._public_key,
            model.header.weight * delta,
            frac_bits=self._plan.frac_bits,
            spec=packing_spec(self._plan),
        )


def moments_update(dataset: Dataset, plan: TrainingPlan, public_key: PublicKey) -> PackedVector:
    """The moments round's upload: ``[m, Σx_j, Σx_j²]`` (pre-scaled by the plan's feature bounds)
    encrypted and packed; rows beyond the bounds are refused here, before anything is sent."""
    moments = plan.moments_plan
    values = moments.member_vector(dataset.X, source=dataset.source)
    return encrypt_packed(public_key, values, frac_bits=moments.frac_bits, spec=packing_spec(plan))


LocalStep = EncryptedLocalStep | AggregateLocalStep


def make_local_step(
    dataset: Dataset, plan: TrainingPlan, public_key: PublicKey, worker_id: str
) -> LocalStep:
    if plan.mode == "encrypted":
        return EncryptedLocalStep(dataset, plan, public_key)
    return AggregateLocalStep(dataset, plan, public_key, worker_id)


__all__ = [
    "AggregateLocalStep",
    "EncryptedLocalStep",
    "LocalStep",
    "make_local_step",
    "moments_update",
    "packing_spec",
]
