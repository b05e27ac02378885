"""The PS's allocator settings: few malloc arenas, and large buffers handed back to the system.

Without them glibc gives every thread that allocates (the event loop, the fold and decryption
helpers, gRPC's threads) an arena of its own, and raises its mmap threshold each time a large
block is freed, so the 128 KiB data messages of every member's update come from those arenas and
fragment them: measured with ``benchmarks/bench_aggregate.py`` at 100,001 weights, the PS's peak
RSS climbed about 1 MB a round and stood 20-28 MB above its idle RSS after five rounds. With two
arenas and a fixed 128 KiB threshold (each data message is then its own mapping, unmapped when it
is freed) the same runs peak 15-17 MB above idle, whatever the number of members, at no
measurable cost in round time.

Only glibc has ``mallopt``; elsewhere (musl, macOS) :func:`tune_allocator` does nothing. An
allocator the environment configures (``MALLOC_ARENA_MAX``, ``MALLOC_MMAP_THRESHOLD_``) is left as
it is: the enclave's manifest sets both, so the PS inside it loads no ``ctypes`` (and maps no file
beyond its trusted ones to find ``libffi``).
"""

from __future__ import annotations

import os
import sys

#: ``mallopt`` parameters from glibc's <malloc.h>.
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8

#: Arenas for the whole process; the PS allocates from the event loop and two helper threads.
ARENAS = 2
#: Blocks from this size up are mapped on their own and returned to the system when freed.
MMAP_THRESHOLD_BYTES = 128 * 1024
#: glibc's environment variables for the same settings.
ENVIRONMENT = ("MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_")


def tune_allocator(arenas: int = ARENAS, mmap_threshold: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Apply the settings above to this process's glibc allocator.

    Call it early (before the threads that allocate start): arenas made before it stay.

    Returns
    -------
    bool
        True when both settings were taken; False on a C library without ``mallopt`` or when
        the environment configures the allocator.
    """
    if not sys.platform.startswith("linux") or any(name in os.environ for name in ENVIRONMENT):
        return False
    import ctypes  # here: a PS whose environment sets the allocator never loads it

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    took_arenas: bool = mallopt(M_ARENA_MAX, arenas) == 1
    took_threshold: bool = mallopt(M_MMAP_THRESHOLD, mmap_threshold) == 1
    return took_arenas and took_threshold


__all__ = ["ARENAS", "ENVIRONMENT", "MMAP_THRESHOLD_BYTES", "tune_allocator"]
