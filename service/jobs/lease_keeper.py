"""A heartbeat on its own thread for as long as a worker holds a job, so that the lease stays
renewed through data preparation, long steps, validation and checkpoint writes: only a dead or
partitioned worker loses its job."""
import logging
import threading
import time

from .records import Lease
from .store import JobStore, LeaseState

log = logging.getLogger("needle_service.worker")


class LeaseKeeper:
    """Renews `lease` every `interval_s` until stopped; `state` is the latest answer: ok, cancel,
    or lost (the lease is gone, or renewals failed for longer than the lease itself)."""

    def __init__(self, store: JobStore, lease: Lease, *, lease_s: float, interval_s: float):
        self.store, self.lease = store, lease
        self.lease_s, self.interval_s = lease_s, interval_s
        self.state = LeaseState.ok
        self.renewals = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{lease.job_id}", daemon=True)

    def __enter__(self) -> "LeaseKeeper":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def stop(self) -> None:
        """End the heartbeats (the job is over, or handed back)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    @property
    def lost(self) -> bool:
        """True once the lease can no longer be presumed ours."""
        return self.state is LeaseState.lost

    def _run(self) -> None:
        last_success = time.monotonic()
        failing = False
        while not self._stop.wait(self.interval_s):
            try:
                state = self.store.heartbeat(self.lease, self.lease_s)
            except Exception as exc:  # retried next interval; after a lease's length: lost
                if not failing:
                    log.warning("job %s: heartbeat failed, still training: %s", self.lease.job_id, exc)
                failing = True
                if time.monotonic() - last_success > self.lease_s:
                    self.state = LeaseState.lost
                    return
                continue
            failing, last_success = False, time.monotonic()
            self.renewals += 1
            if state is LeaseState.lost or self.state is LeaseState.lost:
                self.state = LeaseState.lost
                return
            self.state = state
