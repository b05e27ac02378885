"""Pure aggregation maths of the PS: the global model from the members' averaged values.

The key holder releases the weighted average of the members' values (see
:mod:`homolr.enclave.keyholder`); :func:`global_weights` is the same average written out for the
plaintext simulations and the privacy analysis, which must agree with it.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

from homolr.protocol.messages import Weighting


def global_weights(
    total: NDArray[np.float64],
    workers: tuple[str, ...],
    weighting: Weighting,
    samples: Mapping[str, int],
) -> NDArray[np.float64]:
    """Next global model from the sum of the members' (possibly sample-scaled) models."""
    if weighting == "equal":
        return total / len(workers)
    return total / sum(samples[w] for w in workers)


__all__ = ["global_weights"]
