"""The heartbeat thread keeps a lease alive while the training thread is busy elsewhere."""
import time

from service.jobs import Lease
from service.jobs.lease_keeper import LeaseKeeper
from service.jobs.store import LeaseState


def claimed(store):
    store.create_job({"model": {}, "data": {"type": "spirals"}, "training": {}}, param_count=1,
                     epochs=1, steps=1)
    job = store.claim("w1", lease_seconds=0.5)
    return Lease(job.id, "w1", job.attempt)


def test_the_lease_outlives_a_busy_main_thread(store):
    lease = claimed(store)
    with LeaseKeeper(store, lease, lease_s=0.5, interval_s=0.1) as keeper:
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:   # CPU-bound, holding the GIL in turns
            sum(range(10_000))
        assert store.expire_leases(max_attempts=3) == 0
        assert keeper.state is LeaseState.ok and keeper.renewals >= 5
    time.sleep(0.7)  # stopped: nobody renews any more
    assert store.expire_leases(max_attempts=3) == 1


def test_a_cancel_request_and_a_lost_lease_are_reported(store):
    lease = claimed(store)
    with LeaseKeeper(store, lease, lease_s=5, interval_s=0.05) as keeper:
        store.request_cancel(lease.job_id)
        time.sleep(0.3)
        assert keeper.state is LeaseState.cancel
    other = claimed(store)
    with LeaseKeeper(store, Lease(other.job_id, "someone-else", other.attempt), lease_s=5,
                     interval_s=0.05) as keeper:
        time.sleep(0.3)
        assert keeper.lost


class FailingStore:
    def heartbeat(self, lease, lease_seconds):
        raise ConnectionError("database gone")


def test_renewals_failing_for_longer_than_the_lease_mean_lost():
    with LeaseKeeper(FailingStore(), Lease("j", "w", 1), lease_s=0.3, interval_s=0.05) as keeper:
        time.sleep(0.1)
        assert not keeper.lost   # a brief outage is waited out
        time.sleep(0.6)
        assert keeper.lost
