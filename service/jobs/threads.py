"""BLAS thread limits for worker processes (must be in the environment before numpy is imported)."""
import logging
import os
import sys

BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
log = logging.getLogger("needle_service.worker")


def blas_env(threads: int) -> dict[str, str]:
    """Environment variables that cap numpy's BLAS pools at `threads` threads."""
    return {name: str(max(1, threads)) for name in BLAS_THREAD_VARIABLES}


def limit_blas_threads(threads: int) -> bool:
    """Cap BLAS threads in this process; True if it took effect (numpy not imported yet, or the
    variables were already set by whoever started us, e.g. the worker pool)."""
    already_set = all(name in os.environ for name in BLAS_THREAD_VARIABLES)
    if "numpy" in sys.modules:
        if not already_set:
            log.warning("numpy was imported before the BLAS thread limit was set; "
                        "set OPENBLAS_NUM_THREADS/OMP_NUM_THREADS/MKL_NUM_THREADS=%d before starting", threads)
        return already_set
    for name, value in blas_env(threads).items():
        os.environ.setdefault(name, value)
    return True
