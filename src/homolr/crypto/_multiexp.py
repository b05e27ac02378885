"""Simultaneous multi-exponentiation: ``y[i] = prod_j x[j] ** E[i, j] mod n**2`` for all rows.

This is the hot path of encrypted training (a plaintext matrix times an encrypted vector).
A loop of ``powmod`` costs ~25 squarings and ~12 multiplications per matrix entry and shares
nothing. Here the work is shared three ways:

1. **Bit-sliced Horner per row.** ``y[i]`` is built from the top exponent bit down:
   ``acc <- acc**2 * S[i, b]`` where ``S[i, b] = prod_{j : bit b of E[i, j] is 1} x[j]``.
   Squarings are shared by all 31 entries of a row (one per bit instead of one per bit and
   entry).
2. **Subset-product tables per column group.** The columns are cut into groups of ``g``
   bases; for every group the subset products are computed once (one step each, and only
   those some row looks up), so ``S[i, b]`` costs one table lookup and one multiplication
   per group. The tables are shared by every row and every bit; ``g`` is chosen by a cost
   model (``g = 8`` for a 31 x 31 matrix with 25-bit entries).
3. **Signed exponents without inverses per entry.** If some entries are negative, every
   entry of those rows is offset by ``2**B`` (``B`` = bit length of the largest
   ``|E[i, j]|``), making it non-negative; the offset is removed by starting those rows'
   Horner from ``P**-1``, ``P = prod_j x[j]`` (one shared inverse), which the ``B`` squarings
   raise to ``P**-(2**B)``.

**Unit-digit tables.** A unit ``x = a + b*n`` mod n**2 (``a, b < n``, :mod:`homolr.crypto._ring`)
factors as ``x = a * (1 + s*n)`` with ``s = b * a**-1 mod n``, and factors ``(1 + s*n)``
multiply by adding their ``s``. Table entries are kept as ``(C, s)`` with ``C < n``, so
multiplying the Horner accumulator (a plain residue) by an entry is one product of a
2n-digit residue by the one-digit ``C`` and one reduction mod n**2: 2.6 us at 2048 bits and
two Python operations, against 3.7 us and six for a general product of digit pairs. The
entries' ``s`` are summed per row (``tau``, weighted by ``2**bit``) and ``(1 + tau*n)`` is
applied once at the end. Squarings split the accumulator into digits
(``(a + b n)**2 = a**2 + (2ab mod n) n``). Building an entry costs about one ordinary product:
``C`` and ``C**-1 mod n`` are subset products of the ``a`` and of their inverses (one batch
inversion for all bases), and ``s`` of a product is the sum of the factors' ``s`` plus the
carry ``q * C**-1`` (``a1 a2 = C + q n``). Measured at 2048 bits on one core, 31 x 31: ~17 ms
instead of ~20 ms with digit-pair tables. Bases that are not units (never a valid ciphertext)
fall back to one ``powmod`` per entry.

Cost for 31 x 31 entries of 25 bits + sign: ~860 table entries + 31 x 26 x 4 group
multiplications + 31 x 25 squarings ~ 4,900 modular operations, versus ~36,000 for
independent square-and-multiply. Results are the exact residues mod n**2 (not just
ciphertexts of the same plaintexts).

Where the time goes (31 x 31, 2048 bits, one core, ~16.5 ms in all): 806 squarings at
~3.4 us (2.7 ms), 1,612 products by two entries at ~4.9 us (7.9 ms), 861 table entries at
~4 us (3.5 ms); the rest is Python and numpy. The largest single cost is GMP's division of
an 8192-bit product by n**2 (2.8 us). Measured and slower: Montgomery or Barrett reduction
written with gmpy2 operations (3.5 us), one reduction per four entries, fusing the squaring
into the next product, and python-flint's ``fmpz_mod`` (the same GMP kernels: 4.4 us per
4096-bit product, as gmpy2). Estimated from those operation costs and slower: an
accumulator kept below n with its inverse tracked (~3.4 us per entry instead of ~2.5),
groups of 10-11 columns (the tables outgrow the saved products) and comb tables over bit
positions (the same number of products, more entries). Tables are not cached across
calls: in training every call sees fresh ciphertexts.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import gmpy2
import numpy as np
import numpy.typing as npt
from gmpy2 import mpz

from homolr.crypto._ring import Pair, PairRing

__all__ = ["choose_group_size", "multi_products"]

_MAX_GROUP = 12
_CHUNK_BITS = 62  # bits extracted per numpy int64 pass
_FAST_BOUND = 1 << 61  # exponents below this (and their 2**B offsets) fit in int64

_Int64Matrix = npt.NDArray[np.int64]
_Uint8Array = npt.NDArray[np.uint8]

Entry = tuple[mpz, mpz]
"""A table entry ``(C, s)`` standing for ``C * (1 + s*n)`` mod n**2 (``C < n``, any ``s``)."""


def choose_group_size(columns: int, steps: int) -> int:
    """Group size minimising table cost + ``steps`` x groups (``steps`` = total Horner steps)."""
    best_g, best_cost = 1, None
    for g in range(1, min(_MAX_GROUP, max(columns, 1)) + 1):
        sizes = _group_sizes(columns, g)
        cost = sum((1 << s) - s - 1 for s in sizes) + steps * len(sizes)
        if best_cost is None or cost < best_cost:
            best_g, best_cost = g, cost
    return best_g


def _group_sizes(columns: int, g: int) -> list[int]:
    return [min(g, columns - start) for start in range(0, columns, g)]


def _batch_inverse(values: Sequence[mpz], n: mpz) -> list[mpz] | None:
    """``[v**-1 mod n for v in values]`` with one inversion (Montgomery's trick), or None.

    None when some value is not invertible mod n.
    """
    prefix = [mpz(1)]
    for v in values:
        prefix.append(prefix[-1] * v % n)
    try:
        inverse = gmpy2.invert(prefix[-1], n)
    except ZeroDivisionError:
        return None
    result = [mpz(0)] * len(values)
    for k in range(len(values) - 1, -1, -1):
        result[k] = inverse * prefix[k] % n
        inverse = inverse * values[k] % n
    return result


def _needed_entries(used: Sequence[int], size: int) -> bytearray:
    """``needed[idx]`` = 1 if entry ``idx`` is looked up or is built on the way to one."""
    needed = bytearray(1 << size)
    for idx in used:
        needed[idx] = 1
    for idx in range((1 << size) - 1, 0, -1):
        if needed[idx]:
            needed[idx & (idx - 1)] = 1  # entry idx = entry(idx minus its lowest bit) * base
    return needed


def _unit_table(
    los: Sequence[mpz], inverses: Sequence[mpz], shifts: Sequence[mpz], n: mpz, used: Sequence[int]
) -> list[Entry]:
    """Subset products ``table[idx] = prod_{k : bit k of idx} x[k]`` as ``(C, s)`` entries.

    ``x[k] = los[k] * (1 + shifts[k]*n)``; ``inverses[k] = los[k]**-1 mod n``. Only the entries
    in ``used`` (and those they are built from) are computed; the others stay ``(1, 0)``.
    """
    size = len(los)
    needed = _needed_entries(used, size)
    divmod_ = gmpy2.f_divmod
    one, zero = mpz(1), mpz(0)
    lo = [one] * (1 << size)
    inv = [one] * (1 << size)
    s = [zero] * (1 << size)
    for k in range(size):
        lo[1 << k], inv[1 << k], s[1 << k] = los[k], inverses[k], shifts[k]
    for idx, rest, low in _build_order(size):
        if needed[idx]:
            q, lo[idx] = divmod_(lo[rest] * lo[low], n)  # product = lo + q n
            inv[idx] = c_inv = inv[rest] * inv[low] % n
            s[idx] = s[rest] + s[low] + q * c_inv  # lo + q n = lo (1 + q lo**-1 n)
    return list(zip(lo, s, strict=True))


@functools.cache
def _build_order(size: int) -> tuple[tuple[int, int, int], ...]:
    """``(idx, rest, low)`` for every subset of 2+ elements: ``low`` its lowest bit, ``rest`` the others."""
    order = []
    for idx in range(3, 1 << size):
        rest = idx & (idx - 1)
        if rest:
            order.append((idx, rest, idx ^ rest))
    return tuple(order)


def _bit_planes(shifted: Sequence[Sequence[int]] | _Int64Matrix, nbits: int) -> _Uint8Array:
    """``planes[b, i, j]`` = bit ``b`` of the non-negative ``shifted[i][j]``."""
    if isinstance(shifted, np.ndarray):  # every entry < 2**62: one vectorised pass
        shifts = np.arange(nbits, dtype=np.int64)[:, None, None]
        return ((shifted[None, :, :] >> shifts) & 1).astype(np.uint8)
    rows, cols = len(shifted), len(shifted[0])
    planes = np.zeros((nbits, rows, cols), dtype=np.uint8)
    for start in range(0, nbits, _CHUNK_BITS):
        width = min(_CHUNK_BITS, nbits - start)
        mask = (1 << width) - 1
        chunk = np.array(
            [[(int(e) >> start) & mask for e in row] for row in shifted], dtype=np.int64
        )
        shifts = np.arange(width, dtype=np.int64)[:, None, None]
        planes[start : start + width] = ((chunk[None, :, :] >> shifts) & 1).astype(np.uint8)
    return planes


Program = list[list[list[int]]]
"""``program[step][m] = [g, h]``: at Horner step ``step`` (top bit first) multiply by entries
``g`` and ``h`` of the concatenated tables (an all-zero group index points at a ``(1, 0)``)."""


def _programs(
    planes: _Uint8Array, group: int, offsets: Sequence[int]
) -> tuple[_Int64Matrix, list[Program]]:
    """Group indices ``(n_rows, nbits, n_groups)`` and the Horner program of each row.

    Columns are cut into ``len(offsets)`` groups of ``group`` (the last one may be shorter);
    a group's index at a bit is the little-endian number formed by its columns' bits.
    """
    nbits, rows, cols = planes.shape
    groups = len(offsets)
    padded = np.zeros((nbits, rows, groups * group), dtype=np.int64)
    padded[:, :, :cols] = planes[::-1]  # top bit first
    weights = np.int64(1) << np.arange(group, dtype=np.int64)
    index = (padded.reshape(nbits, rows, groups, group) @ weights).transpose(1, 0, 2)
    width = groups + groups % 2  # lookups go in pairs; a padding group points at (1, 0)
    entries = np.zeros((rows, nbits, width), dtype=np.int64)
    entries[:, :, :groups] = index + np.asarray(offsets, dtype=np.int64)
    entries[:, :, groups:] = offsets[-1]  # entry 0 of the last group is (1, 0)
    programs: list[Program] = entries.reshape(rows, nbits, -1, 2).tolist()
    return index, programs


def _shift_signed(
    rows: Sequence[Sequence[int]] | _Int64Matrix, bits: int
) -> tuple[Sequence[Sequence[int]] | _Int64Matrix, list[bool]]:
    """Offset every entry of the rows with a negative entry by ``2**bits``.

    ``bits`` is the bit length of the largest ``|exponent|``. Returns the shifted
    (non-negative) exponents and which rows were shifted.
    """
    if isinstance(rows, np.ndarray):
        negative = np.asarray((rows < 0).any(axis=1), dtype=bool)
        offsets: _Int64Matrix = np.where(negative, 1 << bits, 0).astype(np.int64)
        signed = [bool(v) for v in negative.tolist()]
        return rows + offsets[:, None], signed
    signed_rows = [min(row) < 0 for row in rows]
    shifted = [
        [e + (1 << bits) for e in row] if negative else list(row)
        for row, negative in zip(rows, signed_rows, strict=True)
    ]
    return shifted, signed_rows


def _exponent_rows(
    exponents: Sequence[Sequence[int]] | npt.NDArray[np.integer], cols: int
) -> tuple[Sequence[Sequence[int]] | _Int64Matrix, int]:
    """Validate the shape; return the rows and the bit length of the largest ``|exponent|``.

    The rows are an int64 matrix when every ``|exponent|`` < 2**61, else lists of ints.
    """
    if isinstance(exponents, np.ndarray) and exponents.dtype.kind in "iu":
        if exponents.ndim != 2 or exponents.shape[1] != cols:
            raise ValueError(f"exponents have shape {exponents.shape}, expected (rows, {cols})")
        largest = int(np.abs(exponents).max(initial=0))
        if largest < _FAST_BOUND:
            return exponents.astype(np.int64), largest.bit_length()
        exponents = exponents.tolist()
    rows = [list(map(int, row)) for row in exponents]
    for i, row in enumerate(rows):
        if len(row) != cols:
            raise ValueError(f"exponent row {i} has {len(row)} entries, expected {cols}")
    largest = max((abs(e) for row in rows for e in row), default=0)
    if largest < _FAST_BOUND:
        return np.array(rows, dtype=np.int64).reshape(len(rows), cols), largest.bit_length()
    return rows, largest.bit_length()


def _run(
    program: Program, x: mpz, tau: mpz, los: Sequence[mpz], shifts: Sequence[mpz], n: mpz
) -> mpz:
    """Run a Horner program from ``x (1 + tau n)``; return the result mod n**2.

    The accumulator is ``x (1 + tau n)``: entries multiply ``x`` by their ``C`` and add their
    ``s`` to ``tau``; a squaring squares ``x`` and doubles ``tau``.
    """
    nsquare = n * n
    for step, pairs in enumerate(program):
        if step:  # square: (a + b n)**2 = a**2 + (2 a b mod n) n  (< 2 n**2)
            b, a = divmod(x, n)
            x = a * a + ((a * b << 1) % n) * n
            tau += tau
        for g, h in pairs:  # C_g C_h < n**2: one n**2 x n**2 product, one reduction
            x = x * (los[g] * los[h]) % nsquare
            tau += shifts[g] + shifts[h]
    b, a = divmod(x, n)  # (a + b n)(1 + tau n) = a + (b + a tau) n
    return a + (b + a * (tau % n)) % n * n


def multi_products(
    bases: Sequence[int],
    exponents: Sequence[Sequence[int]] | npt.NDArray[np.integer],
    n: int,
) -> list[mpz]:
    """Compute ``prod_j bases[j] ** exponents[i][j] mod n**2`` for every row ``i``.

    Parameters
    ----------
    bases : sequence of int, length n_cols
        Residues modulo n**2; units (as ciphertexts are) take the fast path. Negative
        exponents need units.
    exponents : sequence of sequences of int or integer ndarray, shape (n_rows, n_cols)
        Signed integer exponents of any size (below 2**61 in magnitude the bit slicing is
        vectorised).
    n : int
        The ring is Z / n**2 (arithmetic on base-n digit pairs, :mod:`homolr.crypto._ring`).

    Returns
    -------
    list of mpz, length n_rows
    """
    ring = PairRing(n)
    xs = [ring.to_pair(b) for b in bases]
    rows, magnitude_bits = _exponent_rows(exponents, len(xs))
    if len(rows) == 0 or not xs:
        return [mpz(1) for _ in range(len(rows))]
    shifted, signed_rows = _shift_signed(rows, magnitude_bits)
    inverses = _batch_inverse([x[0] for x in xs], ring.n)
    if inverses is None:
        if any(signed_rows):
            raise ValueError("negative exponents need bases that are units mod n**2")
        return _naive(xs, rows, ring)
    if magnitude_bits == 0:
        return [mpz(1) for _ in range(len(rows))]
    nbits = magnitude_bits + (1 if any(signed_rows) else 0)
    group = choose_group_size(len(xs), len(rows) * nbits)
    sizes = _group_sizes(len(xs), group)
    offsets = [sum(1 << s for s in sizes[:k]) for k in range(len(sizes))]
    index, programs = _programs(_bit_planes(shifted, nbits), group, offsets)
    nn = ring.n
    table: list[Entry] = []
    start = 0
    for k, size in enumerate(sizes):
        used = [*np.unique(index[:, :, k]).tolist(), (1 << size) - 1]  # full set: for P**-1
        members = range(start, start + size)
        table += _unit_table(
            [xs[j][0] for j in members],
            [inverses[j] for j in members],
            [xs[j][1] * inverses[j] % nn for j in members],
            nn,
            used,
        )
        start += size
    los = [c for c, _ in table]
    shifts = [s for _, s in table]
    start_inverse = _all_bases_inverse(table, sizes, offsets, ring) if any(signed_rows) else None
    results = []
    for program, negative in zip(programs, signed_rows, strict=True):
        if start_inverse is not None and negative:
            results.append(_run(program, *start_inverse, los, shifts, nn))
        else:
            results.append(_run(program, mpz(1), mpz(0), los, shifts, nn))
    return results


def _all_bases_inverse(
    table: Sequence[Entry], sizes: Sequence[int], offsets: Sequence[int], ring: PairRing
) -> tuple[mpz, mpz]:
    """``P**-1 = x * (1 + tau*n)`` for ``P = prod_j x[j]``, as ``(x, tau)``.

    From the full-subset entries ``C_k (1 + s_k n)``: ``P**-1 = (prod_k C_k)**-1 (1 - sum_k s_k n)``.
    """
    product, tau = mpz(1), mpz(0)
    for size, offset in zip(sizes, offsets, strict=True):
        c, s = table[offset + (1 << size) - 1]
        product = product * c % ring.nsquare
        tau -= s
    return gmpy2.invert(product, ring.nsquare), tau  # C_k < n are units


def _naive(
    xs: Sequence[Pair], rows: Sequence[Sequence[int]] | _Int64Matrix, ring: PairRing
) -> list[mpz]:
    """Square-and-multiply per entry: for bases that are not units (non-negative exponents)."""
    nsquare = ring.nsquare
    results = []
    for row in rows:
        acc = mpz(1)
        for x, e in zip(xs, row, strict=True):
            acc = acc * gmpy2.powmod(ring.from_pair(x), int(e), nsquare) % nsquare
        results.append(acc)
    return results
