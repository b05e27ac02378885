"""A worker's local step for one round, in either mode. Pure: no network, no files.

Encrypted-model mode
    The worker holds only ``Enc(w)``. The reference step with the Taylor sigmoid
    ``p = 0.5 + 0.25 Xw`` is affine in ``w``::

        w_new = w - lr_t ((0.25 XᵀX/m + αI) w + Xᵀ(0.5 − y)/m) = M_t w + b_t

    so the worker precomputes its plaintext sufficient statistics once (``XᵀX``, ``Xᵀ(0.5 − y)``,
    ``m``) and per round evaluates ``Enc(w_new) = M_t · Enc(w) + b_t`` homomorphically: one
    plaintext-matrix × encrypted-vector product, O(d²) whatever the number of rows. The result is
    packed homomorphically (a few ciphertexts instead of one per weight) for the upload.

Secure-aggregation mode
    The worker receives the plaintext global model, trains it locally (exact sigmoid, mini-batches,
    ``local_epochs``), then encodes, packs and encrypts its model under the PS's key.

With sample weighting the worker multiplies its model by its sample count ``m`` (an exact integer
scaling); the PS divides the decrypted sum by the total.
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
from homolr.errors import ProtocolError
from homolr.learning import (
    Dataset,
    add_bias,
    learning_rate,
    linear_update,
    sgd_epochs,
    sufficient_stats,
)
from homolr.protocol.messages import GlobalModel, TrainingPlan


def _spec(plan: TrainingPlan) -> PackingSpec:
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


class EncryptedLocalStep:
    """Encrypted-model mode: ``Enc(w) -> pack(M_t · Enc(w) + b_t)``."""

    def __init__(self, dataset: Dataset, plan: TrainingPlan, public_key: PublicKey) -> None:
        self._plan = plan
        self._public_key = public_key
        self._stats = sufficient_stats(add_bias(dataset.X), dataset.y)
        self._n_samples = dataset.n_samples

    def update(self, model: GlobalModel) -> PackedVector:
        plan = self._plan
        _check_header(model, plan, encrypted=True)
        if model.header.frac_bits != plan.frac_bits:
            raise ProtocolError(
                f"round {model.header.round}: model scale is {model.header.frac_bits} fractional bits; "
                f"the plan says {plan.frac_bits}"
            )
        enc_w = EncryptedVector.from_bytes(
            self._public_key, model.payload, frac_bits=plan.frac_bits
        )
        if len(enc_w) != plan.n_weights:
            raise ProtocolError(
                f"round {model.header.round}: {len(enc_w)} ciphertexts for {plan.n_weights} weights"
            )
        lr = learning_rate(plan.schedule, plan.learning_rate, model.header.round)
        M, b = linear_update(self._stats, lr, plan.alpha)
        new = matvec(M, enc_w, frac_bits=plan.frac_bits) + b
        if plan.weighting == "samples":
            new = new * self._n_samples
        return pack(new, _spec(plan))


class AggregateLocalStep:
    """Secure-aggregation mode: plaintext local SGD, then an encrypted packed upload."""

    def __init__(
        self, dataset: Dataset, plan: TrainingPlan, public_key: PublicKey, worker_id: str
    ) -> None:
        self._plan = plan
        self._public_key = public_key
        self._Xb = add_bias(dataset.X)
        self._y = dataset.y
        self._n_samples = dataset.n_samples
        self._seed = int.from_bytes(hashlib.sha256(worker_id.encode()).digest()[:8], "big")

    def local_weights(self, model: GlobalModel) -> NDArray[np.float64]:
        """The worker's locally trained model for this round (plaintext), shape ``(n_weights,)``."""
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
        rng = np.random.default_rng([plan.seed, model.header.round, self._seed])
        lr = learning_rate(plan.schedule, plan.learning_rate, model.header.round)
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
        w = self.local_weights(model)
        if self._plan.weighting == "samples":
            w = w * self._n_samples
        return encrypt_packed(
            self._public_key, w, frac_bits=self._plan.frac_bits, spec=_spec(self._plan)
        )


LocalStep = EncryptedLocalStep | AggregateLocalStep


def make_local_step(
    dataset: Dataset, plan: TrainingPlan, public_key: PublicKey, worker_id: str
) -> LocalStep:
    if plan.mode == "encrypted":
        return EncryptedLocalStep(dataset, plan, public_key)
    return AggregateLocalStep(dataset, plan, public_key, worker_id)


__all__ = ["AggregateLocalStep", "EncryptedLocalStep", "LocalStep", "make_local_step"]
