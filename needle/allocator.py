"""Keep freed array memory in the process between training steps instead of handing it back to the OS.

A training step allocates and frees the same few-MiB arrays every step. With glibc's defaults each
free of a large block returns its pages to the kernel (heap trimming above 128 KiB, or munmap), and
the next step's allocation of the same size faults them in again: a CNN step at batch 64 took
~4,600 page faults and ~9 ms of kernel time per step. Raising the trim threshold to 64 MiB and
fixing the mmap threshold at 32 MiB (the ceiling glibc's own adaptive threshold reaches) keeps those
pages mapped and reused; the process keeps at most 64 MiB of freed memory at the top of its heap.

Set NEEDLE_MALLOC_TUNING=0 to leave the C allocator as it is. Only glibc on Linux is tuned.
"""
import ctypes
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers (malloc.h)
TRIM_THRESHOLD_BYTES = 64 << 20
MMAP_THRESHOLD_BYTES = 32 << 20


def keep_freed_memory() -> bool:
    """Tune glibc's malloc as described above; True if it was tuned."""
    if not sys.platform.startswith("linux") or os.environ.get("NEEDLE_MALLOC_TUNING", "1") == "0":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # no mallopt in this C library
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # mallopt returns 1 on success; on musl it is a no-op returning 0
    return mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1 and \
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1


MALLOC_TUNED = keep_freed_memory()
