"""Pure aggregation logic of the PS: check a worker's update against the plan, and average sums.

No network and no key here: :func:`decode_update` turns wire bytes into a validated
:class:`~homolr.crypto.PackedVector` (or raises :class:`~homolr.errors.ProtocolError` saying what is
wrong), and :func:`global_weights` turns the key holder's decrypted sum into the next global model.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

from homolr.crypto import PackedVector, PackingSpec, PublicKey
from homolr.errors import InvalidCiphertextError, ProtocolError
from homolr.protocol.messages import TrainingPlan, Update, Weighting


def packing_spec(plan: TrainingPlan) -> PackingSpec:
    """The slot layout every update of this plan must use."""
    return PackingSpec(value_bits=plan.value_bits, headroom_bits=plan.headroom_bits)


def expected_ciphertexts(plan: TrainingPlan, public_key: PublicKey) -> int:
    """Number of packed ciphertexts that carry one update of ``plan.n_weights`` values."""
    slots = packing_spec(plan).slots_per_ciphertext(public_key.n_bits)
    return -(-plan.n_weights // slots)


def decode_update(
    update: Update, plan: TrainingPlan, public_key: PublicKey, run_id: str
) -> PackedVector:
    """Validate an update's header and ciphertexts against the plan; return the packed vector."""
    h = update.header
    who = f"update from worker '{h.worker_id}' for round {h.round}"
    _expect(h.run_id == run_id, who, "run_id", h.run_id, run_id)
    _expect(h.length == plan.n_weights, who, "length", h.length, plan.n_weights)
    _expect(
        h.frac_bits == plan.update_frac_bits, who, "frac_bits", h.frac_bits, plan.update_frac_bits
    )
    _expect(h.value_bits == plan.value_bits, who, "value_bits", h.value_bits, plan.value_bits)
    _expect(
        h.headroom_bits == plan.headroom_bits,
        who,
        "headroom_bits",
        h.headroom_bits,
        plan.headroom_bits,
    )
    n_ct = expected_ciphertexts(plan, public_key)
    _expect(h.n_ciphertexts == n_ct, who, "n_ciphertexts", h.n_ciphertexts, n_ct)
    size = n_ct * public_key.ciphertext_bytes
    _expect(len(update.payload) == size, who, "payload size", len(update.payload), size)
    try:
        return PackedVector.from_bytes(
            public_key,
            update.payload,
            length=h.length,
            frac_bits=h.frac_bits,
            spec=packing_spec(plan),
        )
    except InvalidCiphertextError as exc:
        raise ProtocolError(f"{who}: {exc}") from exc


def global_weights(
    total: NDArray[np.float64],
    workers: tuple[str, ...],
    weighting: Weighting,
    samples: Mapping[str, int],
) -> NDArray[np.float64]:
    """Next global model from the decrypted sum of the workers' (possibly sample-scaled) models."""
    if weighting == "equal":
        return total / len(workers)
    return total / sum(samples[w] for w in workers)


def _expect(ok: bool, who: str, field: str, got: object, expected: object) -> None:
    if not ok:
        raise ProtocolError(f"{who}: field '{field}' is {got!r}; the plan requires {expected!r}")


__all__ = ["decode_update", "expected_ciphertexts", "global_weights", "packing_spec"]
