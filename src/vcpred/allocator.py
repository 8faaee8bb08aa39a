"""Keep freed memory in the process for reuse (glibc's malloc on Linux).

A CPU forward allocates and frees activations of several megabytes in every layer. glibc's malloc
starts by giving every block over 128 KB its own mapping, unmapped again on free, and trims the top
of its heaps back to the kernel; both thresholds only adapt upwards as blocks are freed. Until they
have, each layer's memory is page-faulted and zeroed afresh: in a new `vcpred predict` process the
first pass over 10 ViT-B/16 split models took 6.6-7.4 s instead of 5.4-6.0 s
(BENCHMARKS.md). Fixed thresholds (mallopt) remove that warm-up: blocks up to 32 MiB come from
the heap, and up to 256 MiB of free heap stays with the process.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
MMAP_THRESHOLD = 32 * 2**20  # glibc's largest allowed value on 64-bit systems
TRIM_THRESHOLD = 256 * 2**20


def keep_freed_memory() -> bool:
    """Set glibc's malloc thresholds for the rest of the process; False where there is no glibc
    (macOS, Windows, musl: their allocators behave otherwise and nothing is changed)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own symbols, libc's among them: no library search
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # mallopt returns 1 on success; musl's stub returns 0
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
