"""SQLite-specific behaviour beyond the shared store contract (tests/store)."""
import sqlite3
import threading

import pytest

from service.jobs import Lease, Status
from service.jobs.backends import open_store, sqlite_path_from_url
from service.jobs.sqlite import SQLiteStore
from service.jobs.sqlite_schema import MIGRATIONS
from service.settings import Settings


def test_wal_mode_busy_timeout_and_schema_version(store, tmp_path):
    conn = store._conn()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000
    versions = sqlite3.connect(tmp_path / "jobs.db").execute("SELECT version FROM schema_version").fetchall()
    assert versions == [(v,) for v in range(1, len(MIGRATIONS) + 1)]


def test_concurrent_migrations_apply_once(tmp_path):
    errors = []

    def migrate():
        try:
            SQLiteStore(tmp_path / "race.db").migrate()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=migrate) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    rows = sqlite3.connect(tmp_path / "race.db").execute("SELECT COUNT(*) FROM schema_version").fetchone()
    assert rows == (len(MIGRATIONS),)


def test_per_step_check_and_claim_use_indexes(store):
    conn = store._conn()
    check_plan = " ".join(str(r) for r in conn.execute(
        "EXPLAIN QUERY PLAN SELECT status, worker_id, attempt, cancel_requested FROM jobs WHERE id = ?", ("x",)))
    claim_plan = " ".join(str(r) for r in conn.execute(
        "EXPLAIN QUERY PLAN SELECT seq FROM jobs WHERE status = 'queued' ORDER BY seq LIMIT 1"))
    assert "USING INDEX" in check_plan and "SCAN jobs" not in check_plan
    assert "jobs_status_seq" in claim_plan


def test_each_thread_gets_its_own_connection(store):
    seen = []
    t = threading.Thread(target=lambda: seen.append(store._conn()))
    t.start()
    t.join()
    assert seen[0] is not store._conn()


def test_expired_lease_of_a_cancel_requested_job_ends_cancelled(store):
    job, _ = store.create_job({"k": 1}, param_count=1, epochs=1, steps=1)
    claimed = store.claim("w1", -1)
    store.save_checkpoint(Lease(job.id, "w1", claimed.attempt), b"ckpt")
    store.request_cancel(job.id)
    assert store.expire_leases(max_attempts=3) == 1
    assert store.get_job(job.id).status is Status.cancelled
    assert store.load_checkpoint(job.id) is None


def test_bad_list_cursor_is_a_value_error(store):
    with pytest.raises(ValueError):
        store.list_jobs(cursor="not-a-cursor")


@pytest.mark.parametrize("url,path", [("sqlite:///rel/jobs.db", "rel/jobs.db"),
                                      ("sqlite:////abs/jobs.db", "/abs/jobs.db"),
                                      ("sqlite:plain.db", "plain.db")])
def test_sqlite_urls(url, path):
    assert str(sqlite_path_from_url(url)) == path


def test_open_store_defaults_to_sqlite_in_the_data_dir(tmp_path):
    store = open_store(Settings(data_dir=tmp_path / "d", database_url=None))
    try:
        assert isinstance(store, SQLiteStore) and store.path == tmp_path / "d" / "jobs.db" and store.ping()
    finally:
        store.close()
    explicit = open_store(Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path}/other.db"))
    assert explicit.path == tmp_path / "other.db"
    explicit.close()
    with pytest.raises(ValueError, match="unsupported"):
        open_store(Settings(data_dir=tmp_path, database_url="mysql://x"))
