"""The enclave component that holds the Paillier private key.

It is the only code with access to the private key, and it enforces the aggregation policy where the
key is: it decrypts **only the homomorphic sum** of single-worker contributions from at least
``min_workers`` distinct workers, never one worker's ciphertext and never a sum of fewer. The sum is
formed here, from the contributions themselves, so a caller cannot hand it a lone ciphertext
dressed up as a sum. It also re-encrypts the model the PS sends back (fresh randomness, scale reset).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import reduce

import numpy as np
from numpy.typing import NDArray

from homolr.crypto import EncryptedVector, PackedVector, PrivateKey, PublicKey
from homolr.errors import PolicyError

MIN_WORKERS_FLOOR = 2


@dataclass(frozen=True)
class AggregateSum:
    """The decrypted sum of one round and the workers it came from.

    ``total`` has shape ``(n_weights,)``.
    """

    total: NDArray[np.float64]
    workers: tuple[str, ...]


class KeyHolder:
    """Decrypts sums of at least ``min_workers`` workers' contributions; nothing else."""

    def __init__(self, private_key: PrivateKey, *, min_workers: int) -> None:
        if min_workers < MIN_WORKERS_FLOOR:
            raise PolicyError(
                f"min_workers is {min_workers}; the key holder needs >= {MIN_WORKERS_FLOOR} so that "
                "no single worker's contribution is ever decrypted"
            )
        self._private_key = private_key
        self._min_workers = min_workers

    @property
    def public_key(self) -> PublicKey:
        return self._private_key.public_key

    @property
    def min_workers(self) -> int:
        return self._min_workers

    def decrypt_sum(self, contributions: Mapping[str, PackedVector]) -> AggregateSum:
        """Sum the contributions homomorphically and decrypt the sum.

        Raises
        ------
        PolicyError
            Fewer than ``min_workers`` distinct workers, or a contribution that is itself a sum.
        """
        workers = tuple(sorted(contributions))
        if len(workers) < self._min_workers:
            raise PolicyError(
                f"refusing to decrypt a sum of {len(workers)} worker(s) ({', '.join(workers) or 'none'});"
                f" the policy needs at least {self._min_workers}"
            )
        for worker_id in workers:
            packed = contributions[worker_id]
            if packed.contributions != 1:
                raise PolicyError(
                    f"contribution of worker '{worker_id}' claims to be a sum of "
                    f"{packed.contributions}; only single contributions are accepted"
                )
            if packed.public_key != self.public_key:
                raise PolicyError(
                    f"contribution of worker '{worker_id}' is under another public key"
                )
        total = reduce(lambda a, b: a + b, (contributions[w] for w in workers))
        return AggregateSum(self._private_key.decrypt_packed(total), workers)

    def encrypt_model(self, weights: NDArray[np.float64], frac_bits: int) -> EncryptedVector:
        """Encrypt the global model with fresh randomness at scale ``frac_bits``."""
        return EncryptedVector.encrypt(self.public_key, weights, frac_bits=frac_bits)

    def prepare_encryptions(self, count: int) -> None:
        """Precompute the randomness of the next ``count`` encryptions (idle time: workers compute)."""
        missing = count - self.public_key.precomputed_masks
        if missing > 0:
            self.public_key.precompute_masks(missing)


__all__ = ["MIN_WORKERS_FLOOR", "AggregateSum", "KeyHolder"]
