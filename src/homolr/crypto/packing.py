"""Packed ciphertexts: many fixed-point values per Paillier plaintext.

With the default :class:`PackingSpec` (64-bit signed values, 10 bits of headroom, 74-bit
slots) one 2048-bit plaintext holds 27 values and a sum of up to 1,024 packed contributions
decodes without a carry between slots; the slot layout is documented in
:mod:`homolr.crypto._slots`.

Two ways in:

* :func:`pack` packs an *encrypted* vector homomorphically (Horner:
  ``c <- c**(2**slot_bits) * c_i``, then the per-slot offsets are added as one plaintext),
  so a worker ships its encrypted model in ``ceil(n / 27)`` ciphertexts and the key holder
  decrypts 27x fewer. Cost: ``slot_bits`` squarings per value (~0.25 ms at 2048 bits).
* :func:`encrypt_packed` packs plaintext values first, then encrypts (secure aggregation).

The key holder sums :class:`PackedVector` objects (``+``; contributions add up, at most
``spec.max_contributions``), decrypts and unpacks with
:meth:`homolr.crypto.keys.PrivateKey.decrypt_packed`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy.typing as npt
from gmpy2 import mpz

from homolr.crypto._public import PublicKey, check_same_key, require_public_key
from homolr.crypto._ring import PairRing
from homolr.crypto._slots import PackingSpec, pack_ints, unpack_ints
from homolr.crypto.encoding import DEFAULT_FRAC_BITS, check_frac_bits, to_fixed_point
from homolr.crypto.vectors import EncryptedVector
from homolr.errors import EncodingOverflowError

__all__ = [
    "PackedVector",
    "PackingSpec",
    "encrypt_packed",
    "pack",
    "pack_ints",
    "packed_chunk_values",
    "unpack_ints",
]


class PackedVector:
    """Ciphertexts of packed plaintexts: ``length`` values at scale ``frac_bits``.

    Parameters
    ----------
    public_key : PublicKey
    ciphertexts : sequence of int
        ``spec.ciphertext_count(length, n_bits)`` ciphertexts, validated on construction.
    length : int
        Number of packed values.
    frac_bits : int
        Fixed-point scale of the values.
    spec : PackingSpec
    contributions : int
        How many packed vectors were summed into this one (1 .. ``spec.max_contributions``).
    """

    __slots__ = ("ciphertexts", "contributions", "frac_bits", "length", "public_key", "spec")

    public_key: PublicKey
    ciphertexts: tuple[mpz, ...]
    length: int
    frac_bits: int
    spec: PackingSpec
    contributions: int

    def __init__(
        self,
        public_key: PublicKey,
        ciphertexts: Sequence[int],
        length: int,
        frac_bits: int,
        spec: PackingSpec,
        contributions: int = 1,
    ) -> None:
        require_public_key(public_key)
        validated = public_key.validate_ciphertexts(ciphertexts)
        _init(self, public_key, validated, length, frac_bits, spec, contributions)

    @classmethod
    def _trusted(
        cls,
        public_key: PublicKey,
        ciphertexts: Sequence[mpz],
        length: int,
        frac_bits: int,
        spec: PackingSpec,
        contributions: int = 1,
    ) -> PackedVector:
        packed = cls.__new__(cls)
        _init(packed, public_key, ciphertexts, length, frac_bits, spec, contributions)
        return packed

    def __len__(self) -> int:
        return self.length

    def __repr__(self) -> str:
        return (
            f"PackedVector(length={self.length}, ciphertexts={len(self.ciphertexts)}, "
            f"frac_bits={self.frac_bits}, contributions={self.contributions}, spec={self.spec})"
        )

    def __add__(self, other: object) -> PackedVector:
        """Homomorphic sum of two packed vectors (contributions add up)."""
        if not isinstance(other, PackedVector):
            return NotImplemented
        check_same_key(self.public_key, other.public_key)
        for field in ("length", "frac_bits", "spec"):
            if getattr(self, field) != getattr(other, field):
                raise ValueError(
                    f"cannot add packed vectors with different {field}: "
                    f"{getattr(self, field)} and {getattr(other, field)}"
                )
        total = self.contributions + other.contributions
        if total > self.spec.max_contributions:
            raise EncodingOverflowError(
                f"sum of {total} contributions exceeds the {self.spec.max_contributions} "
                f"the {self.spec.headroom_bits} headroom bits allow"
            )
        nsquare = self.public_key.nsquare
        summed = [a * b % nsquare for a, b in zip(self.ciphertexts, other.ciphertexts, strict=True)]
        return PackedVector._trusted(
            self.public_key, summed, self.length, self.frac_bits, self.spec, total
        )

    def to_bytes(self) -> bytes:
        """Ciphertexts as fixed-width big-endian fields (metadata travels separately)."""
        return self.public_key.ciphertexts_to_bytes(self.ciphertexts)

    @classmethod
    def from_bytes(
        cls,
        public_key: PublicKey,
        data: bytes,
        length: int,
        frac_bits: int,
        spec: PackingSpec,
        contributions: int = 1,
    ) -> PackedVector:
        """Parse :meth:`to_bytes` output; every ciphertext is validated."""
        require_public_key(public_key)
        ciphertexts = public_key.ciphertexts_from_bytes(data)
        return cls._trusted(public_key, ciphertexts, length, frac_bits, spec, contributions)


def _init(
    packed: PackedVector,
    public_key: PublicKey,
    ciphertexts: Sequence[mpz],
    length: int,
    frac_bits: int,
    spec: PackingSpec,
    contributions: int,
) -> None:
    if not isinstance(spec, PackingSpec):
        raise TypeError(f"spec must be a PackingSpec, got {type(spec).__name__}")
    check_frac_bits(frac_bits)
    for name, value, low in (("length", length, 0), ("contributions", contributions, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    if contributions > spec.max_contributions:
        raise ValueError(
            f"contributions must be <= {spec.max_contributions} for this spec, got {contributions}"
        )
    expected = spec.ciphertext_count(length, public_key.n_bits)
    if len(ciphertexts) != expected:
        raise ValueError(
            f"{length} values need {expected} packed ciphertexts at {public_key.n_bits} bits, "
            f"got {len(ciphertexts)}"
        )
    packed.public_key = public_key
    packed.ciphertexts = tuple(ciphertexts)
    packed.length = length
    packed.frac_bits = frac_bits
    packed.spec = spec
    packed.contributions = contributions


def _horner(ciphertexts: Sequence[mpz], shift: int, offset: int, ring: PairRing) -> mpz:
    """Ciphertext of ``offset + sum_i m_i * 2**(shift*i)`` for ``c_i = Enc(m_i)``.

    Horner from the top: ``c <- c**(2**shift) * c_i``, then one plaintext addition.
    """
    acc = ring.to_pair(ciphertexts[-1])
    for c in reversed(ciphertexts[:-1]):
        acc = ring.mul(ring.sqr_times(acc, shift), ring.to_pair(c))
    return ring.from_pair(ring.mul_one_plus(acc, offset))


def pack(
    ev: EncryptedVector, spec: PackingSpec | None = None, *, rerandomize: bool = True
) -> PackedVector:
    """Pack an encrypted vector homomorphically, ``spec.slots_per_ciphertext`` values each.

    Parameters
    ----------
    ev : EncryptedVector, length n_values
        Its plaintexts must be signed values in ``[spec.value_min, spec.value_max]`` at scale
        ``ev.frac_bits``. One outside (by up to ``2**spec.headroom_bits`` times the range,
        or by any amount in the last slot) makes :meth:`PrivateKey.decrypt_packed` raise
        :class:`~homolr.errors.EncodingOverflowError`; it cannot be checked here, and far
        larger values can alias into the next slot (see :mod:`homolr.crypto._slots`).
    spec : PackingSpec, optional
        Defaults to ``PackingSpec()`` (64-bit values, 10 headroom bits).
    rerandomize : bool
        Multiply each packed ciphertext by a fresh mask (default) so the output reveals
        nothing about the inputs' randomness to whoever encrypted them.

    Returns
    -------
    PackedVector
        ``ceil(n_values / slots)`` ciphertexts, one contribution.
    """
    if not isinstance(ev, EncryptedVector):
        raise TypeError(f"pack expects an EncryptedVector, got {type(ev).__name__}")
    spec = PackingSpec() if spec is None else spec
    key = ev.public_key
    slots = spec.slots_per_ciphertext(key.n_bits)
    packed: list[mpz] = []
    for start in range(0, len(ev), slots):
        chunk = ev.ciphertexts[start : start + slots]
        offsets = spec.offset_plaintext(len(chunk))
        packed.append(_horner(chunk, spec.slot_bits, offsets, key.ring))
    if rerandomize:
        packed = key.rerandomize_many(packed)
    return PackedVector._trusted(key, packed, len(ev), ev.frac_bits, spec)


def encrypt_packed(
    public_key: PublicKey,
    values: npt.ArrayLike,
    frac_bits: int = DEFAULT_FRAC_BITS,
    spec: PackingSpec | None = None,
) -> PackedVector:
    """Encode ``values`` (shape (n_values,)) at ``frac_bits``, pack, then encrypt.

    Raises
    ------
    EncodingOverflowError
        A value does not fit a ``spec.value_bits``-bit signed slot at this scale.
    """
    require_public_key(public_key)
    spec = PackingSpec() if spec is None else spec
    signed = to_fixed_point(values, frac_bits)
    plaintexts = pack_ints(signed, spec, public_key.n_bits)
    ciphertexts = public_key.raw_encrypt_many(plaintexts)
    return PackedVector._trusted(public_key, ciphertexts, len(signed), frac_bits, spec)


def packed_chunk_values(
    start: int, stop: int, length: int, spec: PackingSpec, n_bits: int
) -> range:
    """Indices of the values held by packed ciphertexts ``[start, stop)`` of a vector.

    For streaming decryption (:mod:`homolr.crypto.streaming`): the decrypted plaintexts of
    that chunk unpack with ``unpack_ints(plaintexts, len(r), spec, contributions, n_bits)``
    into the values ``r`` of the whole vector (slot numbers in its errors count from the
    chunk's first value).

    Raises
    ------
    ValueError
        ``[start, stop)`` is empty or not within the vector's ciphertexts.
    """
    count = spec.ciphertext_count(length, n_bits)
    if not 0 <= start < stop <= count:
        raise ValueError(f"ciphertexts [{start}, {stop}) are not within the vector's {count}")
    slots = spec.slots_per_ciphertext(n_bits)
    return range(start * slots, min(stop * slots, length))
