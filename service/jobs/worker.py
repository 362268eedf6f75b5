"""A worker process: claim queued jobs and train them until SIGTERM or until its parent is gone.

numpy is imported only after the thread limits are in the environment (see limit_threads),
so this module imports no numpy at import time.
"""
import gc
import logging
import os
import signal
import socket
import sys
import time
import uuid

from ..settings import Settings
from .records import Status
from .threads import limit_threads

log = logging.getLogger("needle_service.worker")
EXPIRE_EVERY_SECONDS = 1.0   # how often an idle worker re-queues jobs of vanished workers
PARENT_CHECK_SECONDS = 0.5


class Worker:
    """Claim-train loop with graceful shutdown."""

    def __init__(self, settings: Settings, parent_pid: int | None = None):
        self.settings = settings
        self.parent_pid = parent_pid
        self.worker_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.stop_requested = False
        self._parent_checked_at = 0.0
        self._parent_alive = True

    def request_stop(self, signum=None, frame=None) -> None:
        """Signal handler: finish the current step, checkpoint, release, exit."""
        self.stop_requested = True

    def should_stop(self) -> bool:
        """SIGTERM received, or the parent process is gone (checked at most every 0.5 s)."""
        if self.stop_requested:
            return True
        now = time.monotonic()
        if self.parent_pid is not None and now - self._parent_checked_at >= PARENT_CHECK_SECONDS:
            self._parent_checked_at = now
            self._parent_alive = _process_alive(self.parent_pid)
            if not self._parent_alive:
                log.warning("parent process %d is gone; stopping", self.parent_pid)
        return not self._parent_alive

    def loop(self) -> None:
        """Register, then claim and train until asked to stop; store outages are waited out."""
        from .backends import open_store
        store = open_store(self.settings)
        self._registered_at = self._expired_at = float("-inf")
        try:
            while not self.should_stop():
                try:
                    self._housekeeping(store)
                    busy = self._work_once(store)
                except Exception:
                    log.exception("store unavailable; retrying in 1 s")
                    time.sleep(1.0)
                    continue
                if not busy:
                    time.sleep(self.settings.poll_seconds)
        finally:
            try:
                store.unregister_worker(self.worker_id)
            except Exception:
                log.exception("could not unregister worker %s", self.worker_id)
            store.close()

    def _housekeeping(self, store) -> None:
        """Refresh our registration; re-queue jobs whose workers vanished."""
        now = time.monotonic()
        if now - self._registered_at >= self.settings.heartbeat_seconds:
            store.register_worker(self.worker_id, {"pid": os.getpid(), "host": socket.gethostname()})
            self._registered_at = now
        if now - self._expired_at >= EXPIRE_EVERY_SECONDS:
            store.expire_leases(self.settings.max_attempts)
            self._expired_at = now

    def _work_once(self, store) -> bool:
        """Claim and train one job; False when the queue was empty."""
        from .execution import JobExecution
        queued, _ = store.list_jobs(status=Status.queued, limit=1)  # a read: idle workers take no write lock
        job = store.claim(self.worker_id, self.settings.lease_seconds) if queued else None
        if job is None:
            return False
        log.info("job %s: claimed (attempt %d)", job.id, job.attempt)
        JobExecution(store, self.settings, job, self.worker_id, self.should_stop).run()
        return True


def _process_alive(pid: int) -> bool:
    if pid == os.getppid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _lower_priority(niceness: int) -> None:
    if niceness > 0:
        try:
            os.nice(niceness)
        except OSError as exc:
            log.warning("could not lower the worker's priority: %s", exc)


def run_worker(settings: Settings, *, parent_pid: int | None = None) -> None:
    """Run one worker in this process until SIGTERM/SIGINT or until `parent_pid` exits."""
    limit_threads(settings.worker_threads)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format="%(asctime)s %(levelname)s [worker %(process)d] %(message)s")
    _lower_priority(settings.worker_nice)
    from . import execution  # noqa: F401  (needle, numpy, pydantic: imported before the freeze)
    # Modules live as long as the process: out of the collector's sight, full collections (run
    # now and then by training's object churn) no longer walk ~70k objects each time.
    gc.freeze()
    worker = Worker(settings, parent_pid)
    signal.signal(signal.SIGTERM, worker.request_stop)
    signal.signal(signal.SIGINT, worker.request_stop)
    log.info("worker %s started", worker.worker_id)
    worker.loop()
    log.info("worker %s stopped", worker.worker_id)


def main(argv: list[str] | None = None) -> None:
    """`python -m service.jobs.worker [--parent-pid PID]`, configured by NEEDLE_* variables."""
    import argparse
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--parent-pid", type=int)
    args = parser.parse_args(argv)
    run_worker(Settings(), parent_pid=args.parent_pid)


if __name__ == "__main__":
    main()
