"""Tenancy, API keys, quotas and the fair claim order: the store contract on every backend."""
import threading
import time

import pytest

from service.jobs import (ActiveJobsQuotaExceeded, ApiKey, Conflict, Lease, NotFound, Status,
                          StorageQuotaExceeded)

SPEC = {"model": {"type": "sequential", "layers": []}, "training": {"epochs": 1}}


def job_of(store, tenant, tag=0, **kwargs):
    job, created = store.create_job(dict(SPEC, tag=tag), param_count=1, epochs=1, steps=1,
                                    tenant=tenant, owner=kwargs.pop("owner", tenant), **kwargs)
    assert created
    return job


def claim(store, worker="w"):
    job = store.claim(worker, 60)
    assert job is not None
    return job


def finish(store, job, worker="w"):
    assert store.finish(Lease(job.id, worker, job.attempt), Status.succeeded, parameters=b"p")


# ---- tenancy ----
def test_another_tenants_job_is_not_found_everywhere_and_admins_see_it(store):
    job = job_of(store, "a")
    assert (job.tenant, job.owner, job.priority) == ("a", "a", 0)
    finish(store, claim(store))
    calls = [lambda t: store.get_job(job.id, tenant=t),
             lambda t: store.get_job(job.id, with_spec=False, tenant=t),
             lambda t: store.get_metrics(job.id, tenant=t),
             lambda t: store.request_cancel(job.id, tenant=t),
             lambda t: store.delete_job(job.id, tenant=t)]
    for call in calls:
        with pytest.raises(NotFound):
            call("b")
    assert store.get_parameters(job.id, tenant="b") is None
    assert store.get_parameters(job.id, tenant="a") == store.get_parameters(job.id) == b"p"
    assert store.get_job(job.id, tenant="a").tenant == "a" and store.get_job(job.id).id == job.id
    assert store.list_jobs(tenant="b") == ([], None)
    assert [j.id for j in store.list_jobs(tenant="a")[0]] == [job.id]
    store.delete_job(job.id, tenant="a")


def test_lists_are_scoped_before_the_limit(store):
    mine = [job_of(store, "a", tag=i).id for i in range(3)]
    for i in range(5):
        job_of(store, "b", tag=i)
    page, cursor = store.list_jobs(tenant="a", limit=2)
    rest, end = store.list_jobs(tenant="a", limit=2, cursor=cursor)
    assert [j.id for j in page + rest] == mine[::-1] and end is None
    assert len(store.list_jobs(limit=500)[0]) == 8


def test_datasets_are_per_tenant(store):
    ours = store.create_dataset(name="x", blob=b"abc", n_rows=1, n_features=1, n_classes=1,
                                tenant="a", owner="a-key")
    assert (ours.tenant, ours.owner) == ("a", "a-key")
    for call in (store.get_dataset, store.get_dataset_blob, store.delete_dataset):
        with pytest.raises(NotFound):
            call(ours.id, tenant="b")
    assert store.list_datasets(tenant="b") == []
    assert store.list_datasets(tenant="a") == [ours] == store.list_datasets()
    assert store.get_dataset_blob(ours.id, tenant="a") == b"abc"
    store.delete_dataset(ours.id, tenant="a")


def test_idempotency_keys_are_per_tenant(store):
    first, _ = store.create_job(SPEC, param_count=1, epochs=1, steps=1, idempotency_key="k",
                                request_hash="h1", tenant="a")
    other, created = store.create_job(SPEC, param_count=1, epochs=1, steps=1, idempotency_key="k",
                                      request_hash="h2", tenant="b")
    assert created and other.id != first.id
    again, created = store.create_job(SPEC, param_count=1, epochs=1, steps=1, idempotency_key="k",
                                      request_hash="h1", tenant="a")
    assert not created and again.id == first.id
    with pytest.raises(Conflict):
        store.create_job(SPEC, param_count=1, epochs=1, steps=1, idempotency_key="k",
                         request_hash="h3", tenant="b")


# ---- keys ----
def test_keys_are_created_found_by_hash_listed_and_revoked(store):
    key = ApiKey(name="k1", tenant="t", max_active_jobs=3, max_dataset_bytes=10, max_priority=2,
                 rate_limit=1.5, max_job_cost=1e9, created_at=time.time())
    store.create_key(key, "hash-1")
    store.create_key(ApiKey(name="k2", tenant="t", admin=True, created_at=time.time()), "hash-2")
    assert store.find_key("hash-1") == key and store.find_key("nope") is None
    with pytest.raises(Conflict):
        store.create_key(ApiKey(name="k1", tenant="u"), "hash-3")
    revoked = store.revoke_key("k1")
    assert not revoked.active and store.revoke_key("k1").revoked_at == revoked.revoked_at
    assert store.find_key("hash-1") == revoked
    assert [(k.name, k.admin, k.active) for k in store.list_keys()] == [("k1", False, False),
                                                                         ("k2", True, True)]
    with pytest.raises(NotFound):
        store.revoke_key("nobody")


# ---- quotas ----
def _race(store_factory, n, attempt):
    """n threads, each with its own store object, call attempt(store, i) at the same moment."""
    barrier, outcomes = threading.Barrier(n), []

    def run(i):
        store = store_factory()
        barrier.wait(30)
        try:
            outcomes.append(attempt(store, i))
        except (ActiveJobsQuotaExceeded, StorageQuotaExceeded) as exc:
            outcomes.append(exc)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return outcomes


def test_20_concurrent_submissions_against_a_quota_of_3_create_exactly_3(store_factory):
    outcomes = _race(store_factory, 20, lambda store, i: job_of(store, "a", tag=i, owner="key-a",
                                                                max_active_jobs=3))
    refused = [o for o in outcomes if isinstance(o, ActiveJobsQuotaExceeded)]
    assert len(outcomes) == 20 and len(refused) == 17
    assert all(o.limit == 3 and o.used == 3 for o in refused)
    store = store_factory()
    assert len(store.list_jobs(tenant="a")[0]) == 3
    # another key of the same tenant has a quota of its own; a finished job frees a slot
    job_of(store, "a", owner="key-b", max_active_jobs=1)
    finish(store, claim(store))
    job_of(store, "a", tag=99, owner="key-a", max_active_jobs=3)
    with pytest.raises(ActiveJobsQuotaExceeded):
        job_of(store, "a", tag=100, owner="key-a", max_active_jobs=3)


def test_an_idempotent_replay_is_answered_even_at_quota(store):
    first, _ = store.create_job(SPEC, param_count=1, epochs=1, steps=1, idempotency_key="k",
                                request_hash="h", tenant="a", owner="o", max_active_jobs=1)
    again, created = store.create_job(SPEC, param_count=1, epochs=1, steps=1, idempotency_key="k",
                                      request_hash="h", tenant="a", owner="o", max_active_jobs=1)
    assert again.id == first.id and not created


def test_concurrent_uploads_never_exceed_the_storage_quota(store_factory):
    outcomes = _race(store_factory, 10, lambda store, i: store.create_dataset(
        name=str(i), blob=b"x" * 100, n_rows=1, n_features=1, n_classes=1, tenant="a",
        owner="key-a", max_bytes=350))
    stored = [o for o in outcomes if not isinstance(o, Exception)]
    assert len(stored) == 3 and len(outcomes) == 10
    refusal = next(o for o in outcomes if isinstance(o, StorageQuotaExceeded))
    assert "quota is 350 bytes" in str(refusal) and refusal.used == 300
    assert sum(d.size_bytes for d in store_factory().list_datasets(tenant="a")) == 300


# ---- fair claims ----
def test_a_tenant_with_many_queued_jobs_cannot_starve_another(store):
    a_jobs = [job_of(store, "a", tag=i).id for i in range(20)]
    running_a = claim(store, "w1")
    assert running_a.id == a_jobs[0]
    b_job = job_of(store, "b").id
    assert claim(store, "w2").id == b_job        # b runs nothing, a runs one
    assert claim(store, "w3").id == a_jobs[1]    # one each: a's last claim is the older


def test_ties_on_running_jobs_go_to_the_tenant_whose_last_claim_is_oldest(store):
    a1, a2 = job_of(store, "a", tag=1), job_of(store, "a", tag=2)
    b1, b2 = job_of(store, "b", tag=1), job_of(store, "b", tag=2)
    first = claim(store)
    assert first.id == a1.id                     # nobody ever ran: the oldest job
    finish(store, first)
    second = claim(store)
    assert second.id == b1.id                    # none running; b never ran
    finish(store, second)
    third = claim(store)
    assert third.id == a2.id                     # none running; a ran longer ago than b
    finish(store, third)
    assert claim(store).id == b2.id


def test_higher_priority_goes_first_whoever_runs_more(store):
    low = [job_of(store, "a", tag=i).id for i in range(3)]
    claim(store, "w0")
    urgent = job_of(store, "a", tag=9, priority=5)
    later = job_of(store, "b", tag=1, priority=-1)
    assert urgent.priority == 5
    got = claim(store, "w1")
    assert got.id == urgent.id and got.priority == 5   # a runs one already: priority first
    assert [claim(store, f"w{i}").id for i in range(2, 4)] == low[1:]
    assert claim(store, "w4").id == later.id
    assert store.claim("w5", 60) is None
