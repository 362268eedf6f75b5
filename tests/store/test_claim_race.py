"""Several real processes race for one queue: every job is claimed exactly once (both backends)."""
import multiprocessing as mp
from collections import Counter

from service.jobs import Status

N_JOBS = 50
N_PROCESSES = 3


def _claim_until_empty(make_store, worker_id: str, start, results) -> None:
    """Child process: wait for the start signal, then claim until the queue is empty."""
    store = make_store()
    start.wait(10)
    won = []
    while (job := store.claim(worker_id, lease_seconds=60)) is not None:
        won.append((job.id, job.worker_id, job.attempt))
    store.close()
    results.put((worker_id, won))


def test_processes_racing_for_50_jobs_claim_each_exactly_once(store_factory):
    store = store_factory()
    ids = {store.create_job({"n": i}, param_count=1, epochs=1, steps=1)[0].id for i in range(N_JOBS)}
    ctx = mp.get_context("fork")  # the children inherit store_factory (and a used store: fork safety)
    start, results = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_claim_until_empty, args=(store_factory, f"w{i}", start, results))
             for i in range(N_PROCESSES)]
    for proc in procs:
        proc.start()
    start.set()  # release them together so they really contend
    outcomes = dict(results.get(timeout=60) for _ in procs)
    for proc in procs:
        proc.join(10)
        assert proc.exitcode == 0

    claims = Counter(job_id for won in outcomes.values() for job_id, _, _ in won)
    assert set(claims) == ids
    assert max(claims.values()) == 1, "a job was claimed twice"
    for worker_id, won in outcomes.items():
        assert all(owner == worker_id and attempt == 1 for _, owner, attempt in won)
    # The store agrees: every job running, owned by the process that says it won it.
    owners = {job_id: worker_id for worker_id, won in outcomes.items() for job_id, _, _ in won}
    for job_id in ids:
        job = store.get_job(job_id)
        assert job.status == Status.running and job.worker_id == owners[job_id]
    assert store.claim("late", lease_seconds=60) is None
