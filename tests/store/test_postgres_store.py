"""PostgreSQL-only behaviour: concurrent migrations, lost connections, fork safety, retry recovery."""
import multiprocessing as mp
import os
import time
from contextlib import contextmanager

import pytest

from service.jobs import Lease, LeaseState, Status
from tests.pg import create_schema, postgres_url

psycopg = pytest.importorskip("psycopg")
import psycopg.types.json  # noqa: E402  (Jsonb, for writing a version-1 row by hand)


@pytest.fixture
def pg_url():
    """A URL whose search_path is a fresh, empty schema (dropped afterwards)."""
    url, drop = create_schema(postgres_url("the PostgreSQL store tests"))
    yield url
    drop()


@pytest.fixture
def make_store(pg_url):
    """Opens PostgresStores on the test schema with a short retry budget; closes them afterwards."""
    from service.jobs.postgres import PostgresStore
    opened = []

    def make(**kwargs):
        store = PostgresStore(pg_url, **{"retry_seconds": 5.0, **kwargs})
        opened.append(store)
        return store
    yield make
    for store in opened:
        store.close()


def _terminate_my_connections(pg_url: str) -> int:
    """pg_terminate_backend every connection this test process's stores opened."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        return conn.execute(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s",
            (f"needle-service[{os.getpid()}]",)).fetchone()[0]


def _migrate_in_child(pg_url: str, start) -> None:
    from service.jobs.postgres import PostgresStore
    store = PostgresStore(pg_url)
    start.wait(10)
    store.migrate()
    store.close()


def test_concurrent_migrations_from_several_processes_apply_once(pg_url, make_store):
    ctx = mp.get_context("fork")
    start = ctx.Event()
    procs = [ctx.Process(target=_migrate_in_child, args=(pg_url, start)) for _ in range(4)]
    for proc in procs:
        proc.start()
    start.set()
    for proc in procs:
        proc.join(30)
        assert proc.exitcode == 0
    from service.jobs.postgres import MIGRATIONS
    store = make_store()
    assert store.schema_version() == len(MIGRATIONS)
    with psycopg.connect(pg_url) as conn:
        versions = [v for (v,) in conn.execute("SELECT version FROM schema_version ORDER BY version")]
    assert versions == list(range(1, len(MIGRATIONS) + 1))  # each applied exactly once
    store.migrate()  # idempotent once more
    assert store.schema_version() == len(MIGRATIONS)


def test_upgrade_from_version_1_keeps_full_specs_out_of_the_jobs_row(pg_url, make_store):
    from service.jobs.postgres import MIGRATIONS
    spec = {"data": {"type": "inline", "x": [[0.5, 1.5], [2.0, 3.0]], "y": [0, 1]}}
    with psycopg.connect(pg_url, autocommit=True) as conn:  # a database left by version 1
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        for statement in MIGRATIONS[0]:
            conn.execute(statement)
        conn.execute("INSERT INTO schema_version VALUES (1)")
        conn.execute("INSERT INTO jobs (id, status, spec, param_count, created_at) "
                     "VALUES ('old', 'queued', %s, 1, 0)", (psycopg.types.json.Jsonb(spec),))
    store = make_store()
    store.migrate()
    assert store.get_job("old").spec == spec
    brief = store.get_job("old", with_spec=False)
    assert brief.spec is None and brief.brief["data"] == {"type": "inline", "n_rows": 2, "n_features": 2}
    assert store.claim("w1", 30).spec == spec


def test_terminated_connection_is_replaced_and_the_call_succeeds(pg_url, make_store):
    store = make_store()
    store.migrate()
    job, _ = store.create_job({"a": 1}, param_count=1, epochs=1, steps=1)
    assert _terminate_my_connections(pg_url) >= 1
    assert store.get_job(job.id).status == Status.queued  # reconnects behind the scenes
    assert _terminate_my_connections(pg_url) >= 1
    assert store.ping() is True  # a dead pooled connection is not a dead database
    claimed = store.claim("w1", lease_seconds=30)
    assert _terminate_my_connections(pg_url) >= 1
    lease = Lease(claimed.id, "w1", claimed.attempt)
    assert store.heartbeat(lease, 30) == LeaseState.ok
    assert store.finish(lease, Status.succeeded, result={"ok": 1}, parameters=b"p")
    assert store.get_parameters(job.id) == b"p"


def test_unreachable_server_gives_up_after_the_retry_budget(make_store):
    from service.jobs.postgres import PostgresStore
    store = PostgresStore("postgresql://postgres@127.0.0.1:1/none", retry_seconds=0.3, connect_timeout=1)
    assert store.ping() is False
    with pytest.raises(psycopg.OperationalError):
        store.get_job("x")


def _use_inherited_store(store, job_id: str, results) -> None:
    results.put(store.get_job(job_id).id)
    store.close()


def test_a_forked_child_opens_its_own_connections(make_store):
    store = make_store()
    store.migrate()
    job, _ = store.create_job({"a": 1}, param_count=1, epochs=1, steps=1)
    ctx = mp.get_context("fork")
    results = ctx.Queue()
    child = ctx.Process(target=_use_inherited_store, args=(store, job.id, results))
    child.start()
    assert results.get(timeout=30) == job.id
    child.join(10)
    assert child.exitcode == 0
    # The parent's pooled connection was neither used nor hung up by the child.
    assert store.get_job(job.id).id == job.id


@contextmanager
def _lose_the_first_reply(store):
    """Make the first borrowed connection fail AFTER its operation committed (a lost reply)."""
    real = store._pool.connection
    calls = {"n": 0}

    @contextmanager
    def flaky():
        with real() as conn:
            yield conn
        calls["n"] += 1
        if calls["n"] == 1:
            raise psycopg.OperationalError("simulated: server closed the connection unexpectedly")
    store._pool.connection = flaky
    try:
        yield calls
    finally:
        store._pool.connection = real


def test_retries_after_a_lost_reply_do_not_duplicate_work(make_store):
    store = make_store()
    store.migrate()
    with _lose_the_first_reply(store):
        job, created = store.create_job({"a": 1}, param_count=1, epochs=1, steps=2)
    assert created and [j.id for j in store.list_jobs()[0]] == [job.id]

    with _lose_the_first_reply(store):
        claimed = store.claim("w1", lease_seconds=30)
    assert claimed.id == job.id and claimed.attempt == 1

    lease = Lease(job.id, "w1", 1)
    with _lose_the_first_reply(store):
        assert store.add_metrics(lease, [("step", 0, 1, {"loss": 1.5}), ("step", 0, 2, {"loss": 1.0})])
    assert [p.step for p in store.get_metrics(job.id)] == [1, 2]

    with _lose_the_first_reply(store):
        assert store.finish(lease, Status.succeeded, result={"steps": 2}, parameters=b"p")
    assert store.get_job(job.id).status == Status.succeeded


def test_non_finite_metric_values_round_trip(make_store):
    store = make_store()
    store.migrate()
    job, _ = store.create_job({"a": 1}, param_count=1, epochs=1, steps=1)
    lease = Lease(job.id, "w1", store.claim("w1", 30).attempt)
    assert store.add_metrics(lease, [("step", 0, 1, {"loss": float("inf")})])
    assert store.finish(lease, Status.failed, error="loss became inf at step 1",
                        result={"train_loss": float("nan")})
    assert store.get_metrics(job.id)[0].values == {"loss": float("inf")}
    assert store.get_job(job.id).result["train_loss"] != store.get_job(job.id).result["train_loss"]  # NaN


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_open_store_picks_postgres_for_both_url_schemes(pg_url, scheme):
    from service.jobs.backends import open_store
    from service.jobs.postgres import MIGRATIONS, PostgresStore
    from service.settings import Settings
    store = open_store(Settings(database_url=scheme + pg_url[pg_url.index("://"):]))
    try:
        assert isinstance(store, PostgresStore)
        assert store.schema_version() == len(MIGRATIONS)  # open_store migrates
    finally:
        store.close()


def test_wait_for_job_sleeps_until_a_job_is_created_or_released(pg_url, make_store):
    import threading
    waiter, submitter = make_store(), make_store()
    waiter.migrate()
    started = time.monotonic()
    assert waiter.wait_for_job(0.2) is False  # nothing happened: times out
    assert time.monotonic() - started >= 0.2

    timer = threading.Timer(0.2, lambda: submitter.create_job({"a": 1}, param_count=1, epochs=1, steps=1))
    timer.start()
    started = time.monotonic()
    assert waiter.wait_for_job(10) is True
    assert time.monotonic() - started < 5  # woken by the notification, not by the timeout
    timer.join()

    job = waiter.claim("w1", 30)
    threading.Timer(0.1, lambda: submitter.release(Lease(job.id, "w1", job.attempt))).start()
    assert waiter.wait_for_job(10) is True
    assert waiter.claim("w2", 30).attempt == 2

    # A killed listener is noticed without an exception, and the next wait listens again.
    assert _terminate_my_connections(pg_url) >= 1
    assert waiter.wait_for_job(0.3) is False
    threading.Timer(0.2, lambda: submitter.create_job({"b": 2}, param_count=1, epochs=1, steps=1)).start()
    assert waiter.wait_for_job(10) is True
