"""The JobStore contract, run against every backend (see conftest.store_factory)."""
import multiprocessing
import threading
import time

import pytest

from service.jobs import Conflict, Lease, LeaseState, NotFound, Status

SPEC = {"model": {"type": "sequential", "layers": [{"type": "linear", "in_features": 2, "out_features": 3}]},
        "training": {"epochs": 2}}


def make_job(store, **kwargs):
    job, created = store.create_job(dict(SPEC, tag=kwargs.pop("tag", 0)), param_count=9, epochs=2, steps=10,
                                    **kwargs)
    assert created
    return job


def claim_lease(store, worker="w1", lease_seconds=30.0):
    job = store.claim(worker, lease_seconds)
    assert job is not None
    return job, Lease(job.id, worker, job.attempt)


def finished_job(store, status=Status.succeeded):
    make_job(store)
    job, lease = claim_lease(store)
    assert store.finish(lease, status, result={"train_loss": 0.5}, parameters=b"params")
    return job


# ---- lifecycle ----
def test_migrate_is_idempotent_and_ping_answers(store):
    store.migrate()
    store.migrate()
    assert store.ping()


# ---- API side ----
def test_create_and_get_job_roundtrip(store):
    before = time.time()
    job = make_job(store, tag=7)
    got = store.get_job(job.id)
    assert got == job
    assert got.status is Status.queued and got.spec["tag"] == 7 and got.spec["model"] == SPEC["model"]
    assert (got.param_count, got.epochs, got.steps, got.attempt) == (9, 2, 10, 0)
    assert before - 1 <= got.created_at <= time.time() + 1
    assert got.started_at is None and got.worker_id is None and not got.has_parameters


def test_get_unknown_job_is_not_found(store):
    with pytest.raises(NotFound):
        store.get_job("nope")


def test_idempotency_key_returns_the_same_job_or_conflicts(store):
    first, created = store.create_job(SPEC, param_count=1, epochs=1, steps=1,
                                      idempotency_key="k1", request_hash="h1")
    again, created_again = store.create_job(SPEC, param_count=1, epochs=1, steps=1,
                                             idempotency_key="k1", request_hash="h1")
    assert created and not created_again and again.id == first.id
    assert again.idempotency_key == "k1"
    with pytest.raises(Conflict):
        store.create_job(SPEC, param_count=1, epochs=1, steps=1, idempotency_key="k1", request_hash="h2")
    other, created_other = store.create_job(SPEC, param_count=1, epochs=1, steps=1,
                                            idempotency_key="k2", request_hash="h1")
    assert created_other and other.id != first.id


def test_list_jobs_newest_first_with_cursor_pages(store):
    ids = [make_job(store, tag=i).id for i in range(7)]
    seen, cursor = [], None
    while True:
        page, cursor = store.list_jobs(limit=3, cursor=cursor)
        seen += [j.id for j in page]
        if cursor is None:
            break
    assert seen == ids[::-1]
    page, cursor = store.list_jobs(limit=7)
    assert len(page) == 7 and cursor is None


def test_list_jobs_filters_before_the_limit(store):
    ids = [make_job(store, tag=i).id for i in range(5)]
    store.request_cancel(ids[1])
    store.request_cancel(ids[3])
    page, cursor = store.list_jobs(status=Status.cancelled, limit=1)
    assert [j.id for j in page] == [ids[3]] and cursor is not None
    page, cursor = store.list_jobs(status=Status.cancelled, limit=1, cursor=cursor)
    assert [j.id for j in page] == [ids[1]]
    assert cursor is None or store.list_jobs(status=Status.cancelled, limit=1, cursor=cursor)[0] == []
    queued, _ = store.list_jobs(status=Status.queued, limit=50)
    assert {j.id for j in queued} == {ids[0], ids[2], ids[4]}


def test_list_jobs_filters_by_tags_and_name_prefix(store):
    def named(name, tags):
        job, _ = store.create_job({**SPEC, "name": name, "tags": tags}, param_count=9, epochs=2, steps=10)
        return job.id
    a = named("resnet-wide", {"team": "vision", "stage": "dev"})
    b = named("resnet-deep", {"team": "vision", "stage": "prod"})
    c = named("Resnet-x%", {"team": "nlp"})
    d = named(None, {})
    ids = lambda **kw: [j.id for j in store.list_jobs(limit=50, **kw)[0]]
    assert ids(tags=[("team", "vision")]) == [b, a]
    assert ids(tags=[("team", "vision"), ("stage", "prod")]) == [b]
    assert ids(tags=[("team", "vision:prod")]) == []
    assert ids(name_prefix="resnet-") == [b, a]  # case-sensitive
    assert ids(name_prefix="Resnet-x%") == [c]  # no LIKE wildcards
    assert ids(name_prefix="resnet", tags=[("stage", "dev")]) == [a]
    assert d in ids() and len(ids()) == 4
    page, cursor = store.list_jobs(limit=1, tags=[("team", "vision")])
    assert [j.id for j in page] == [b] and [j.id for j in store.list_jobs(limit=1, cursor=cursor,
                                                                        tags=[("team", "vision")])[0]] == [a]
    job = store.get_job(a, with_spec=False)
    assert job.name == "resnet-wide" and job.tags == {"team": "vision", "stage": "dev"}
    store.request_cancel(a)
    store.delete_job(a)
    assert ids(tags=[("team", "vision")]) == [b]


def test_cancel_queued_job_ends_it_at_once(store):
    job = make_job(store)
    cancelled = store.request_cancel(job.id)
    assert cancelled.status is Status.cancelled and cancelled.finished_at is not None
    assert store.claim("w1", 30) is None
    with pytest.raises(Conflict):
        store.request_cancel(job.id)
    with pytest.raises(NotFound):
        store.request_cancel("nope")


def test_cancel_running_job_flags_it_for_the_worker(store):
    make_job(store)
    job, lease = claim_lease(store)
    assert store.check(lease) is LeaseState.ok
    flagged = store.request_cancel(job.id)
    assert flagged.status is Status.running and flagged.cancel_requested
    assert store.check(lease) is LeaseState.cancel
    assert store.heartbeat(lease, 30) is LeaseState.cancel
    assert store.finish(lease, Status.cancelled, result={"steps": 3}, parameters=b"p")
    done = store.get_job(job.id)
    assert done.status is Status.cancelled and done.has_parameters and done.result == {"steps": 3}


def test_delete_job_needs_a_terminal_job_and_removes_its_data(store):
    running = make_job(store)
    with pytest.raises(Conflict):
        store.delete_job(running.id)
    claim_lease(store)
    with pytest.raises(Conflict):
        store.delete_job(running.id)
    done = finished_job(store)
    store.delete_job(done.id)
    with pytest.raises(NotFound):
        store.get_job(done.id)
    with pytest.raises(NotFound):
        store.get_metrics(done.id)
    assert store.get_parameters(done.id) is None
    with pytest.raises(NotFound):
        store.delete_job(done.id)


# ---- worker side ----
def test_claim_takes_the_oldest_queued_job(store):
    first, second = make_job(store, tag=1), make_job(store, tag=2)
    before = time.time()
    job = store.claim("w1", 30)
    assert job.id == first.id and job.status is Status.running and job.worker_id == "w1"
    assert job.attempt == 1 and job.started_at >= before - 1
    assert job.lease_expires_at == pytest.approx(time.time() + 30, abs=5)
    assert store.claim("w2", 30).id == second.id
    assert store.claim("w3", 30) is None


def test_lost_lease_writes_are_fenced(store):
    make_job(store)
    job, old = claim_lease(store, "w1", lease_seconds=-1)   # already expired
    assert store.expire_leases(max_attempts=3) == 1
    _, new = claim_lease(store, "w2")
    assert new.attempt == 2
    assert store.check(old) is LeaseState.lost
    assert store.heartbeat(old, 30) is LeaseState.lost
    assert not store.set_progress(old, epoch=1, step=1, epochs=2, steps=10)
    assert not store.add_metrics(old, [("step", 0, 1, {"loss": 1.0})])
    assert not store.truncate_metrics(old, after_step=0)
    assert not store.save_checkpoint(old, b"stale")
    assert not store.release(old)
    assert not store.finish(old, Status.succeeded, parameters=b"stale")
    assert store.get_metrics(job.id) == [] and store.load_checkpoint(job.id) is None
    assert store.check(new) is LeaseState.ok and store.get_job(job.id).worker_id == "w2"
    assert store.check(Lease("nope", "w2", 1)) is LeaseState.lost


def test_expire_leases_requeues_then_fails_at_max_attempts(store):
    job = make_job(store)
    started = store.claim("w1", -1).started_at
    assert store.expire_leases(max_attempts=2) == 1
    requeued = store.get_job(job.id)
    assert requeued.status is Status.queued and requeued.attempt == 1 and requeued.worker_id is None
    again = store.claim("w2", -1)
    assert again.attempt == 2 and again.started_at == started
    assert store.expire_leases(max_attempts=2) == 1
    failed = store.get_job(job.id)
    assert failed.status is Status.failed and "gave up after 2 attempts" in failed.error
    assert failed.finished_at is not None
    assert store.expire_leases(max_attempts=2) == 0


def test_expire_leases_leaves_live_leases_alone(store):
    make_job(store)
    _, lease = claim_lease(store, lease_seconds=30)
    assert store.expire_leases(max_attempts=3) == 0
    assert store.check(lease) is LeaseState.ok


def test_heartbeat_extends_the_lease(store):
    make_job(store)
    job, lease = claim_lease(store, lease_seconds=-1)
    assert store.heartbeat(lease, 30) is LeaseState.ok
    assert store.get_job(job.id).lease_expires_at > time.time() + 20
    assert store.expire_leases(max_attempts=3) == 0


def test_requeue_running_treats_every_running_job_as_lost(store):
    a, b, c = make_job(store), make_job(store), make_job(store)
    store.claim("w1", 300)
    store.claim("w2", 300)
    assert store.requeue_running(max_attempts=1) == 2
    assert store.get_job(a.id).status is Status.failed
    assert store.get_job(b.id).status is Status.failed
    assert store.get_job(c.id).status is Status.queued
    make_job(store)
    store.claim("w3", 300)
    assert store.requeue_running(max_attempts=3) == 1
    assert store.get_job(c.id).status is Status.queued


def test_progress_is_recorded(store):
    make_job(store)
    job, lease = claim_lease(store)
    assert store.set_progress(lease, epoch=1, step=5, epochs=3, steps=15)
    got = store.get_job(job.id)
    assert (got.epoch, got.step, got.epochs, got.steps) == (1, 5, 3, 15)


def test_metrics_append_page_and_truncate(store):
    make_job(store)
    job, lease = claim_lease(store)
    points = [("step", 0, s, {"loss": 1.0 / s}) for s in range(1, 6)]
    points.append(("epoch", 1, 5, {"train_loss": 0.4, "train_error": 0.1, "val_loss": None, "val_error": None}))
    assert store.add_metrics(lease, points)
    got = store.get_metrics(job.id)
    assert [(p.kind, p.epoch, p.step, p.values) for p in got] == points
    seqs = [p.seq for p in got]
    assert seqs == sorted(seqs) and len(set(seqs)) == 6
    assert [p.step for p in store.get_metrics(job.id, after=seqs[2])] == [4, 5, 5]
    assert [p.step for p in store.get_metrics(job.id, after=seqs[0], limit=2)] == [2, 3]
    assert store.truncate_metrics(lease, after_step=3)
    assert [p.step for p in store.get_metrics(job.id)] == [1, 2, 3]
    assert store.add_metrics(lease, [("step", 0, 4, {"loss": 0.25})])
    tail = store.get_metrics(job.id)[-1]
    assert tail.step == 4 and tail.seq > seqs[2]
    with pytest.raises(NotFound):
        store.get_metrics("nope")


def test_checkpoint_replace_release_and_resume(store):
    make_job(store)
    job, lease = claim_lease(store, "w1")
    assert store.load_checkpoint(job.id) is None
    assert store.save_checkpoint(lease, b"one")
    assert store.save_checkpoint(lease, b"two")
    assert store.load_checkpoint(job.id) == b"two"
    assert store.release(lease)
    released = store.get_job(job.id)
    assert released.status is Status.queued and released.worker_id is None
    assert store.load_checkpoint(job.id) == b"two"
    again, lease2 = claim_lease(store, "w2")
    assert again.id == job.id and again.attempt == 2
    assert store.check(lease) is LeaseState.lost
    blob = bytes(range(256)) * 1000
    assert store.save_checkpoint(lease2, blob) and store.load_checkpoint(job.id) == blob


def test_finish_stores_result_and_parameters_and_drops_the_checkpoint(store):
    make_job(store)
    job, lease = claim_lease(store)
    store.save_checkpoint(lease, b"ckpt")
    params = bytes(range(256)) * 64
    result = {"train_loss": 0.1, "val_loss": None, "epochs": 2, "stopped": "max_steps"}
    assert store.finish(lease, Status.succeeded, result=result, parameters=params)
    done = store.get_job(job.id)
    assert done.status is Status.succeeded and done.result == result and done.has_parameters
    assert done.finished_at >= done.started_at and done.error is None
    assert store.get_parameters(job.id) == params
    assert store.load_checkpoint(job.id) is None
    assert store.check(lease) is LeaseState.lost
    assert not store.finish(lease, Status.failed, error="again")


def test_finish_failed_keeps_the_error(store):
    make_job(store)
    job, lease = claim_lease(store)
    assert store.finish(lease, Status.failed, error="loss became nan at step 3")
    done = store.get_job(job.id)
    assert done.status is Status.failed and done.error == "loss became nan at step 3"
    assert not done.has_parameters and store.get_parameters(job.id) is None


# ---- workers registry ----
def test_worker_registry(store):
    assert store.live_workers(60) == 0
    store.register_worker("w1", {"pid": 1})
    store.register_worker("w1", {"pid": 1})
    store.register_worker("w2", {"pid": 2})
    assert store.live_workers(60) == 2
    store.unregister_worker("w1")
    assert store.live_workers(60) == 1
    time.sleep(0.05)
    assert store.live_workers(0.01) == 0


# ---- datasets ----
def test_datasets_roundtrip_list_and_delete(store):
    first = store.create_dataset(name="a", blob=b"npz-a", n_rows=3, n_features=2, n_classes=2)
    second = store.create_dataset(name=None, blob=b"npz-bb", n_rows=4, n_features=5, n_classes=3)
    assert first.id != second.id and second.size_bytes == 6
    assert store.get_dataset(first.id) == first
    assert store.get_dataset_blob(second.id) == b"npz-bb"
    assert [d.id for d in store.list_datasets()] == [second.id, first.id]
    store.delete_dataset(first.id)
    for call in (store.get_dataset, store.get_dataset_blob, store.delete_dataset):
        with pytest.raises(NotFound):
            call(first.id)
    assert [d.id for d in store.list_datasets()] == [second.id]


# ---- concurrency ----
def _claim_all(store, worker_id: str) -> None:
    while store.claim(worker_id, 60) is not None:
        pass


def _assert_each_job_claimed_once(store, ids, claimers):
    jobs = [store.get_job(i) for i in ids]
    assert all(j.status is Status.running and j.attempt == 1 for j in jobs)
    assert {j.worker_id for j in jobs} <= set(claimers)
    assert store.claim("late", 60) is None


def test_concurrent_thread_claimers_each_win_distinct_jobs(store_factory):
    store = store_factory()
    ids = [make_job(store, tag=i).id for i in range(30)]
    claimers = [f"t{i}" for i in range(6)]
    threads = [threading.Thread(target=_claim_all, args=(store_factory(), c)) for c in claimers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    _assert_each_job_claimed_once(store, ids, claimers)


def test_concurrent_process_claimers_each_win_distinct_jobs(store_factory):
    store = store_factory()
    ids = [make_job(store, tag=i).id for i in range(20)]
    store.close()  # no connection crosses the fork
    claimers = [f"p{i}" for i in range(3)]
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=lambda c=c: _claim_all(store_factory(), c)) for c in claimers]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    _assert_each_job_claimed_once(store_factory(), ids, claimers)


def test_data_survives_close_and_reopen(store_factory):
    store = store_factory()
    job = make_job(store, tag=3)
    store.close()
    reopened = store_factory()
    assert reopened.ping() and reopened.get_job(job.id) == job
