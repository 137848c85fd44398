"""Keep freed memory in the process: glibc's heap settings for a training run.

A training step allocates and frees the same large temporaries (edges x features, a few MB
each) hundreds of times. glibc serves blocks above its mmap threshold (128 kB at start,
raised only as far as the largest block freed so far) with fresh pages from the kernel, and
hands the top of the heap back once more than the trim threshold is free; either way the
next step page-faults the same memory in again. Measured on the paper's SchNet, force step
(si-pbe, batches of 32, one thread): 19,000-30,000 page faults and 181-202 ms per step by
default, none and 143-147 ms with the settings below; CGCNN 385-400 -> 372-376 ms; energy-only
steps unchanged (docs/training.md).
"""
from __future__ import annotations

import ctypes
import ctypes.util

# mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
MMAP_THRESHOLD = 32 << 20  # glibc's largest allowed value on 64-bit: blocks above it are still mapped
TRIM_THRESHOLD = (1 << 31) - 1  # mallopt takes an int: keep up to 2 GB of free heap
TOP_PAD = 256 << 20  # grow the heap in steps of 256 MB (address space only until touched)


def keep_freed_memory() -> bool:
    """Set the process's glibc heap to keep what it frees (above). False where the C library
    is not glibc (macOS, musl), which then keeps its own behaviour."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    settings = ((M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD), (M_TOP_PAD, TOP_PAD))
    return all(mallopt(parameter, value) == 1 for parameter, value in settings)
