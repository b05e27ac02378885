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

**Bounded memory.** A big matrix is cut two ways so that what one call holds does not grow
with its size (beyond the int64 exponent matrix the caller passes, 8 bytes per entry):

* *Column blocks*: the subset tables of at most :data:`TABLE_BUDGET_BYTES` are alive at a
  time. Each block runs its own Horner pass over every row and the per-row results of the
  blocks are multiplied together; a block costs one more squaring per row and bit, which the
  cost model (:func:`choose_plan`) weighs against smaller groups.
* *Row chunks*: bit planes, group indices and Horner programs exist for about
  :data:`CHUNK_LOOKUPS` table lookups at a time.

Before this, a 1,001 x 1,001 matrix at 2048 bits held ~500 MB of temporaries in one call
(84 tables of 4,096 entries with unreduced 4,096-bit shifts, and the bit planes and
programs of all rows at once). When the tables need blocking, their shifts are also
reduced mod n (half the memory per entry); a small matrix skips that reduction, which
would cost it ~5%. Results are unchanged: they are exact residues, whatever the blocking.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import gmpy2
import numpy as np
import numpy.typing as npt
from gmpy2 import mpz

from homolr.crypto._ring import Pair, PairRing

__all__ = [
    "CHUNK_LOOKUPS",
    "TABLE_BUDGET_BYTES",
    "Plan",
    "choose_group_size",
    "choose_plan",
    "entry_bytes",
    "largest_magnitude",
    "modelled_us",
    "multi_products",
    "operation_counts",
]

TABLE_BUDGET_BYTES = 24 << 20
"""Subset-table bytes one call keeps alive at a time (one column block)."""

CHUNK_LOOKUPS = 1 << 16
"""Table lookups whose group indices and Horner programs exist at a time (one row chunk)."""

_MAX_GROUP = 12
_CHUNK_BITS = 62  # bits extracted per numpy int64 pass
_FAST_BOUND = 1 << 61  # exponents below this (and their 2**B offsets) fit in int64
_INDEX_CACHE_BYTES = 16 << 20  # group indices kept between the two passes over a block

# Cost of each counted operation in microseconds, fitted on 2026-12-03 (one core of this
# 2-core EPYC, 2048 bits, 12 shapes from 31 x 31 to 1,001 x 101 with 8- to 40-bit
# exponents, best of 3; the fit is within 7% of every measurement). The absolute figures
# drift ~2x from day to day on this machine; their ratios drive the plan.
CALL_US = 107.0
ENTRY_US = 5.55
LOOKUP_US = 3.0
SQUARE_US = 3.78

_Int64Matrix = npt.NDArray[np.int64]
_Rows = Sequence[Sequence[int]] | _Int64Matrix

Entry = tuple[mpz, mpz]
"""A table entry ``(C, s)`` standing for ``C * (1 + s*n)`` mod n**2 (``C < n``, any ``s``)."""


@dataclass(frozen=True)
class Plan:
    """How one call cuts its columns.

    Attributes
    ----------
    group : int
        Columns per subset table (a table has ``2**group`` entries).
    block_groups : int
        Tables per column block (kept alive together).
    """

    group: int
    block_groups: int

    @property
    def block_columns(self) -> int:
        """Columns per block."""
        return self.group * self.block_groups


def entry_bytes(n_bits: int, *, reduced: bool = True) -> int:
    """Approximate memory of one table entry: ``C < n``, ``s`` (below n if ``reduced``, else
    ~n**2) and two list slots."""
    digit = n_bits // 8
    return (digit + 64) + ((digit if reduced else 2 * digit) + 64) + 16


def operation_counts(columns: int, rows: int, nbits: int, plan: Plan) -> tuple[int, int, int]:
    """``(table entries, lookups, squarings)`` of one call under ``plan``.

    Table entries are counted as if every subset were looked up (an upper bound); lookups
    include the padding that makes each step's count even.
    """
    sizes = _group_sizes(columns, plan.group)
    entries = sum((1 << s) - s - 1 for s in sizes)
    blocks = [
        len(sizes[b : b + plan.block_groups]) for b in range(0, len(sizes), plan.block_groups)
    ]
    lookups = rows * nbits * sum(g + g % 2 for g in blocks)
    squarings = rows * max(nbits - 1, 0) * len(blocks)
    return entries, lookups, squarings


def modelled_us(columns: int, rows: int, nbits: int, plan: Plan) -> float:
    """Predicted time of one call under ``plan``, in microseconds (2048 bits, one core)."""
    entries, lookups, squarings = operation_counts(columns, rows, nbits, plan)
    return CALL_US + ENTRY_US * entries + LOOKUP_US * lookups + SQUARE_US * squarings


def choose_plan(
    columns: int,
    steps: int,
    rows: int = 1,
    *,
    n_bits: int = 2048,
    table_budget_bytes: int = TABLE_BUDGET_BYTES,
) -> Plan:
    """Group size and block width minimising the modelled cost within the table budget.

    Parameters
    ----------
    columns : int
        Number of bases.
    steps : int
        Horner steps of one block (rows x exponent bits).
    rows : int
        Number of rows (``steps / rows`` is the number of exponent bits).
    n_bits : int
        Modulus size (sets the bytes per table entry).
    table_budget_bytes : int
        Largest table memory of one block; at least one table is always allowed.
    """
    per_entry = entry_bytes(n_bits)
    rows = max(rows, 1)
    nbits = -(-steps // rows)
    best: tuple[float, Plan] | None = None
    for g in range(1, min(_MAX_GROUP, max(columns, 1)) + 1):
        groups = -(-max(columns, 1) // g)
        fit = max(1, table_budget_bytes // (per_entry << g))
        plan = Plan(g, min(fit, groups))
        cost = modelled_us(columns, rows, nbits, plan)
        if best is None or cost < best[0]:
            best = (cost, plan)
    assert best is not None
    return best[1]


def choose_group_size(columns: int, steps: int) -> int:
    """Group size minimising table cost + ``steps`` x groups (``steps`` = total Horner steps)."""
    return choose_plan(columns, steps).group


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
    los: Sequence[mpz],
    inverses: Sequence[mpz],
    shifts: Sequence[mpz],
    n: mpz,
    used: Sequence[int],
    *,
    reduce: bool = True,
) -> tuple[list[mpz], list[mpz]]:
    """Subset products ``prod_{k : bit k of idx} x[k] = C[idx] (1 + s[idx] n)`` as ``(C, s)``.

    ``x[k] = los[k] * (1 + shifts[k]*n)``; ``inverses[k] = los[k]**-1 mod n``. Only the entries
    in ``used`` (and those they are built from) are computed; the others stay ``(1, 0)``.
    With ``reduce`` the ``s`` are kept below n (half the memory, one more reduction per
    entry); without, they grow to ~2 x n_bits bits (only ``s mod n`` matters).
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
            if reduce:
                s[idx] %= n
    return lo, s


@functools.cache
def _build_order(size: int) -> tuple[tuple[int, int, int], ...]:
    """``(idx, rest, low)`` for every subset of 2+ elements: ``low`` its lowest bit, ``rest`` the others."""
    order = []
    for idx in range(3, 1 << size):
        rest = idx & (idx - 1)
        if rest:
            order.append((idx, rest, idx ^ rest))
    return tuple(order)


def _window_indices(values: _Int64Matrix, low_bit: int, count: int, group: int) -> _Int64Matrix:
    """Group indices of bits ``low_bit .. low_bit + count - 1``, top bit first.

    ``values`` has shape (rows, groups * group) with non-negative entries; the result has
    shape (rows, count, groups) and ``result[i, t, k]`` is the little-endian number formed by
    bit ``low_bit + count - 1 - t`` of the columns of group ``k`` in row ``i``.
    """
    rows, width = values.shape
    by_member = values.reshape(rows, width // group, group).transpose(2, 0, 1)
    shifts = np.arange(low_bit + count - 1, low_bit - 1, -1, dtype=np.int64)[None, :, None]
    index = np.zeros((rows, count, width // group), dtype=np.int64)
    for member in range(group):
        index |= ((by_member[member][:, None, :] >> shifts) & 1) << member
    return index


def _padded(values: _Int64Matrix, width: int) -> _Int64Matrix:
    if values.shape[1] == width:
        return values
    out = np.zeros((values.shape[0], width), dtype=np.int64)
    out[:, : values.shape[1]] = values
    return out


def _group_indices(shifted: _Rows, nbits: int, group: int, groups: int) -> _Int64Matrix:
    """Group indices ``(rows, nbits, groups)`` of non-negative exponents, top bit first."""
    width = groups * group
    if isinstance(shifted, np.ndarray):  # every entry < 2**62: one vectorised pass
        return _window_indices(_padded(shifted, width), 0, nbits, group)
    parts = []
    for start in range(0, nbits, _CHUNK_BITS):
        count = min(_CHUNK_BITS, nbits - start)
        mask = (1 << count) - 1
        window = np.array([[(e >> start) & mask for e in row] for row in shifted], dtype=np.int64)
        parts.append(_window_indices(_padded(window, width), 0, count, group))
    return np.concatenate(parts[::-1], axis=1)


def _shift_signed(rows: _Rows, bits: int) -> tuple[_Rows, list[bool]]:
    """Offset every entry of the rows with a negative entry by ``2**bits``.

    ``bits`` is the bit length of the largest ``|exponent|``. Returns the shifted
    (non-negative) exponents and which rows were shifted.
    """
    if isinstance(rows, np.ndarray):
        negative = np.asarray((rows < 0).any(axis=1), dtype=bool)
        offsets: _Int64Matrix = np.where(negative, 1 << bits, 0).astype(np.int64)
        signed = [bool(v) for v in negative.tolist()]
        return rows + offsets[:, None], signed
    signed_rows = [min(row, default=0) < 0 for row in rows]
    shifted = [
        [e + (1 << bits) for e in row] if negative else list(row)
        for row, negative in zip(rows, signed_rows, strict=True)
    ]
    return shifted, signed_rows


def largest_magnitude(values: npt.NDArray[np.integer]) -> int:
    """``max |v|`` without a temporary the size of ``values``."""
    if values.size == 0:
        return 0
    return max(int(values.max()), -int(values.min()))


def _exponent_rows(
    exponents: Sequence[Sequence[int]] | npt.NDArray[np.integer], cols: int
) -> tuple[_Rows, int]:
    """Validate the shape; return the rows and the bit length of the largest ``|exponent|``.

    The rows are an int64 matrix when every ``|exponent|`` < 2**61, else lists of ints.
    """
    if isinstance(exponents, np.ndarray) and exponents.dtype.kind in "iu":
        if exponents.ndim != 2 or exponents.shape[1] != cols:
            raise ValueError(f"exponents have shape {exponents.shape}, expected (rows, {cols})")
        largest = largest_magnitude(exponents)
        if largest < _FAST_BOUND:
            return exponents.astype(np.int64, copy=False), largest.bit_length()
        exponents = exponents.tolist()
    rows = [list(map(int, row)) for row in exponents]
    for i, row in enumerate(rows):
        if len(row) != cols:
            raise ValueError(f"exponent row {i} has {len(row)} entries, expected {cols}")
    largest = max((abs(e) for row in rows for e in row), default=0)
    if largest < _FAST_BOUND:
        return np.array(rows, dtype=np.int64).reshape(len(rows), cols), largest.bit_length()
    return rows, largest.bit_length()


def _has_negative(rows: _Rows) -> bool:
    if isinstance(rows, np.ndarray):
        return bool(rows.size) and int(rows.min()) < 0
    return any(min(row, default=0) < 0 for row in rows)


def _run(
    program: Sequence[Sequence[Sequence[int]]],
    x: mpz,
    tau: mpz,
    los: Sequence[mpz],
    shifts: Sequence[mpz],
    n: mpz,
) -> mpz:
    """Run a Horner program from ``x (1 + tau n)``; return the result mod n**2.

    ``program[step]`` lists pairs ``[g, h]`` of table entries to multiply in at that step
    (top bit first). The accumulator is ``x (1 + tau n)``: entries multiply ``x`` by their
    ``C`` and add their ``s`` to ``tau``; a squaring squares ``x`` and doubles ``tau``.
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


@dataclass
class _Block:
    """The subset tables of one column block, concatenated."""

    start: int  # first column
    sizes: list[int]  # columns per group
    offsets: list[int]  # first entry of each group in ``los`` / ``shifts``
    los: list[mpz]
    shifts: list[mpz]
    start_inverse: tuple[mpz, mpz]  # P**-1 = x (1 + tau n) for P = product of the block's bases


class _Engine:
    """One multi-product call: bases in unit-digit form, exponent rows, blocking plan."""

    def __init__(
        self,
        ring: PairRing,
        xs: Sequence[Pair],
        inverses: Sequence[mpz],
        rows: _Rows,
        magnitude_bits: int,
        plan: Plan,
        chunk_lookups: int,
        table_budget_bytes: int,
    ) -> None:
        self.ring, self.xs, self.inverses = ring, xs, inverses
        self.rows, self.bits, self.plan = rows, magnitude_bits, plan
        self.nbits = magnitude_bits + (1 if _has_negative(rows) else 0)
        self.chunk_lookups = chunk_lookups
        # Reduce the table shifts only where memory binds: for one block of tables that
        # fits the budget unreduced, skipping the reduction is ~5% faster (31 x 31).
        n_bits = int(ring.n.bit_length())
        groups = _group_sizes(len(xs), plan.group)
        unreduced = sum(1 << s for s in groups) * entry_bytes(n_bits, reduced=False)
        self.reduce = plan.block_groups < len(groups) or unreduced > table_budget_bytes

    def chunk_rows(self, groups: int) -> int:
        return max(1, self.chunk_lookups // max(1, self.nbits * groups))

    def indices(
        self, start: int, groups: int
    ) -> Iterator[tuple[int, list[bool], npt.NDArray[np.integer]]]:
        """``(first row, signed rows, group indices)`` for each row chunk of a block."""
        step = self.chunk_rows(groups)
        width = groups * self.plan.group
        for first in range(0, len(self.rows), step):
            last = min(first + step, len(self.rows))
            if isinstance(self.rows, np.ndarray):
                part: _Rows = self.rows[first:last, start : start + width]
            else:
                part = [row[start : start + width] for row in self.rows[first:last]]
            shifted, signed = _shift_signed(part, self.bits)
            yield first, signed, _group_indices(shifted, self.nbits, self.plan.group, groups)

    def block(self, start: int, sizes: list[int], used: npt.NDArray[np.bool_]) -> _Block:
        """Build the tables of the groups ``sizes`` starting at column ``start``."""
        nn = self.ring.n
        offsets = [sum(1 << s for s in sizes[:k]) for k in range(len(sizes))]
        los: list[mpz] = []
        shifts: list[mpz] = []
        column = start
        for k, size in enumerate(sizes):
            members = range(column, column + size)
            lookups = [*np.flatnonzero(used[k, : 1 << size]).tolist(), (1 << size) - 1]
            lo, s = _unit_table(
                [self.xs[j][0] for j in members],
                [self.inverses[j] for j in members],
                [self.xs[j][1] * self.inverses[j] % nn for j in members],
                nn,
                lookups,
                reduce=self.reduce,
            )
            los += lo
            shifts += s
            column += size
        block = _Block(start, sizes, offsets, los, shifts, (mpz(1), mpz(0)))
        block.start_inverse = _all_bases_inverse(block, self.ring)
        return block

    def run(self) -> list[mpz]:
        group, per_block = self.plan.group, self.plan.block_groups
        all_sizes = _group_sizes(len(self.xs), group)
        nsquare = self.ring.nsquare
        results: list[mpz] | None = None
        for b in range(0, len(all_sizes), per_block):
            sizes = all_sizes[b : b + per_block]
            partial = self._run_block(b * group, sizes)
            if results is None:
                results = partial
            else:
                results = [r * p % nsquare for r, p in zip(results, partial, strict=True)]
        assert results is not None
        return results

    def _run_block(self, start: int, sizes: list[int]) -> list[mpz]:
        groups = len(sizes)
        used = np.zeros((groups, 1 << self.plan.group), dtype=np.bool_)
        bases = np.arange(groups, dtype=np.int64) << self.plan.group
        keep = len(self.rows) * self.nbits * groups * 2 <= _INDEX_CACHE_BYTES
        cache: list[tuple[int, list[bool], npt.NDArray[np.integer]]] = []
        for first, signed, index in self.indices(start, groups):
            used.reshape(-1)[(index + bases).reshape(-1)] = True
            if keep:  # else the second pass computes the indices again
                cache.append((first, signed, index.astype(np.uint16)))
        block = self.block(start, sizes, used)
        chunks = cache if keep else self.indices(start, groups)
        results: list[mpz] = []
        for _, signed, index in chunks:
            results += self._run_chunk(block, index, signed)
        return results

    def _run_chunk(
        self, block: _Block, index: npt.NDArray[np.integer], signed: Sequence[bool]
    ) -> list[mpz]:
        """Horner programs of one row chunk over one block, run."""
        rows, nbits, groups = index.shape
        width = groups + groups % 2  # lookups go in pairs; a padding one points at (1, 0)
        entries = np.empty((rows, nbits, width), dtype=np.int64)
        entries[:, :, :groups] = index
        entries[:, :, :groups] += np.asarray(block.offsets, dtype=np.int64)
        entries[:, :, groups:] = block.offsets[-1]  # entry 0 of the last group is (1, 0)
        programs: list[list[list[list[int]]]] = entries.reshape(rows, nbits, -1, 2).tolist()
        nn = self.ring.n
        one, zero = mpz(1), mpz(0)
        out = []
        for program, negative in zip(programs, signed, strict=True):
            x, tau = block.start_inverse if negative else (one, zero)
            out.append(_run(program, x, tau, block.los, block.shifts, nn))
        return out


def multi_products(
    bases: Sequence[int],
    exponents: Sequence[Sequence[int]] | npt.NDArray[np.integer],
    n: int,
    *,
    table_budget_bytes: int = TABLE_BUDGET_BYTES,
    chunk_lookups: int = CHUNK_LOOKUPS,
) -> list[mpz]:
    """Compute ``prod_j bases[j] ** exponents[i][j] mod n**2`` for every row ``i``.

    Parameters
    ----------
    bases : sequence of int, length n_cols
        Residues modulo n**2; units (as ciphertexts are) take the fast path. Negative
        exponents need units.
    exponents : sequence of sequences of int or integer ndarray, shape (n_rows, n_cols)
        Signed integer exponents of any size (below 2**61 in magnitude the bit slicing is
        vectorised; an int64 matrix is used without a copy).
    n : int
        The ring is Z / n**2 (arithmetic on base-n digit pairs, :mod:`homolr.crypto._ring`).
    table_budget_bytes : int
        Subset-table memory alive at a time (column blocks; see the module notes).
    chunk_lookups : int
        Table lookups prepared at a time (row chunks).

    Returns
    -------
    list of mpz, length n_rows
        Exact residues: the same whatever the budgets.
    """
    if table_budget_bytes < 1 or chunk_lookups < 1:
        raise ValueError("table_budget_bytes and chunk_lookups must be positive")
    ring = PairRing(n)
    xs = [ring.to_pair(b) for b in bases]
    rows, magnitude_bits = _exponent_rows(exponents, len(xs))
    if len(rows) == 0 or not xs:
        return [mpz(1) for _ in range(len(rows))]
    inverses = _batch_inverse([x[0] for x in xs], ring.n)
    if inverses is None:
        if _has_negative(rows):
            raise ValueError("negative exponents need bases that are units mod n**2")
        return _naive(xs, rows, ring)
    if magnitude_bits == 0:
        return [mpz(1) for _ in range(len(rows))]
    nbits = magnitude_bits + (1 if _has_negative(rows) else 0)
    plan = choose_plan(
        len(xs),
        len(rows) * nbits,
        len(rows),
        n_bits=int(ring.n.bit_length()),
        table_budget_bytes=table_budget_bytes,
    )
    engine = _Engine(
        ring, xs, inverses, rows, magnitude_bits, plan, chunk_lookups, table_budget_bytes
    )
    return engine.run()


def _all_bases_inverse(block: _Block, ring: PairRing) -> tuple[mpz, mpz]:
    """``P**-1 = x * (1 + tau*n)`` for ``P`` the product of the block's bases, as ``(x, tau)``.

    From the full-subset entries ``C_k (1 + s_k n)``: ``P**-1 = (prod_k C_k)**-1 (1 - sum_k s_k n)``.
    """
    product, tau = mpz(1), mpz(0)
    for size, offset in zip(block.sizes, block.offsets, strict=True):
        full = offset + (1 << size) - 1
        product = product * block.los[full] % ring.nsquare
        tau -= block.shifts[full]
    return gmpy2.invert(product, ring.nsquare), tau  # C_k < n are units


def _naive(xs: Sequence[Pair], rows: _Rows, ring: PairRing) -> list[mpz]:
    """Square-and-multiply per entry: for bases that are not units (non-negative exponents)."""
    nsquare = ring.nsquare
    results = []
    for row in rows:
        acc = mpz(1)
        for x, e in zip(xs, row, strict=True):
            acc = acc * gmpy2.powmod(ring.from_pair(x), int(e), nsquare) % nsquare
        results.append(acc)
    return results
