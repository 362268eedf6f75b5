"""Thread limits for worker processes: numpy's BLAS pools and needle's own (needle.parallel), which
read them from the environment when numpy and needle are imported."""
import logging
import os
import sys

THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NEEDLE_NUM_THREADS")
log = logging.getLogger("needle_service.worker")


def thread_env(threads: int) -> dict[str, str]:
    """Environment variables that cap numpy's BLAS pools and needle at `threads` threads."""
    return {name: str(max(1, threads)) for name in THREAD_VARIABLES}


def limit_threads(threads: int) -> bool:
    """Cap BLAS and needle threads in this process; True if it took effect (numpy not imported yet, or the
    variables were already set by whoever started us, e.g. the worker pool)."""
    already_set = all(name in os.environ for name in THREAD_VARIABLES)
    if "numpy" in sys.modules:
        if not already_set:
            log.warning("numpy was imported before the thread limits were set; "
                        "set OPENBLAS_NUM_THREADS/OMP_NUM_THREADS/MKL_NUM_THREADS/NEEDLE_NUM_THREADS=%d before starting", threads)
        return already_set
    for name, value in thread_env(threads).items():
        os.environ.setdefault(name, value)
    return True
