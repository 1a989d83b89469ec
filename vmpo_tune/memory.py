"""Keep freed memory in the process, so that an update's large tensors reuse it (glibc's malloc).

An update allocates and frees dozens of 2 MB tensors per M-step (2,048 x 256 float32 activations and their
gradients). Left to itself, glibc's malloc hands such memory back to the system and asks for it again, and every
page it gets back is zeroed by the kernel on first touch: on the 2-core development machine that page-faulting
was about a quarter of a `hopper` update's time (BENCHMARKS.md, throughput notes of 2026-12-03).

:func:`keep_freed_memory` fixes two of malloc's thresholds for the process: allocations up to 32 MiB (glibc's
largest allowed threshold) come from the heap rather than from their own mapping, and the heap's free top is not
given back until it exceeds 1 GiB. The arithmetic is unchanged (PyTorch aligns every tensor to 64 bytes wherever it
lies), so runs stay bit for bit what they were; the process keeps the heap of its busiest moment until it exits.
The search's workers, ``train`` and ``play`` call it; code that trains through the Python API may too.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import sys

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's <malloc.h>
MMAP_THRESHOLD = 32 << 20
"""Allocations up to this size come from the heap."""
TRIM_THRESHOLD = 1 << 30
"""The heap's free top goes back to the system only beyond this size."""


@functools.lru_cache(maxsize=1)
def keep_freed_memory() -> bool:
    """Apply the thresholds above, once per process; False where the C library has no ``mallopt`` that takes them
    (not Linux, or not glibc), and then nothing changed."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this process runs on
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    applied = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    if not applied:
        log.debug("this C library's mallopt refused the thresholds: large tensors keep glibc's default handling")
    return applied
