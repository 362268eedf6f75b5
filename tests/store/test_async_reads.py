"""The coroutine twins of the hot reads (JobStore.coroutine_of): same answers as the blocking reads
on every backend that has them (PostgreSQL), a lost connection replaced, connections per loop."""
import asyncio

import pytest

from service.jobs import NotFound

from .test_contract import claim_lease, make_job
from .test_postgres_store import _terminate_my_connections, make_store, pg_url  # noqa: F401


def _twins(store):
    return {name: store.coroutine_of(getattr(store, name))
            for name in ("get_job", "watch_marks", "get_metrics")}


def test_twins_answer_as_the_blocking_reads(store):
    twins = _twins(store)
    if type(store).__name__ == "SQLiteStore":  # local reads: the API calls them inline
        assert twins == dict.fromkeys(twins) and store.local_reads
        return
    assert all(twins.values())
    job = make_job(store)
    _, lease = claim_lease(store)
    assert store.add_metrics(lease, [("step", 0, i, {"loss": 1.0 / (i + 1)}) for i in range(5)])
    after = store.get_metrics(job.id)[1].seq

    async def both():
        return [(await twins["get_job"](job.id, with_spec=False), store.get_job(job.id, with_spec=False)),
                (await twins["get_job"](job.id), store.get_job(job.id)),
                (await twins["watch_marks"]([job.id, "nope"]), store.watch_marks([job.id, "nope"])),
                (await twins["watch_marks"]([]), {}),
                (await twins["get_metrics"](job.id, after=after, limit=2),
                 store.get_metrics(job.id, after=after, limit=2)),
                (await twins["get_metrics"](job.id, tenant=job.tenant), store.get_metrics(job.id))]
    for twin_answer, blocking_answer in asyncio.run(both()):
        assert twin_answer == blocking_answer
    assert store.coroutine_of(store.list_jobs) is None  # only the hot reads have twins
    other = type(store).__new__(type(store))
    assert store.coroutine_of(other.get_job) is None  # another store's method is not ours


def test_twins_raise_not_found_and_keep_their_connection(make_store):  # noqa: F811
    store = make_store()
    store.migrate()
    job = make_job(store)

    async def reads():
        for read in (lambda: store.get_job_async("missing"),
                     lambda: store.get_metrics_async("missing"),
                     lambda: store.get_metrics_async(job.id, tenant="someone-else")):
            with pytest.raises(NotFound):
                await read()
        return await store.get_job_async(job.id)
    assert asyncio.run(reads()).id == job.id
    assert len(store._async_reads._idle) == 1  # the 404s did not throw the connection away


def test_a_terminated_connection_is_replaced(pg_url, make_store):  # noqa: F811
    store = make_store()
    store.migrate()
    job, _ = store.create_job({"a": 1}, param_count=1, epochs=1, steps=1)

    async def twice():
        first = await store.get_job_async(job.id)
        assert _terminate_my_connections(pg_url) >= 1
        return first, await store.get_job_async(job.id)  # reconnects behind the scenes
    first, second = asyncio.run(twice())
    assert first == second


def test_each_event_loop_gets_its_own_connections(pg_url, make_store):  # noqa: F811
    store = make_store()
    store.migrate()
    job, _ = store.create_job({"a": 1}, param_count=1, epochs=1, steps=1)

    async def read_and_keep():
        await store.get_job_async(job.id)
        return list(store._async_reads._idle)
    kept = asyncio.run(read_and_keep())
    again = asyncio.run(read_and_keep())  # a new loop: the old loop's connection is closed
    assert kept[0].closed and not again[0].closed and again[0] is not kept[0]
    store.close()
    assert again[0].closed
