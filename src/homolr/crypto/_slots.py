"""Plaintext slot packing: several signed fixed-point integers in one Paillier plaintext.

Layout of one packed plaintext holding ``k`` values (``s = slot_bits``)::

    bit:  (k-1)*s ............ 2s ........ s ......... 0
          [ v[k-1] + offset ] ... [ v[1] + offset ] [ v[0] + offset ]

Each slot holds ``v + 2**(value_bits - 1)`` for a signed ``value_bits``-bit value ``v``, i.e.
an unsigned value below ``2**value_bits``; the ``headroom_bits`` above it let up to
``2**headroom_bits`` packed plaintexts be added (homomorphically) without a carry between
slots. After decryption, a slot holding ``S`` for ``C`` contributions decodes to
``S - C * offset``; any ``S > C * (2**value_bits - 1)`` cannot come from ``C`` in-range values
and is reported as an overflow of that slot, as is a plaintext wider than its slots (a carry
out of the top slot or a negative slot).

What is guaranteed: values packed from plaintext (:func:`pack_ints`) are range-checked and
sums are limited to ``max_contributions``, so they can never carry. Values packed
homomorphically are unknown to the packer; a slot sum up to ``2**headroom_bits`` times
beyond its range is still detected (any size in the top slot), but one that is off by a
multiple of ``2**slot_bits`` or more can alias into the next slot: no check on the packed
integer alone can tell that from legitimate neighbouring values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from homolr.errors import EncodingOverflowError

__all__ = ["PackingSpec", "pack_ints", "unpack_ints"]


@dataclass(frozen=True)
class PackingSpec:
    """Slot layout for packing.

    Parameters
    ----------
    value_bits : int
        Width of one signed value (values lie in ``[-2**(value_bits-1), 2**(value_bits-1))``).
    headroom_bits : int
        Extra bits per slot; sums of up to ``2**headroom_bits`` contributions cannot carry.
    """

    value_bits: int = 64
    headroom_bits: int = 10

    def __post_init__(self) -> None:
        for name in ("value_bits", "headroom_bits"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"PackingSpec.{name} must be an int, got {type(value).__name__}")
        if self.value_bits < 2:
            raise ValueError(f"PackingSpec.value_bits must be >= 2, got {self.value_bits}")
        if self.headroom_bits < 0:
            raise ValueError(f"PackingSpec.headroom_bits must be >= 0, got {self.headroom_bits}")

    @property
    def slot_bits(self) -> int:
        """Bits per slot: ``value_bits + headroom_bits``."""
        return self.value_bits + self.headroom_bits

    @property
    def max_contributions(self) -> int:
        """Largest number of packed plaintexts that may be summed: ``2**headroom_bits``."""
        return 1 << self.headroom_bits

    @property
    def offset(self) -> int:
        """Bias added to each signed value: ``2**(value_bits - 1)``."""
        return 1 << (self.value_bits - 1)

    @property
    def value_min(self) -> int:
        """Smallest packable value, ``-2**(value_bits - 1)``."""
        return -self.offset

    @property
    def value_max(self) -> int:
        """Largest packable value, ``2**(value_bits - 1) - 1``."""
        return self.offset - 1

    def slots_per_ciphertext(self, n_bits: int) -> int:
        """Slots that fit below ``2**(n_bits - 1) <= n`` (27 at 2048 bits, 41 at 3072)."""
        slots = (n_bits - 1) // self.slot_bits
        if slots < 1:
            raise ValueError(f"a {self.slot_bits}-bit slot does not fit a {n_bits}-bit modulus")
        return slots

    def ciphertext_count(self, length: int, n_bits: int) -> int:
        """Packed plaintexts needed for ``length`` values."""
        slots = self.slots_per_ciphertext(n_bits)
        return -(-length // slots)

    def offset_plaintext(self, slots: int) -> int:
        """The plaintext with ``offset`` in each of the lowest ``slots`` slots."""
        return sum(self.offset << (self.slot_bits * i) for i in range(slots))


def pack_ints(values: Sequence[int], spec: PackingSpec, n_bits: int) -> list[int]:
    """Pack signed integers into plaintexts, ``slots_per_ciphertext(n_bits)`` per plaintext.

    Parameters
    ----------
    values : sequence of int, length n_values
        Signed integers in ``[spec.value_min, spec.value_max]`` (fixed-point encoded reals).
    spec : PackingSpec
    n_bits : int
        Bit length of the modulus.

    Returns
    -------
    list of int, length ceil(n_values / slots)
        Packed plaintexts, each below ``2**(n_bits - 1)``.

    Raises
    ------
    EncodingOverflowError
        A value is out of range (names the index and the bounds).
    """
    slots = spec.slots_per_ciphertext(n_bits)
    shift, offset = spec.slot_bits, spec.offset
    lo, hi = spec.value_min, spec.value_max
    packed: list[int] = []
    for start in range(0, len(values), slots):
        chunk = values[start : start + slots]
        acc = 0
        for position in range(len(chunk) - 1, -1, -1):
            v = int(chunk[position])
            if not lo <= v <= hi:
                raise EncodingOverflowError(
                    f"value at index {start + position} does not fit a {spec.value_bits}-bit "
                    f"signed slot: {v} is outside [{lo}, {hi}]"
                )
            acc = (acc << shift) | (v + offset)
        packed.append(acc)
    return packed


def unpack_ints(
    plaintexts: Sequence[int],
    length: int,
    spec: PackingSpec,
    contributions: int,
    n_bits: int,
) -> list[int]:
    """Unpack decrypted sums of ``contributions`` packed plaintexts into signed integers.

    Parameters
    ----------
    plaintexts : sequence of int
        Decrypted packed plaintexts, ``ciphertext_count(length, n_bits)`` of them.
    length : int
        Number of values packed.
    spec : PackingSpec
    contributions : int
        How many packed plaintexts were summed (1 .. ``spec.max_contributions``).
    n_bits : int
        Bit length of the modulus.

    Returns
    -------
    list of int, length ``length``
        The per-slot sums of the signed values.

    Raises
    ------
    EncodingOverflowError
        A slot holds a sum no ``contributions`` in-range values can produce, or a plaintext
        is wider than its slots (the message names the slot or plaintext index).
    ValueError
        Wrong number of plaintexts or an invalid ``contributions``.
    """
    if not 1 <= contributions <= spec.max_contributions:
        raise ValueError(
            f"contributions must be in [1, {spec.max_contributions}], got {contributions}"
        )
    slots = spec.slots_per_ciphertext(n_bits)
    expected = spec.ciphertext_count(length, n_bits)
    if len(plaintexts) != expected:
        raise ValueError(
            f"{length} values need {expected} packed plaintexts, got {len(plaintexts)}"
        )
    shift = spec.slot_bits
    mask = (1 << shift) - 1
    slot_max = contributions * ((1 << spec.value_bits) - 1)
    bias = contributions * spec.offset
    out: list[int] = []
    for index, raw in enumerate(plaintexts):
        used = min(slots, length - index * slots)
        x = int(raw)
        if not 0 <= x < 1 << (shift * used):
            raise _overflow(
                index * slots + used - 1,
                f"packed plaintext {index} is wider than its {used} slots of {shift} bits: "
                f"slot {index * slots + used - 1} overflowed or a slot went negative",
            )
        for position in range(used):
            s = (x >> (shift * position)) & mask
            if s > slot_max:
                raise _overflow(
                    index * slots + position,
                    f"slot {index * slots + position} overflowed: it exceeds "
                    f"{contributions} x (2**{spec.value_bits} - 1), the most "
                    f"{contributions} in-range contribution(s) can sum to",
                )
            out.append(s - bias)
    return out


def _overflow(slot: int, message: str) -> EncodingOverflowError:
    """An overflow error naming the slot (also as ``.slot``), never the slot's value: a decrypted
    sum must not leak through an error message."""
    error = EncodingOverflowError(message)
    error.slot = slot  # type: ignore[attr-defined]
    return error
