"""Keep the memory a training step frees inside the process, for the next step to reuse.

glibc's malloc serves blocks above its mmap threshold (128 KiB at first, rising as such blocks
are freed, to at most 32 MiB) with pages of their own, unmapped again on `free`, and returns
the top of its heap to the kernel beyond its trim threshold. A training step allocates and frees
the same activations every batch, so the kernel mapped and zeroed fresh pages for them each
time: 3,000-5,000 page faults per `deep_cnn_bn` step at batch 128 (BENCHMARKS.md). With both
thresholds at 1 GiB the freed blocks stay in the heap; the process keeps its peak heap instead.
"""

from __future__ import annotations

import ctypes
from functools import cache

M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
M_MMAP_THRESHOLD = -3
THRESHOLD = 1 << 30


@cache
def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process, once; False where the C
    library has no `mallopt` (not glibc) or refuses."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(M_MMAP_THRESHOLD, THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, THRESHOLD))
