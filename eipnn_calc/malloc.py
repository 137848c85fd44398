"""Opt-in glibc malloc tuning for large systems.

Edge-sized temporaries are allocated and freed on every call. glibc hands memory above its
trim threshold back to the kernel, and each later call page-faults it in again, which can
double the step time at thousands of atoms. Raising the trim threshold and the top pad
keeps freed memory in the heap. This changes the whole process, so the calculator does it
only when asked (``EIPNNCalculator(..., tune_malloc=True)``); ``eipnn-train`` always does
(a training process is its own): SchNet's force-training step had 19,000-30,000 page faults
and took 181-202 ms by default, none and 143-147 ms tuned (docs/training.md).
"""
from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 32 * 2**20  # the largest value glibc accepts on 64-bit
TRIM_THRESHOLD_BYTES = 2**31 - 1  # mallopt takes a C int: the largest it can hold (2 GB)
TOP_PAD_BYTES = 2**28


def tune_malloc() -> bool:
    """Keep freed memory in the heap; returns False where libc has no mallopt (not glibc)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    # Without argtypes ctypes masks a Python int to a C int silently (2**36 would become 0).
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return all(
        mallopt(option, value) == 1
        for option, value in (
            (M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES),
            (M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES),
            (M_TOP_PAD, TOP_PAD_BYTES),
        )
    )
