"""Plaintext replay of the reference solution's training (Intel CCZoo ``phe_homo_lr``).

Iteration convention (it reproduces the published log digit for digit)::

    w = init_weight * ones(d)                       # d = n_features + 1, bias first
    for t in range(iters):                          # t is 0-based: 0 .. 340 for 341 iterations
        lr = lr0 / sqrt(1 + t)                      # so the first step uses lr0 itself
        w_k = w - lr * taylor_gradient(w, Xb_k, y_k, alpha)   for every worker k (full batch)
        w = mean_k(w_k)                             # equal weights, whatever the row counts
        if t % eval_every == 0:                     # t = 0, 10, ..., 340
            print(format_eval_line(t, evaluate(w, Xb_val, y_val)))   # model AFTER round t

"iter: 220" is therefore the global model after 221 averaged updates (``t = 0..220``). With a
1-based ``t`` (``lr0 / sqrt(2 + i)``) the log does not match (iter 220 prints acc 0.912).
Evaluating *before* round ``t``'s update happens to print the same five published lines (the
model moves too little in one step at ``t >= 220``), so the log alone cannot tell the two apart;
the reference worker's source (update, aggregate, then validate when ``i % 10 == 0``) settles
it as "after", which is what this module does.

The reference prints ``iter: 220  acc: 0.904  loss: 0.305`` (two spaces between fields); the
log copied in ``shared/data/README.md`` shows single spaces.
"""

from __future__ import annotations

from collections.abc import Sequence

from homolr.learning.data import Dataset
from homolr.learning.metrics import Metrics
from homolr.learning.training import train_taylor

REFERENCE_ITERS = 341
REFERENCE_LR0 = 0.15
REFERENCE_ALPHA = 0.01
REFERENCE_INIT_WEIGHT = 1.0
REFERENCE_EVAL_EVERY = 10


def replay_reference(
    workers: Sequence[Dataset],
    validation: Dataset,
    *,
    iters: int = REFERENCE_ITERS,
    lr0: float = REFERENCE_LR0,
    alpha: float = REFERENCE_ALPHA,
    init_weight: float = REFERENCE_INIT_WEIGHT,
    eval_every: int = REFERENCE_EVAL_EVERY,
    quantize_bits: int | None = None,
) -> list[tuple[int, Metrics]]:
    """Replay the reference training in plaintext and return what its PS would print.

    Parameters
    ----------
    workers : sequence of Dataset
        The workers' training sets (reference: guest, host).
    validation : Dataset
        The PS's validation set (reference: ``breast_homo_test.csv``).
    iters : int
        Number of rounds (``t = 0 .. iters - 1``).
    lr0 : float
        Learning rate of round 0; round ``t`` uses ``lr0 / sqrt(1 + t)``.
    alpha : float
        L2 coefficient (bias included).
    init_weight : float
        Every initial weight.
    eval_every : int
        Rounds ``t`` with ``t % eval_every == 0`` are evaluated after their update.
    quantize_bits : int or None
        Round ``w`` and the update ``M``, ``b`` to this many fractional bits each round, as the
        encrypted path does.

    Returns
    -------
    list of (int, Metrics)
        ``(t, metrics)`` for every evaluated round, in order; format with
        :func:`homolr.learning.format_eval_line` to get the reference's lines.
    """
    result = train_taylor(
        workers,
        iters=iters,
        lr0=lr0,
        schedule="invsqrt",
        alpha=alpha,
        init_weight=init_weight,
        quantize_bits=quantize_bits,
        weighting="equal",
        validation=validation,
        eval_every=eval_every,
    )
    return [(t, m) for t, m in result.history if eval_every > 0 and t % eval_every == 0]
