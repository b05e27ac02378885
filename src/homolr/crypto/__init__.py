"""homolr.crypto: the Paillier engine (keys, fixed-point encoding, vectors, packing, pool).

Data flow: reals -> :mod:`~homolr.crypto.encoding` (signed fixed point) ->
:class:`EncryptedVector` (homomorphic +, plaintext *, :func:`matvec`) -> :func:`pack`
(many values per ciphertext) -> wire bytes -> key holder sums :class:`PackedVector` objects
and calls :meth:`PrivateKey.decrypt_packed`. Big batches run on a fork-free, pickle-free
process pool (:mod:`~homolr.crypto.parallel`); a key holder that receives updates in chunks
folds them into running sums (:class:`ChunkedSum`) and decrypts each chunk as it completes
(:meth:`PrivateKey.decrypt_async`). :func:`matvec_cost` / :func:`choose_step_path` pick
between :func:`matvec` on a Gram matrix and the per-row :func:`matvec_factored`.
"""

from homolr.crypto.cost import choose_step_path, exponent_bits, matvec_cost, step_costs
from homolr.crypto.encoding import (
    DEFAULT_FRAC_BITS,
    decode,
    decode_signed_ints,
    encode,
    encode_scalar,
)
from homolr.crypto.keys import PrivateKey, PublicKey, generate_keypair
from homolr.crypto.packing import (
    PackedVector,
    PackingSpec,
    encrypt_packed,
    pack,
    pack_ints,
    packed_chunk_values,
    unpack_ints,
)
from homolr.crypto.streaming import ChunkedSum, chunk_bounds, fold_into
from homolr.crypto.vectors import EncryptedVector, matvec, matvec_factored

__all__ = [
    "DEFAULT_FRAC_BITS",
    "ChunkedSum",
    "EncryptedVector",
    "PackedVector",
    "PackingSpec",
    "PrivateKey",
    "PublicKey",
    "choose_step_path",
    "chunk_bounds",
    "decode",
    "decode_signed_ints",
    "encode",
    "encode_scalar",
    "encrypt_packed",
    "exponent_bits",
    "fold_into",
    "generate_keypair",
    "matvec",
    "matvec_cost",
    "matvec_factored",
    "pack",
    "pack_ints",
    "packed_chunk_values",
    "step_costs",
    "unpack_ints",
]
