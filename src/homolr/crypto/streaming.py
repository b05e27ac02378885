"""Streaming homomorphic sums: fold each arriving chunk of an update into a running sum.

The key holder receives every member's update as a sequence of chunks (contiguous ranges
of its ciphertexts). Instead of holding every update until the round closes, it keeps one
running product per chunk, folds a chunk in as soon as it arrives, and can decrypt a chunk
once every required member is in it (e.g. with
:meth:`~homolr.crypto.keys.PrivateKey.decrypt_async`) while later chunks are still on the
wire. Memory is one update's worth of ciphertexts, whatever the number of members.

Because multiplication mod n**2 is commutative and associative, the chunk sums are the
same residues, bit for bit, as the batch sum ``PackedVector + PackedVector + ...``, in any
arrival order. Everything here is pure (no I/O, no threads): a caller that folds from
several threads serialises its calls.

Duplicate and unexpected folds raise :class:`~homolr.errors.RoundError`, as the server
does for a late or duplicate submission.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from gmpy2 import mpz

from homolr.crypto._public import PublicKey, require_public_key
from homolr.errors import RoundError

__all__ = ["ChunkedSum", "chunk_bounds", "fold_into"]


def fold_into(acc: list[mpz] | None, ciphertexts: Sequence[int], nsquare: int) -> list[mpz]:
    """Elementwise homomorphic sum: ``acc[i] <- acc[i] * ciphertexts[i] mod nsquare``.

    Parameters
    ----------
    acc : list of mpz or None
        The running sums, updated in place; None starts from ``ciphertexts`` (copied).
    ciphertexts : sequence of int
        Ciphertexts already validated (e.g. by
        :meth:`~homolr.crypto.PublicKey.validate_ciphertexts`), same length as ``acc``.
    nsquare : int
        ``n**2`` of the key.

    Returns
    -------
    list of mpz
        ``acc`` itself (or the new list).
    """
    if acc is None:
        return [mpz(c) for c in ciphertexts]
    if len(acc) != len(ciphertexts):
        raise ValueError(f"cannot fold {len(ciphertexts)} ciphertexts into {len(acc)} sums")
    modulus = mpz(nsquare)
    for index, c in enumerate(ciphertexts):
        acc[index] = acc[index] * c % modulus
    return acc


def chunk_bounds(total: int, chunk: int) -> list[tuple[int, int]]:
    """``[start, stop)`` ranges of ``chunk`` ciphertexts covering ``total`` (the last shorter)."""
    if total < 0 or chunk < 1:
        raise ValueError(f"need total >= 0 and chunk >= 1, got total={total}, chunk={chunk}")
    return [(start, min(start + chunk, total)) for start in range(0, total, chunk)]


class ChunkedSum:
    """Running homomorphic sums of one update's chunks, with the members folded into each.

    Parameters
    ----------
    public_key : PublicKey
    bounds : sequence of (start, stop)
        The chunks: contiguous, non-empty ciphertext index ranges starting at 0
        (:func:`chunk_bounds`).
    required : iterable of str, optional
        The members whose contributions make a chunk complete; can be set later with
        :meth:`require` (e.g. once a k-of-n policy has picked them).

    Notes
    -----
    A chunk is *complete* when the members folded into it are exactly the required set.
    :meth:`take` hands its sum out once and forgets it; later folds into it are refused.
    For packed updates, the size of the required set is the ``contributions`` count to
    unpack a chunk with (at most ``spec.max_contributions``;
    :func:`~homolr.crypto.packed_chunk_values` gives the chunk's value indices).
    """

    __slots__ = ("_members", "_required", "_sums", "_taken", "bounds", "public_key")

    def __init__(
        self,
        public_key: PublicKey,
        bounds: Sequence[tuple[int, int]],
        required: Iterable[str] | None = None,
    ) -> None:
        self.public_key = require_public_key(public_key)
        expected_start = 0
        for index, (start, stop) in enumerate(bounds):
            if start != expected_start or stop <= start:
                raise ValueError(
                    f"chunk {index} is [{start}, {stop}); chunks must be non-empty and "
                    f"contiguous from 0 (expected a start of {expected_start})"
                )
            expected_start = stop
        self.bounds: tuple[tuple[int, int], ...] = tuple((int(a), int(b)) for a, b in bounds)
        self._sums: list[list[mpz] | None] = [None] * len(self.bounds)
        self._members: list[set[str]] = [set() for _ in self.bounds]
        self._taken: list[bool] = [False] * len(self.bounds)
        self._required: frozenset[str] | None = None
        if required is not None:
            self.require(required)

    def __len__(self) -> int:
        return len(self.bounds)

    def __repr__(self) -> str:
        done = sum(self._taken)
        return f"ChunkedSum(chunks={len(self)}, taken={done}, required={self._required})"

    @property
    def total(self) -> int:
        """Number of ciphertexts in one update."""
        return self.bounds[-1][1] if self.bounds else 0

    @property
    def required(self) -> frozenset[str] | None:
        """The required member set, if set."""
        return self._required

    def members(self, chunk: int) -> frozenset[str]:
        """Members folded into ``chunk`` so far."""
        return frozenset(self._members[self._check_chunk(chunk)])

    def _check_chunk(self, chunk: int) -> int:
        if isinstance(chunk, bool) or not isinstance(chunk, int) or not 0 <= chunk < len(self):
            raise ValueError(f"chunk must be an int in [0, {len(self)}), got {chunk!r}")
        return chunk

    def _is_complete(self, chunk: int) -> bool:
        return (
            not self._taken[chunk]
            and self._required is not None
            and self._members[chunk] == self._required
        )

    def complete(self) -> list[int]:
        """Chunks complete for the required set and not yet taken."""
        return [chunk for chunk in range(len(self)) if self._is_complete(chunk)]

    def require(self, members: Iterable[str]) -> list[int]:
        """Set the required member set; return the chunks complete now.

        Raises
        ------
        RoundError
            A chunk already holds a member outside the set (its sum can no longer match).
        ValueError
            The set is empty.
        """
        required = frozenset(members)
        if not required:
            raise ValueError("the required member set must not be empty")
        for chunk, folded in enumerate(self._members):
            extra = folded - required
            if extra:
                raise RoundError(
                    f"chunk {chunk} already holds {sorted(extra)}, outside the required set"
                )
        self._required = required
        return self.complete()

    def fold(
        self, member: str, chunk: int, ciphertexts: Sequence[int], *, validated: bool = False
    ) -> list[int]:
        """Fold ``member``'s ciphertexts of ``chunk`` into its running sum.

        Parameters
        ----------
        member : str
            Who sent them.
        chunk : int
            Index into :attr:`bounds`.
        ciphertexts : sequence of int
            ``stop - start`` ciphertexts, validated here unless ``validated`` (e.g. parsed
            by :meth:`~homolr.crypto.PublicKey.ciphertexts_from_bytes`).

        Returns
        -------
        list of int
            ``[chunk]`` if this fold completed it, else ``[]``.

        Raises
        ------
        RoundError
            ``member`` was already folded into this chunk, is not in the required set, or
            the chunk was already taken.
        ValueError
            Wrong chunk index or number of ciphertexts.
        InvalidCiphertextError
            A ciphertext is invalid (nothing is folded).
        """
        chunk = self._check_chunk(chunk)
        if member in self._members[chunk]:
            raise RoundError(f"member {member!r} was already folded into chunk {chunk}")
        if self._taken[chunk]:
            raise RoundError(f"chunk {chunk} was already taken; member {member!r} is too late")
        if self._required is not None and member not in self._required:
            raise RoundError(f"member {member!r} is not in the required set of this sum")
        start, stop = self.bounds[chunk]
        if len(ciphertexts) != stop - start:
            raise ValueError(
                f"chunk {chunk} holds {stop - start} ciphertexts, member {member!r} "
                f"sent {len(ciphertexts)}"
            )
        values = (
            list(ciphertexts) if validated else self.public_key.validate_ciphertexts(ciphertexts)
        )
        self._sums[chunk] = fold_into(self._sums[chunk], values, self.public_key.nsquare)
        self._members[chunk].add(member)
        return [chunk] if self._is_complete(chunk) else []

    def take(self, chunk: int) -> list[mpz]:
        """Hand out the sum of a complete chunk once (it is then forgotten).

        Raises
        ------
        RoundError
            The chunk is not complete for the required set, or was already taken.
        """
        chunk = self._check_chunk(chunk)
        if self._taken[chunk]:
            raise RoundError(f"chunk {chunk} was already taken")
        if not self._is_complete(chunk):
            missing = sorted((self._required or frozenset()) - self._members[chunk])
            raise RoundError(
                f"chunk {chunk} is not complete: missing {missing}"
                if self._required is not None
                else f"chunk {chunk} is not complete: no required member set yet"
            )
        total = self._sums[chunk]
        assert total is not None  # complete implies at least one member
        self._sums[chunk] = None
        self._taken[chunk] = True
        return total
