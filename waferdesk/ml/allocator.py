"""Keep freed memory inside the process while training on the CPU (glibc's malloc, tuned once).

A CPU training step allocates and frees the same large activation and gradient buffers every
step, and the canvas changes size from batch to batch (64x64, 96x64, 128x128...). With glibc's
defaults, buffers above the (dynamic) mmap threshold go back to the kernel at every ``free``
and the heap top is trimmed, so each step page-faults its way back into memory it held a
moment before: on a 2-core EPYC about half of a ResNet-50 training process's CPU time was
kernel time. Raising the mmap threshold to glibc's ceiling and never trimming keeps that
memory in the process; ``scripts/bench_train_step.py`` measures the difference (docs/ml.md).

Process-wide and one-way (glibc cannot go back to its dynamic threshold), so it is called by
the commands that train, not on import. ``WAFERDESK_MALLOC_TUNING=0`` turns it off (the
benchmark's baseline). Elsewhere (macOS, Windows, musl) it does nothing and says so.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys

ENV_SWITCH = "WAFERDESK_MALLOC_TUNING"

# mallopt(3) parameters and the values set
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's ceiling on 64-bit; larger blocks are still mmap'ed
TRIM_THRESHOLD = 2**31 - 1  # practically never give the heap top back
TOP_PAD = 1024 * 1024 * 1024  # grow the heap in large steps (address space; pages are touched lazily)

SETTINGS = ((M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD), (M_TOP_PAD, TOP_PAD))


@functools.cache
def keep_freed_memory() -> bool:
    """Tune glibc's malloc for training; True when it is tuned (now or by an earlier call)."""
    if os.environ.get(ENV_SWITCH, "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):  # no glibc (musl's mallopt is absent or a no-op)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return all(mallopt(param, value) == 1 for param, value in SETTINGS)
