"""Measured cost model of the encrypted matrix products, and the Gram-or-per-row choice.

Encrypted training computes one affine step ``Enc(w) -> Enc(M w + b)`` per round. With
``M = a I + C X`` for a member's ``m`` rows ``X`` (``m x d``) and ``C`` (``d x m``, e.g.
``-(lr / 4m) X^T``), two forms give the same plaintexts:

* ``"gram"``: one ``d x d`` :func:`~homolr.crypto.matvec` with the precomputed ``M``;
  cost ~ ``d**2``, independent of ``m``.
* ``"per_row"``: :func:`~homolr.crypto.vectors.matvec_factored`, i.e. ``z = X Enc(w)``
  (``m x d``), then ``C z`` (``d x m``), plus ``a Enc(w)``; cost ~ ``2 m d``, cheaper when
  ``m`` is below about ``d / 2``, depending on the exponent sizes of each matrix.

:func:`matvec_cost` predicts one product from the operation counts of the blocked
multi-exponentiation (:mod:`homolr.crypto._multiexp`); :func:`choose_step_path` compares the
two forms. All figures are seconds on one core at 2048 bits, fitted on 2026-12-03; this
machine varies ~2x from day to day, so use the model for ratios, not for deadlines.
"""

from __future__ import annotations

from numbers import Integral
from typing import Literal

import numpy as np
import numpy.typing as npt

from homolr.crypto._multiexp import choose_plan, largest_magnitude, modelled_us
from homolr.crypto.encoding import check_frac_bits, fixed_point_int64, to_fixed_point

__all__ = [
    "StepPath",
    "choose_step_path",
    "elementwise_mul_cost",
    "exponent_bits",
    "matvec_cost",
    "step_costs",
]

StepPath = Literal["gram", "per_row"]

# Per-element costs at 2048 bits (2026-12-03, same session as the matvec fit): a powmod
# mod n**2 costs ~3.8 us per exponent bit plus ~8 us (6-bit: 31 us, 25-bit: 96 us, 50-bit:
# 196 us); a product of two ciphertexts mod n**2 costs 4.7 us.
_POWMOD_BASE_US = 8.0
_POWMOD_PER_BIT_US = 3.8
_MULMOD_US = 4.7


def matvec_cost(rows: int, cols: int, max_abs_exponent_bits: int, *, signed: bool = True) -> float:
    """Predicted seconds of one ``rows x cols`` :func:`~homolr.crypto.matvec` at 2048 bits.

    Parameters
    ----------
    rows, cols : int
        Matrix shape (the encrypted vector has ``cols`` values).
    max_abs_exponent_bits : int
        Bit length of the largest ``|entry|`` of the fixed-point matrix
        (:func:`exponent_bits`).
    signed : bool
        Whether some entry is negative (one more Horner step per row).

    Returns
    -------
    float
        Seconds on one core, from operation counts and per-operation times fitted on
        2026-12-03 on this 2-core AMD EPYC (Zen 4), gmpy2 2.3 / GMP 6.3: a call 107 us, a
        table entry 5.55 us, a table lookup 3.0 us (Python and numpy included), a squaring
        3.78 us. The fit is within 7% of 12 measured shapes (31 x 31 to 1,001 x 101, 8- to
        40-bit exponents); a measured 1,001 x 1,001 call took 8.5-8.7 s, the model says
        8.8 s. Time scales with the machine's speed of the day; ratios hold better.
    """
    for name, value in (("rows", rows), ("cols", cols), ("bits", max_abs_exponent_bits)):
        if isinstance(value, bool) or not isinstance(value, Integral) or value < 0:
            raise ValueError(f"matvec_cost: {name} must be an int >= 0, got {value!r}")
    rows, cols, max_abs_exponent_bits = int(rows), int(cols), int(max_abs_exponent_bits)
    if rows == 0 or cols == 0 or max_abs_exponent_bits == 0:
        return 0.0
    nbits = max_abs_exponent_bits + (1 if signed else 0)
    plan = choose_plan(cols, rows * nbits, rows)
    return modelled_us(cols, rows, nbits, plan) / 1e6


def elementwise_mul_cost(length: int, max_abs_exponent_bits: int) -> float:
    """Predicted seconds of ``EncryptedVector.mul`` by ``length`` plaintexts (one powmod each)."""
    if max_abs_exponent_bits <= 0 or length <= 0:
        return 0.0
    per = _POWMOD_BASE_US + _POWMOD_PER_BIT_US * max_abs_exponent_bits
    return length * per / 1e6


def exponent_bits(matrix: npt.ArrayLike, frac_bits: int) -> int:
    """Bit length of the largest ``|round(entry * 2**frac_bits)|``, as :func:`matvec` encodes.

    Integer matrices are encoded at scale 0 (exactly), as :func:`~homolr.crypto.matvec`
    does; ``frac_bits`` applies to real matrices.
    """
    array = np.asarray(matrix)
    scale = 0 if array.dtype.kind in "biu" else check_frac_bits(frac_bits)
    small = fixed_point_int64(array, scale)
    if small is not None:
        return largest_magnitude(small).bit_length()
    return max((abs(v) for v in to_fixed_point(array.reshape(-1), scale)), default=0).bit_length()


def step_costs(
    rows: int,
    dim: int,
    *,
    gram_bits: int,
    inner_bits: int,
    outer_bits: int,
    diagonal_bits: int = 0,
) -> dict[StepPath, float]:
    """Predicted seconds of both forms of one affine step (see the module docstring).

    Parameters
    ----------
    rows : int
        ``m``, the member's number of rows.
    dim : int
        ``d``, the number of weights.
    gram_bits, inner_bits, outer_bits, diagonal_bits : int
        :func:`exponent_bits` of ``M`` (``d x d``), of ``X`` (``m x d``), of ``C``
        (``d x m``) and of the diagonal ``a`` at the scales each form uses.
    """
    gram = matvec_cost(dim, dim, gram_bits)
    per_row = (
        matvec_cost(rows, dim, inner_bits)
        + matvec_cost(dim, rows, outer_bits)
        + elementwise_mul_cost(dim, diagonal_bits)
        + (dim * _MULMOD_US / 1e6 if diagonal_bits else 0.0)
    )
    return {"gram": gram, "per_row": per_row}


def choose_step_path(
    rows: int,
    dim: int,
    *,
    gram_bits: int,
    inner_bits: int,
    outer_bits: int,
    diagonal_bits: int = 0,
) -> StepPath:
    """``"per_row"`` if :func:`step_costs` predicts it cheaper, else ``"gram"``."""
    costs = step_costs(
        rows,
        dim,
        gram_bits=gram_bits,
        inner_bits=inner_bits,
        outer_bits=outer_bits,
        diagonal_bits=diagonal_bits,
    )
    return "per_row" if costs["per_row"] < costs["gram"] else "gram"
