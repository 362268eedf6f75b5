"""Memory-bound numpy work on several threads: numpy releases the GIL inside its loops, so the
contiguous parts of a big array can be processed at once on separate cores.

Results never depend on the thread count: work is split only where every output element is
computed exactly as it is without a split (element-wise passes, the images of a batch), or by
blocks fixed by the shapes alone (a convolution's image blocks, needle.ops.ops_conv);
reductions over the split axis stay whole. Arrays under MIN_ELEMENTS are not split (a
thread hand-off costs ~20-50 us), so small models such as MLPs run exactly as before.

Threads: NEEDLE_NUM_THREADS if set (the service's workers set it with the BLAS limits), else the
CPUs this process may run on; `set_num_threads(n)` changes it. Use one BLAS thread alongside:
a split GEMM already runs on every thread.
"""
import ctypes
import os
import threading
import time

MIN_ELEMENTS = 1 << 17  # ~0.5 MiB of float32: below this the work stays on the calling thread

SPIN_SECONDS = 0.005  # how long an idle worker keeps polling for work before it blocks
NAP_SECONDS = 20e-6  # between polls

_local = threading.local()  # .inside: a worker thread (parts are never split further)
_pool: list | None = None
_busy = threading.Lock()  # held while the workers run one caller's parts


def _precise_naps() -> None:
    """Make this thread's short sleeps last what they ask: Linux rounds a sleeping thread's wake-up
    up by its timer slack (50 us by default), so a 20 us nap took ~90 us on the build machine and a
    part waited that long to start. No-op where prctl is missing."""
    try:
        ctypes.CDLL(None).prctl(_PR_SET_TIMERSLACK, 1, 0, 0, 0)  # 1 ns: no rounding
    except (OSError, AttributeError, TypeError):  # TypeError: no CDLL(None) on Windows
        pass


_PR_SET_TIMERSLACK = 29  # linux/prctl.h
# Waiting for a worker: hand it the GIL and take it straight back. time.sleep(0) would do the same
# through a zero-length timer, which the caller's timer slack stretches to ~50 us.
_yield = getattr(os, "sched_yield", lambda: time.sleep(0))


def _default_threads() -> int:
    configured = os.environ.get("NEEDLE_NUM_THREADS")
    if configured:
        return max(1, int(configured))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


_threads = _default_threads()


def get_num_threads() -> int:
    """Threads needle splits big array work over (1: never split)."""
    return _threads


def set_num_threads(threads: int) -> None:
    """Use `threads` threads from now on (idle workers beyond that stay blocked)."""
    global _threads
    with _busy:
        _threads = max(1, int(threads))


class _Worker:
    """A thread that runs the parts handed to it. Between parts it polls for SPIN_SECONDS, napping
    NAP_SECONDS (without the GIL) between looks, before it blocks: waking a blocked thread cost
    0.1-1 ms on this build machine's virtual CPUs, more than a part takes, and a training step
    hands one over every few hundred microseconds (OpenMP's threads spin for the same reason)."""

    def __init__(self):
        self.job = None  # (part_fn, part) given by the caller
        self.done, self.error = True, None
        self._wake = threading.Event()
        threading.Thread(target=self._loop, name="needle-parallel", daemon=True).start()

    def give(self, part_fn, part: slice) -> None:
        """Start part_fn(part) on this thread."""
        self.done, self.error = False, None
        self.job = (part_fn, part)
        self._wake.set()

    def wait(self) -> None:
        """Until the part given last has run; re-raises its error."""
        while not self.done:
            _yield()
        if self.error is not None:
            raise self.error

    def _loop(self) -> None:
        _local.inside = True
        _precise_naps()
        while True:
            idle_until = time.perf_counter() + SPIN_SECONDS
            while self.job is None:
                if time.perf_counter() < idle_until:
                    time.sleep(NAP_SECONDS)
                else:
                    self._wake.wait()
                    idle_until = time.perf_counter() + SPIN_SECONDS
            self._wake.clear()
            part_fn, part = self.job
            self.job = None
            try:
                part_fn(part)
            except BaseException as exc:  # handed to the caller by wait()
                self.error = exc
            self.done = True


def _workers(count: int) -> list[_Worker]:
    """`count` worker threads, started on first use (and kept: spare ones stay blocked)."""
    global _pool
    if _pool is None:
        _pool = []
    while len(_pool) < count:
        _pool.append(_Worker())
    return _pool[:count]


def _forget_pool_in_child() -> None:
    global _pool
    _pool = None  # a forked child has none of the parent's threads: start new ones on demand


os.register_at_fork(after_in_child=_forget_pool_in_child)


def split(length: int, elements: int) -> list[slice]:
    """Contiguous slices covering range(length): one per thread if the work (`elements` array
    elements in all) is big enough to pay for the hand-off, else a single slice."""
    parts = min(_threads, length) if elements >= MIN_ELEMENTS else 1
    if parts <= 1 or getattr(_local, "inside", False):
        return [slice(0, length)]
    bounds = [length * i // parts for i in range(parts + 1)]
    return [slice(start, stop) for start, stop in zip(bounds, bounds[1:])]


def run(part_fn, length: int, elements: int) -> None:
    """part_fn(part) for the slices of split(length, elements), at once: the calling thread
    takes the first. part_fn writes its part of outputs allocated beforehand (on the calling
    thread). A second caller while the workers are busy (two threads running needle) runs unsplit."""
    parts = split(length, elements)
    if len(parts) == 1 or not _busy.acquire(blocking=False):
        part_fn(slice(0, length))
        return
    try:
        workers = _workers(len(parts) - 1)
        for worker, part in zip(workers, parts[1:]):
            worker.give(part_fn, part)
        try:
            part_fn(parts[0])
        finally:
            for worker in workers:
                worker.wait()
    finally:
        _busy.release()


def run_blocks(blocks: list, elements: int, block_fn) -> None:
    """block_fn(index, block) for every block (fixed by the caller from the shapes alone), runs of
    consecutive blocks split over the threads (see run; `elements`: the work in all)."""
    def part(indices):
        for index in range(indices.start, indices.stop):
            block_fn(index, blocks[index])
    run(part, len(blocks), elements)
