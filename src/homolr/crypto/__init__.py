"""homolr.crypto: the Paillier engine (keys, fixed-point encoding, vectors, packing, pool).

Data flow: reals -> :mod:`~homolr.crypto.encoding` (signed fixed point) ->
:class:`EncryptedVector` (homomorphic +, plaintext *, :func:`matvec`) -> :func:`pack`
(many values per ciphertext) -> wire bytes -> key holder sums :class:`PackedVector` objects
and calls :meth:`PrivateKey.decrypt_packed`. Big batches run on a fork-free, pickle-free
process pool (:mod:`~homolr.crypto.parallel`).
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
    unpack_ints,
)
from homolr.crypto.vectors import EncryptedVector, matvec, matvec_factored

__all__ = [
    "DEFAULT_FRAC_BITS",
    "EncryptedVector",
    "PackedVector",
    "PackingSpec",
    "PrivateKey",
    "PublicKey",
    "choose_step_path",
    "decode",
    "decode_signed_ints",
    "encode",
    "encode_scalar",
    "encrypt_packed",
    "exponent_bits",
    "generate_keypair",
    "matvec",
    "matvec_cost",
    "matvec_factored",
    "pack",
    "pack_ints",
    "step_costs",
    "unpack_ints",
]
