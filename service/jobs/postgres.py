"""PostgreSQL job store: the jobs table is the queue, claimed with FOR UPDATE SKIP LOCKED.

Many API and worker processes (on many hosts) share one database. Every public method borrows a
connection from a small per-process pool (postgres_pool: fork safety, reconnect with backoff);
operations that are not naturally idempotent check on retry whether their first try already
committed. The schema and its migrations live in postgres_schema.
"""
import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from .briefs import brief_spec
from .postgres_async import AsyncReadPool
from .postgres_pool import NOT_RECOVERED, ConnectionPool, run_with_retry
from .postgres_reads import (JOB_COLUMNS, job_from_row, read_job, read_marks, read_metrics, run_steps,
                             scope)
from .postgres_schema import MIGRATIONS, applied_version, apply_migrations
from . import sweep_sql
from .postgres_events import ChangeListener
from .records import (DEFAULT_TENANT, ApiKey, Dataset, Job, JobMark, JobStats, Lease, MetricCurve,
                      MetricPoint, PruneDecision, Status, Sweep, TrialPlan)
from .store import Conflict, JobStore, LeaseState, NotFound, check_active_jobs, check_storage
from .watch_sql import curve_from_rows, stats_from_rows, stats_query

__all__ = ["MIGRATIONS", "PostgresStore"]
T = TypeVar("T")

DATASET_COLUMNS = "id, name, n_rows, n_features, n_classes, size_bytes, created_at, tenant, owner"
KEY_COLUMNS = ("name, tenant, admin, max_active_jobs, max_dataset_bytes, max_priority, rate_limit, "
               "max_job_cost, created_at, revoked_at")
# Serialises one key's quota-checked inserts (count, then insert) across processes and hosts.
QUOTA_LOCK = ("SELECT pg_advisory_xact_lock(hashtext('needle-service:quota:' "
              "|| COALESCE(current_schema(), '') || ':' || COALESCE(%s, '')))")
# One statement (see JobStore.claim). `keys` walks the (priority, tenant) pairs of queued jobs
# through the jobs_queued_groups index (a skip scan: one probe per pair, not a pass over every
# queued row). `groups` holds each pair and
# the tenant's figures (indexed lookups, one per group); sorted in the fair order, each group
# offers its oldest unlocked job, and the first group that has one wins. So a claim touches the
# queue's groups, not every queued row, and SKIP LOCKED passes over jobs other claimers hold.
FAIR_CLAIM = f"""
    WITH RECURSIVE keys AS (  -- DISTINCT (priority, tenant) of queued jobs, one index probe each
        (SELECT priority, tenant FROM jobs WHERE status = 'queued' ORDER BY priority, tenant LIMIT 1)
        UNION ALL
        SELECT n.priority, n.tenant FROM keys k CROSS JOIN LATERAL (
            SELECT priority, tenant FROM jobs
            WHERE status = 'queued' AND (priority, tenant) > (k.priority, k.tenant)
            ORDER BY priority, tenant LIMIT 1) n),
    groups AS MATERIALIZED (
        SELECT g.priority, g.tenant,
               (SELECT COUNT(*) FROM jobs r WHERE r.status = 'running' AND r.tenant = g.tenant) AS running,
               (SELECT MAX(c.claimed_at) FROM jobs c WHERE c.tenant = g.tenant) AS last_claim
        FROM keys g),
    j AS (
        UPDATE jobs SET status = 'running', worker_id = %(worker)s, attempt = attempt + 1,
               lease_expires_at = %(until)s, started_at = COALESCE(started_at, %(now)s),
               claimed_at = %(now)s
        WHERE id = (SELECT pick.id FROM (SELECT * FROM groups
                                         ORDER BY priority DESC, running, last_claim NULLS FIRST,
                                                  tenant) g
                    CROSS JOIN LATERAL (
                        SELECT q.id FROM jobs q
                        WHERE q.status = 'queued' AND q.priority = g.priority AND q.tenant = g.tenant
                        ORDER BY q.seq FOR UPDATE SKIP LOCKED LIMIT 1) pick
                    LIMIT 1)
        RETURNING {JOB_COLUMNS})
    SELECT {JOB_COLUMNS}, (SELECT full_spec FROM job_specs WHERE job_id = j.id) FROM j"""
FENCE = "id = %(job_id)s AND status = 'running' AND worker_id = %(worker_id)s AND attempt = %(attempt)s"
TERMINAL = tuple(s.value for s in Status if s.terminal)
# NOTIFYed when a job becomes claimable (see wait_for_job); one channel per schema, because
# channels are database-wide and several deployments (or tests) may share one database.
NOTIFY_JOBS = "SELECT pg_notify('needle_jobs:' || COALESCE(current_schema(), ''), %s)"


def _dataset_from_row(row: tuple) -> Dataset:
    """Build a Dataset from a row selected with DATASET_COLUMNS."""
    dataset_id, name, n_rows, n_features, n_classes, size_bytes, created_at, tenant, owner = row
    return Dataset(id=dataset_id, name=name, n_rows=n_rows, n_features=n_features,
                   n_classes=n_classes, size_bytes=size_bytes, created_at=created_at,
                   tenant=tenant, owner=owner)


def _key_from_row(row: tuple) -> ApiKey:
    """Build an ApiKey from a row selected with KEY_COLUMNS."""
    return ApiKey(*row)


class _Db(sweep_sql.Db):
    """sweep_sql over one PostgreSQL connection inside a transaction (qmark SQL -> %s)."""

    def __init__(self, conn: psycopg.Connection):
        self.conn = conn

    def all(self, sql: str, args: tuple = ()) -> list[tuple]:
        cursor = self.conn.execute(sql.replace("?", "%s"), args)
        return cursor.fetchall() if cursor.description is not None else []

    def run(self, sql: str, args: tuple = ()) -> int:
        return self.conn.execute(sql.replace("?", "%s"), args).rowcount

    def json_param(self, value) -> Jsonb:
        return Jsonb(value)

    def lock_sweep(self, sweep_id: str) -> str | None:
        row = self.conn.execute("SELECT tenant FROM sweeps WHERE id = %s FOR UPDATE",
                                (sweep_id,)).fetchone()
        return None if row is None else row[0]

    def active_jobs(self, owner: str | None) -> int:
        self.conn.execute(QUOTA_LOCK, (owner,))  # the lock create_job's quota check takes
        return self.conn.execute("""SELECT COUNT(*) FROM jobs WHERE owner IS NOT DISTINCT FROM %s
                                    AND status IN ('queued', 'running')""", (owner,)).fetchone()[0]

    def jobs(self, where: str, args: tuple = ()) -> list[Job]:
        return [job_from_row(row) for row in self.all(f"SELECT {JOB_COLUMNS} FROM jobs WHERE {where}", args)]

    def brief(self, spec: dict) -> dict:
        return brief_spec(spec)


def _promote(conn: psycopg.Connection, sweep_ids) -> None:
    """Queue the next waiting trials of these sweeps (each locked first), waking idle workers."""
    db = _Db(conn)
    if sum(sweep_sql.promote_waiting(db, sweep_id) for sweep_id in sorted(set(sweep_ids) - {None})):
        conn.execute(NOTIFY_JOBS, ("promoted",))


def _fence(lease: Lease, **extra: Any) -> dict[str, Any]:
    """Query parameters for the FENCE condition (plus any extra named parameters)."""
    return {"job_id": lease.job_id, "worker_id": lease.worker_id, "attempt": lease.attempt, **extra}


class PostgresStore(JobStore):
    """JobStore on PostgreSQL (psycopg 3), safe for many processes and hosts at once."""

    def __init__(self, url: str, *, pool_size: int = 8, retry_seconds: float = 30.0,
                 connect_timeout: float = 5.0):
        self._pool = ConnectionPool(url, pool_size, connect_timeout)
        self._async_reads = AsyncReadPool(url, pool_size, connect_timeout, retry_seconds)
        self._retry_seconds = retry_seconds
        self._listen_conn: psycopg.Connection | None = None   # see wait_for_job
        self._listen_pid = 0

    # ---- plumbing ----
    def coroutine_of(self, read: Callable) -> Callable | None:
        """The event loop's twins of the reads the API makes on every poll and stream change:
        they wait on their sockets in the loop (postgres_async.py) instead of on a threadpool
        thread that must win the GIL back from the busy loop."""
        if getattr(read, "__self__", None) is not self:
            return None
        return {"get_job": self.get_job_async, "get_metrics": self.get_metrics_async,
                "watch_marks": self.watch_marks_async}.get(read.__name__)

    def _run(self, op: Callable[[psycopg.Connection], T],
             recover: Callable[[psycopg.Connection], Any] | None = None) -> T:
        """Run op on a pooled connection, retrying lost connections (see run_with_retry)."""
        return run_with_retry(self._pool, self._retry_seconds, op, recover)

    @staticmethod
    def _fetch_job(conn: psycopg.Connection, job_id: str, *, lock: bool = False,
                   with_spec: bool = False, tenant: str | None = None) -> Job:
        return run_steps(conn, read_job(job_id, lock=lock, with_spec=with_spec, tenant=tenant))

    # ---- lifecycle ----
    def migrate(self) -> None:
        """Create or upgrade the schema under an advisory lock (several processes may start at once)."""
        self._run(apply_migrations)

    def schema_version(self) -> int:
        """The applied schema version (0 before migrate)."""
        return self._run(applied_version)

    def close(self) -> None:
        """Close this process's idle connections (and its listener)."""
        self._close_listener()
        self._pool.close()
        self._async_reads.close()

    def ping(self) -> bool:
        """True when the database answers. No backoff (readiness must answer quickly), but a
        second try on a fresh connection, so a pooled connection that died idle (database
        restart) does not report the database down."""
        for _ in range(2):
            try:
                with self._pool.connection() as conn:
                    conn.execute("SELECT 1")
                return True
            except psycopg.Error:
                continue
        return False

    # ---- jobs: API side ----
    def create_job(self, spec: dict, *, param_count: int, epochs: int, steps: int,
                   idempotency_key: str | None = None, request_hash: str | None = None,
                   tenant: str = DEFAULT_TENANT, owner: str | None = None, priority: int = 0,
                   max_active_jobs: int | None = None) -> tuple[Job, bool]:
        """Insert a queued job, or return the one already made with this idempotency key. A quota
        check takes a transaction-scoped advisory lock per owner, so counting and inserting are
        one step for concurrent submissions from any number of processes."""
        job_id = uuid.uuid4().hex  # chosen once, so a retried insert cannot make a second job
        params = {"id": job_id, "brief": Jsonb(brief_spec(spec)), "full": Jsonb(spec),
                  "param_count": param_count, "now": time.time(), "epochs": epochs, "steps": steps,
                  "key": idempotency_key, "hash": request_hash, "tenant": tenant, "owner": owner,
                  "priority": priority}

        def op(conn: psycopg.Connection) -> tuple[Job, bool]:
            if max_active_jobs is not None:
                earlier = self._quota_checked(conn, job_id, tenant, owner, idempotency_key,
                                              request_hash, max_active_jobs)
                if earlier is not None:
                    return replace(earlier[0], spec=spec), earlier[1]
            row = conn.execute(
                f"""INSERT INTO jobs (id, status, spec, param_count, created_at, epochs, steps,
                                      idempotency_key, request_hash, tenant, owner, priority)
                    VALUES (%(id)s, 'queued', %(brief)s, %(param_count)s, %(now)s, %(epochs)s,
                            %(steps)s, %(key)s, %(hash)s, %(tenant)s, %(owner)s, %(priority)s)
                    ON CONFLICT DO NOTHING RETURNING {JOB_COLUMNS}""", params).fetchone()
            if row is None:
                job, created = self._existing_for_key(conn, job_id, tenant, idempotency_key,
                                                      request_hash)
            else:
                conn.execute("INSERT INTO job_specs (job_id, full_spec) VALUES (%(id)s, %(full)s)", params)
                conn.execute("UPDATE jobs SET name = %s WHERE id = %s", (spec.get("name"), job_id))
                for key, value in (spec.get("tags") or {}).items():
                    conn.execute("INSERT INTO job_tags (job_id, key, value) VALUES (%s, %s, %s)",
                                 (job_id, key, value))
                conn.execute(NOTIFY_JOBS, (job_id,))  # delivered at commit
                job, created = job_from_row(row), True
            # The caller's spec as is (same key and hash means the same spec): parsing megabytes
            # of inline data back would cost more than the insert.
            return replace(job, spec=spec), created

        def op_in_transaction(conn: psycopg.Connection) -> tuple[Job, bool]:
            with conn.transaction():
                return op(conn)
        return self._run(op_in_transaction)

    def _quota_checked(self, conn: psycopg.Connection, job_id: str, tenant: str,
                       owner: str | None, key: str | None, request_hash: str | None,
                       limit: int) -> tuple[Job, bool] | None:
        """Under the owner's quota lock: the job an earlier try or request made (which a quota
        never refuses), else None once the owner is below its limit (or the quota error)."""
        conn.execute(QUOTA_LOCK, (owner,))
        mine = conn.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = %s", (job_id,)).fetchone()
        if mine is not None:
            return job_from_row(mine), True
        if key is not None and conn.execute("SELECT 1 FROM jobs WHERE tenant = %s AND idempotency_key = %s",
                                            (tenant, key)).fetchone() is not None:
            return self._existing_for_key(conn, job_id, tenant, key, request_hash)
        used = conn.execute("""SELECT COUNT(*) FROM jobs WHERE owner IS NOT DISTINCT FROM %s
                               AND status IN ('queued', 'running')""", (owner,)).fetchone()[0]
        check_active_jobs(owner, used, limit)
        return None

    def _existing_for_key(self, conn: psycopg.Connection, job_id: str, tenant: str, key: str | None,
                          request_hash: str | None) -> tuple[Job, bool]:
        """The insert hit a unique key: our own earlier try (by id) or an earlier request (by key)."""
        row = conn.execute(f"SELECT {JOB_COLUMNS}, request_hash FROM jobs WHERE id = %s", (job_id,)).fetchone()
        if row is not None:
            return job_from_row(row[:-1]), True
        row = conn.execute(f"""SELECT {JOB_COLUMNS}, request_hash FROM jobs
                               WHERE tenant = %s AND idempotency_key = %s""", (tenant, key)).fetchone()
        if row is None:  # deleted between our insert and this read; a retry inserts afresh
            raise psycopg.OperationalError("idempotency key vanished; retrying")
        if row[-1] != request_hash:
            raise Conflict(f"idempotency key {key!r} was already used with a different request")
        return job_from_row(row[:-1]), False

    def get_job(self, job_id: str, *, with_spec: bool = True, tenant: str | None = None) -> Job:
        """The job, or NotFound; with_spec=False skips the full spec (Job.brief is enough to poll)."""
        return self._run(lambda conn: self._fetch_job(conn, job_id, with_spec=with_spec, tenant=tenant))

    async def get_job_async(self, job_id: str, *, with_spec: bool = True,
                            tenant: str | None = None) -> Job:
        """get_job on the running event loop (see coroutine_of)."""
        return await self._async_reads.run(lambda: read_job(job_id, with_spec=with_spec, tenant=tenant))

    def list_jobs(self, *, status: Status | None = None, limit: int = 50,
                  cursor: str | None = None, tenant: str | None = None,
                  tags: list[tuple[str, str]] | None = None,
                  name_prefix: str | None = None,
                  sweep_id: str | None = None) -> tuple[list[Job], str | None]:
        """Newest first; the cursor is the seq of the last job on the previous page."""
        before = _parse_cursor(cursor)
        params = {"status": None if status is None else Status(status).value, "before": before,
                  "limit": limit + 1, "tenant": tenant, "prefix": name_prefix,
                  "prefix_len": None if name_prefix is None else len(name_prefix),
                  "sweep": sweep_id}
        tag_clauses = ""
        for index, (key, value) in enumerate(tags or []):
            tag_clauses += (f" AND EXISTS (SELECT 1 FROM job_tags t WHERE t.job_id = jobs.id "
                            f"AND t.key = %(tk{index})s AND t.value = %(tv{index})s)")
            params[f"tk{index}"], params[f"tv{index}"] = key, value

        def op(conn: psycopg.Connection) -> tuple[list[Job], str | None]:
            rows = conn.execute(
                f"""SELECT {JOB_COLUMNS}, seq FROM jobs
                    WHERE (%(status)s::text IS NULL OR status = %(status)s)
                      AND (%(before)s::bigint IS NULL OR seq < %(before)s){scope(tenant)}
                      AND (%(prefix)s::text IS NULL OR substr(name, 1, %(prefix_len)s::int) = %(prefix)s)
                      AND (%(sweep)s::text IS NULL OR sweep_id = %(sweep)s)
                      {tag_clauses}
                    ORDER BY seq DESC LIMIT %(limit)s""", params).fetchall()
            page = rows[:limit]
            next_cursor = str(page[-1][-1]) if len(rows) > limit else None
            return [job_from_row(row[:-1]) for row in page], next_cursor
        return self._run(op)

    def request_cancel(self, job_id: str, *, tenant: str | None = None) -> Job:
        """Queued -> cancelled; running -> cancel_requested; terminal -> Conflict."""
        def op(conn: psycopg.Connection) -> Job:
            with conn.transaction():
                sweep_id = sweep_sql.lock_trial_sweep(_Db(conn), job_id)  # the sweep before the job
                job = self._fetch_job(conn, job_id, lock=True, tenant=tenant)
                if job.status in (Status.queued, Status.waiting):
                    conn.execute("""UPDATE jobs SET status = 'cancelled', cancel_requested = TRUE,
                                    finished_at = %s WHERE id = %s""", (time.time(), job_id))
                    conn.execute("DELETE FROM checkpoints WHERE job_id = %s", (job_id,))
                    _promote(conn, [sweep_id])
                elif job.status == Status.running:
                    conn.execute("UPDATE jobs SET cancel_requested = TRUE WHERE id = %s", (job_id,))
                else:
                    raise Conflict(f"job {job_id} is already {job.status.value}")
                return self._fetch_job(conn, job_id)

        def recover(conn: psycopg.Connection) -> Any:
            job = self._fetch_job(conn, job_id, tenant=tenant)
            return job if job.cancel_requested else NOT_RECOVERED
        return self._run(op, recover)

    def delete_job(self, job_id: str, *, tenant: str | None = None) -> None:
        """Remove a terminal job; metrics, checkpoint and parameters go with it (ON DELETE CASCADE)."""
        def op(conn: psycopg.Connection) -> None:
            with conn.transaction():
                job = self._fetch_job(conn, job_id, lock=True, tenant=tenant)
                if not job.status.terminal:
                    raise Conflict(f"job {job_id} is {job.status.value}; cancel it first")
                sweep_sql.ensure_not_trial(_Db(conn), job_id)
                conn.execute("DELETE FROM jobs WHERE id = %s", (job_id,))

        def recover(conn: psycopg.Connection) -> Any:
            gone = conn.execute("SELECT 1 FROM jobs WHERE id = %s", (job_id,)).fetchone() is None
            return None if gone else NOT_RECOVERED
        self._run(op, recover)

    def get_metrics(self, job_id: str, *, after: int = 0, limit: int = 10_000,
                    tenant: str | None = None) -> list[MetricPoint]:
        """Points with seq > after, in seq order."""
        return self._run(lambda conn: run_steps(conn, read_metrics(job_id, after=after, limit=limit,
                                                                   tenant=tenant)))

    async def get_metrics_async(self, job_id: str, *, after: int = 0, limit: int = 10_000,
                                tenant: str | None = None) -> list[MetricPoint]:
        """get_metrics on the running event loop (see coroutine_of)."""
        return await self._async_reads.run(lambda: read_metrics(job_id, after=after, limit=limit,
                                                                tenant=tenant))

    def metric_curve(self, job_id: str, key: str, *, tenant: str | None = None) -> MetricCurve:
        """Step values and epoch points up to the newest seq (seq bounds the two reads)."""
        def op(conn: psycopg.Connection) -> MetricCurve:
            row = conn.execute("SELECT (SELECT MAX(seq) FROM metrics WHERE job_id = j.id) FROM jobs j "
                               f"WHERE j.id = %(id)s{scope(tenant, 'j.tenant')}",
                               {"id": job_id, "tenant": tenant}).fetchone()
            if row is None:
                raise NotFound(f"job {job_id} not found")
            last = row[0] or 0
            steps = conn.execute("""SELECT step, vals FROM metrics WHERE job_id = %s AND kind = 'step'
                                    AND seq <= %s ORDER BY seq""", (job_id, last)).fetchall()
            epochs = conn.execute("""SELECT seq, epoch, step, vals FROM metrics WHERE job_id = %s
                                     AND kind = 'epoch' AND seq <= %s ORDER BY seq""",
                                  (job_id, last)).fetchall()
            return curve_from_rows(key, steps, epochs, last)
        return self._run(op)

    def get_parameters(self, job_id: str, *, tenant: str | None = None) -> bytes | None:
        """The stored trained state, or None."""
        def op(conn: psycopg.Connection) -> bytes | None:
            row = conn.execute(f"""SELECT p.blob FROM parameters p JOIN jobs j ON j.id = p.job_id
                                   WHERE p.job_id = %(id)s{scope(tenant, 'j.tenant')}""",
                               {"id": job_id, "tenant": tenant}).fetchone()
            return None if row is None else bytes(row[0])
        return self._run(op)

    # ---- following jobs and monitoring ----
    def watch_marks(self, job_ids) -> dict[str, JobMark]:
        """Marks of the existing jobs among job_ids, in one query."""
        return self._run(lambda conn: run_steps(conn, read_marks(job_ids)))

    async def watch_marks_async(self, job_ids) -> dict[str, JobMark]:
        """watch_marks on the running event loop (see coroutine_of)."""
        return await self._async_reads.run(lambda: read_marks(job_ids))

    def watch_changes(self, on_change) -> Callable[[], None]:
        """LISTEN on this schema's event channel (the triggers of migration 3 NOTIFY it) on one
        dedicated connection and thread; returns the function that stops it."""
        listener = ChangeListener(self._pool.open_unpooled, on_change)
        listener.start()
        return listener.stop

    def job_stats(self, duration_bounds: tuple[float, ...]) -> JobStats:
        """Counts, durations and steps in one grouped scan."""
        return self._run(lambda conn: stats_from_rows(
            conn.execute(stats_query(duration_bounds)).fetchall()))

    # ---- jobs: worker side ----
    def claim(self, worker_id: str, lease_seconds: float) -> Job | None:
        """Take the next job in the fair order (JobStore.claim) in ONE statement; SKIP LOCKED
        lets claimers pass each other."""
        def op(conn: psycopg.Connection) -> Job | None:
            now = time.time()
            row = conn.execute(FAIR_CLAIM, {"worker": worker_id, "until": now + lease_seconds,
                                            "now": now}).fetchone()
            return None if row is None else job_from_row(row[:-1], row[-1])

        def recover(conn: psycopg.Connection) -> Any:
            # The lost try may have committed: a running job of ours that we never heard of is it.
            row = conn.execute(f"""SELECT id FROM jobs WHERE status = 'running' AND worker_id = %s
                                   ORDER BY started_at DESC LIMIT 1""", (worker_id,)).fetchone()
            return NOT_RECOVERED if row is None else self._fetch_job(conn, row[0], with_spec=True)
        return self._run(op, recover)

    def wait_for_job(self, timeout: float) -> bool:
        """Block until a job may have become claimable (created, released, re-queued) or until
        timeout seconds pass; True when woken by a notification. Lets an idle worker sleep
        instead of polling. Not part of JobStore (yet): nothing calls it today."""
        try:
            listener = self._listener()
            for _ in listener.notifies(timeout=timeout, stop_after=1):
                return True
            return False
        except psycopg.OperationalError:
            self._close_listener()  # the next wait reconnects; meanwhile behave like a poll
            time.sleep(min(timeout, 0.5))
            return False

    def _listener(self) -> psycopg.Connection:
        """This process's LISTENing connection (outside the pool: it must stay on one session)."""
        listener = self._listen_conn
        if listener is None or listener.closed or self._listen_pid != os.getpid():
            listener = self._pool.open_unpooled()
            schema = listener.execute("SELECT COALESCE(current_schema(), '')").fetchone()[0]
            listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(f"needle_jobs:{schema}")))
            self._listen_conn, self._listen_pid = listener, os.getpid()
        return listener

    def _close_listener(self) -> None:
        listener = self._listen_conn
        if listener is not None and self._listen_pid == os.getpid():
            ConnectionPool.close_quietly(listener)
        self._listen_conn = None

    def expire_leases(self, max_attempts: int) -> int:
        """Re-queue (or fail, after max_attempts) running jobs whose lease ran out."""
        return self._run(lambda conn: self._expire(conn, max_attempts, "lease_expires_at < %(now)s"))

    @staticmethod
    def _expire(conn: psycopg.Connection, max_attempts: int, condition: str) -> int:
        params = {"now": time.time(), "max": max_attempts}
        with conn.transaction():
            # the sweeps of the trials about to end first (lock order: sweep, then its trials)
            for (sweep_id,) in conn.execute(
                    f"""SELECT DISTINCT sweep_id FROM jobs WHERE status = 'running' AND {condition}
                        AND sweep_id IS NOT NULL ORDER BY sweep_id""", params).fetchall():
                _Db(conn).lock_sweep(sweep_id)
            # ends: cancelled (a client asked), pruned (its sweep decided), failed (attempts used up)
            stop = "(cancel_requested OR pruned_at IS NOT NULL OR attempt >= %(max)s)"
            rows = conn.execute(
                f"""UPDATE jobs SET
                        status = CASE WHEN cancel_requested THEN 'cancelled'
                                      WHEN pruned_at IS NOT NULL THEN 'pruned'
                                      WHEN attempt >= %(max)s THEN 'failed' ELSE 'queued' END,
                        error = CASE WHEN NOT cancel_requested AND pruned_at IS NULL
                                          AND attempt >= %(max)s
                                     THEN 'worker lost; gave up after ' || attempt || ' attempts'
                                     ELSE error END,
                        finished_at = CASE WHEN {stop} THEN %(now)s ELSE finished_at END,
                        worker_id = CASE WHEN {stop} THEN worker_id END,
                        lease_expires_at = NULL
                    WHERE status = 'running' AND {condition}
                    RETURNING id, status, sweep_id""", params).fetchall()
            ended = [job_id for job_id, status, _ in rows if status != Status.queued.value]
            _promote(conn, [sweep_id for _, status, sweep_id in rows if status != Status.queued.value])
            if ended:
                conn.execute("DELETE FROM checkpoints WHERE job_id = ANY(%s)", (ended,))
            if len(ended) < len(rows):
                conn.execute(NOTIFY_JOBS, ("requeued",))
        return len(rows)

    def heartbeat(self, lease: Lease, lease_seconds: float) -> LeaseState:
        """Renew the lease; report a cancel request or a lost lease."""
        def op(conn: psycopg.Connection) -> LeaseState:
            row = conn.execute(f"""UPDATE jobs SET lease_expires_at = %(until)s WHERE {FENCE}
                                   RETURNING cancel_requested, pruned_at""",
                               _fence(lease, until=time.time() + lease_seconds)).fetchone()
            return _lease_state(row)
        return self._run(op)

    def check(self, lease: Lease) -> LeaseState:
        """Read-only heartbeat: one indexed primary-key lookup."""
        return self._run(lambda conn: _lease_state(
            conn.execute(f"SELECT cancel_requested, pruned_at FROM jobs WHERE {FENCE}",
                         _fence(lease)).fetchone()))

    def set_progress(self, lease: Lease, *, epoch: int, step: int, epochs: int, steps: int) -> bool:
        """Record completed epoch/step counts and totals."""
        params = _fence(lease, epoch=epoch, step=step, epochs=epochs, steps=steps)
        return self._run(lambda conn: conn.execute(
            f"""UPDATE jobs SET epoch = %(epoch)s, step = %(step)s, epochs = %(epochs)s,
                steps = %(steps)s WHERE {FENCE}""", params).rowcount == 1)

    def add_metrics(self, lease: Lease, points: list[tuple[str, int, int, dict]]) -> bool:
        """Append points in order; the job row lock (FOR UPDATE) keeps one writer at a time."""
        rows = [(lease.job_id, kind, epoch, step, json.dumps(values)) for kind, epoch, step, values in points]

        epoch_points = any(kind == "epoch" for kind, _, _, _ in points)

        def op(conn: psycopg.Connection) -> bool:
            with conn.transaction():
                if epoch_points:  # may decide a pruning: the sweep's lock before the job's
                    sweep_sql.lock_trial_sweep(_Db(conn), lease.job_id)
                if not _hold(conn, lease):
                    return False
                if rows:
                    with conn.cursor() as cur:
                        cur.executemany("""INSERT INTO metrics (job_id, kind, epoch, step, vals)
                                           VALUES (%s, %s, %s, %s, %s)""", rows)
                if epoch_points:
                    sweep_sql.record_epochs(_Db(conn), lease.job_id, points)
                return True

        def recover(conn: psycopg.Connection) -> Any:
            # The lost try committed if the batch's last point is the job's last point.
            if not rows:
                return NOT_RECOVERED
            last = conn.execute("""SELECT job_id, kind, epoch, step, vals FROM metrics
                                   WHERE job_id = %s ORDER BY seq DESC LIMIT 1""", (lease.job_id,)).fetchone()
            return True if last is not None and tuple(last) == rows[-1] else NOT_RECOVERED
        return self._run(op, recover)

    def truncate_metrics(self, lease: Lease, *, after_step: int) -> bool:
        """Drop points past the checkpoint's step (the resumed run records them again)."""
        def op(conn: psycopg.Connection) -> bool:
            with conn.transaction():
                if not _hold(conn, lease):
                    return False
                conn.execute("DELETE FROM metrics WHERE job_id = %s AND step > %s", (lease.job_id, after_step))
                return True
        return self._run(op)

    def save_checkpoint(self, lease: Lease, blob: bytes) -> bool:
        """Replace the job's checkpoint (only while the lease is held)."""
        def op(conn: psycopg.Connection) -> bool:
            with conn.transaction():
                if not _hold(conn, lease):
                    return False
                conn.execute("""INSERT INTO checkpoints (job_id, blob, saved_at) VALUES (%s, %s, %s)
                                ON CONFLICT (job_id) DO UPDATE SET blob = EXCLUDED.blob,
                                saved_at = EXCLUDED.saved_at""", (lease.job_id, blob, time.time()))
                return True
        return self._run(op)

    def load_checkpoint(self, job_id: str) -> bytes | None:
        """The last checkpoint, or None."""
        def op(conn: psycopg.Connection) -> bytes | None:
            row = conn.execute("SELECT blob FROM checkpoints WHERE job_id = %s", (job_id,)).fetchone()
            return None if row is None else bytes(row[0])
        return self._run(op)

    def finish(self, lease: Lease, status: Status, *, error: str | None = None,
               result: dict | None = None, parameters: bytes | None = None) -> bool:
        """End the job, store its parameters and drop its checkpoint, in one transaction."""
        status = Status(status)
        if not status.terminal:
            raise ValueError(f"finish needs a terminal status, not {status.value}")
        params = _fence(lease, status=status.value, error=error, now=time.time(),
                        result=None if result is None else json.dumps(result),
                        has_parameters=parameters is not None)

        def op(conn: psycopg.Connection) -> bool:
            with conn.transaction():
                sweep_id = sweep_sql.lock_trial_sweep(_Db(conn), lease.job_id)
                done = conn.execute(
                    f"""UPDATE jobs SET status = %(status)s, error = %(error)s, result = %(result)s,
                        finished_at = %(now)s, lease_expires_at = NULL,
                        has_parameters = %(has_parameters)s WHERE {FENCE}""",
                    params).rowcount == 1
                if not done:
                    return False
                conn.execute("DELETE FROM checkpoints WHERE job_id = %s", (lease.job_id,))
                if parameters is not None:
                    conn.execute("""INSERT INTO parameters (job_id, blob) VALUES (%s, %s)
                                    ON CONFLICT (job_id) DO UPDATE SET blob = EXCLUDED.blob""",
                                 (lease.job_id, parameters))
                _promote(conn, [sweep_id])
                return True

        def recover(conn: psycopg.Connection) -> Any:
            # worker_id and attempt stay on a finished job, so our own committed finish is visible.
            row = conn.execute("""SELECT 1 FROM jobs WHERE id = %s AND status = %s AND worker_id = %s
                                  AND attempt = %s""",
                               (lease.job_id, status.value, lease.worker_id, lease.attempt)).fetchone()
            return True if row is not None else NOT_RECOVERED
        return self._run(op, recover)

    def release(self, lease: Lease) -> bool:
        """Back to queued for another worker; the checkpoint stays, the next claim bumps attempt."""
        def op(conn: psycopg.Connection) -> bool:
            with conn.transaction():
                released = conn.execute(f"""UPDATE jobs SET status = 'queued', worker_id = NULL,
                                            lease_expires_at = NULL WHERE {FENCE}""",
                                        _fence(lease)).rowcount == 1
                if released:
                    conn.execute(NOTIFY_JOBS, (lease.job_id,))
                return released

        def recover(conn: psycopg.Connection) -> Any:
            row = conn.execute("SELECT 1 FROM jobs WHERE id = %s AND status = 'queued' AND attempt = %s",
                               (lease.job_id, lease.attempt)).fetchone()
            return True if row is not None else NOT_RECOVERED
        return self._run(op, recover)

    # ---- sweeps ----
    def _in_transaction(self, op: Callable[["_Db"], T],
                        recover: Callable[[psycopg.Connection], Any] | None = None) -> T:
        def run(conn: psycopg.Connection) -> T:
            with conn.transaction():
                return op(_Db(conn))
        return self._run(run, recover)

    def create_sweep(self, spec: dict, trials: list[TrialPlan], *, tenant: str = DEFAULT_TENANT,
                     owner: str | None = None, max_active_jobs: int | None = None) -> Sweep:
        """Insert the sweep and its trials (the first max_parallel queued) in one transaction,
        the quota count under the owner's advisory lock (as in create_job)."""
        sweep_id = sweep_sql.new_sweep_id()

        def op(db: _Db) -> Sweep:
            sweep_sql.insert_sweep(db, sweep_id, spec, trials, tenant=tenant, owner=owner,
                                   max_active_jobs=max_active_jobs)
            db.conn.execute(NOTIFY_JOBS, (sweep_id,))
            return sweep_sql.get_sweep(db, sweep_id)

        def recover(conn: psycopg.Connection) -> Any:  # the lost try may have committed
            try:
                return sweep_sql.get_sweep(_Db(conn), sweep_id)
            except NotFound:
                return NOT_RECOVERED
        return self._in_transaction(op, recover)

    def get_sweep(self, sweep_id: str, *, tenant: str | None = None) -> Sweep:
        """The sweep with its trial counts, or NotFound."""
        return self._in_transaction(lambda db: sweep_sql.get_sweep(db, sweep_id, tenant))

    def list_sweeps(self, *, limit: int = 50, cursor: str | None = None,
                    tenant: str | None = None) -> tuple[list[Sweep], str | None]:
        """Newest first, with cursor pagination."""
        return self._in_transaction(lambda db: sweep_sql.list_sweeps(db, limit, cursor, tenant))

    def sweep_trials(self, sweep_id: str, *, tenant: str | None = None) -> list[Job]:
        """Trials in trial order."""
        return self._in_transaction(lambda db: sweep_sql.sweep_trials(db, sweep_id, tenant))

    def sweep_decisions(self, sweep_id: str, *, tenant: str | None = None) -> list[PruneDecision]:
        """Early-stopping decisions in the order they were made."""
        return self._in_transaction(lambda db: sweep_sql.decisions(db, sweep_id, tenant))

    def cancel_sweep(self, sweep_id: str, *, tenant: str | None = None) -> Sweep:
        """Cancel every trial that has not ended (running ones at their next step)."""
        def op(db: _Db) -> Sweep:
            sweep_sql.cancel_sweep(db, sweep_id, tenant)
            return sweep_sql.get_sweep(db, sweep_id)

        def recover(conn: psycopg.Connection) -> Any:
            sweep = sweep_sql.get_sweep(_Db(conn), sweep_id, tenant)
            return sweep if sweep.cancel_requested else NOT_RECOVERED
        return self._in_transaction(op, recover)

    def delete_sweep(self, sweep_id: str, *, tenant: str | None = None) -> None:
        """Remove an ended sweep and its trials."""
        def recover(conn: psycopg.Connection) -> Any:
            gone = conn.execute("SELECT 1 FROM sweeps WHERE id = %s", (sweep_id,)).fetchone() is None
            return None if gone else NOT_RECOVERED
        self._in_transaction(lambda db: sweep_sql.delete_sweep(db, sweep_id, tenant), recover)

    # ---- workers registry ----
    def register_worker(self, worker_id: str, info: dict) -> None:
        """Record (or refresh) a live worker."""
        self._run(lambda conn: conn.execute(
            """INSERT INTO workers (worker_id, info, last_seen) VALUES (%s, %s, %s)
               ON CONFLICT (worker_id) DO UPDATE SET info = EXCLUDED.info, last_seen = EXCLUDED.last_seen""",
            (worker_id, Jsonb(info), time.time())))

    def unregister_worker(self, worker_id: str) -> None:
        """Forget a worker that exits cleanly."""
        self._run(lambda conn: conn.execute("DELETE FROM workers WHERE worker_id = %s", (worker_id,)))

    def live_workers(self, within_seconds: float) -> int:
        """Workers seen within the last `within_seconds`."""
        return self._run(lambda conn: conn.execute(
            "SELECT COUNT(*) FROM workers WHERE last_seen >= %s",
            (time.time() - within_seconds,)).fetchone()[0])

    # ---- datasets ----
    def create_dataset(self, *, name: str | None, blob: bytes, n_rows: int, n_features: int,
                       n_classes: int, tenant: str = DEFAULT_TENANT, owner: str | None = None,
                       max_bytes: int | None = None) -> Dataset:
        """Store an .npz blob and its metadata (a quota is checked under the owner's lock)."""
        params = {"id": uuid.uuid4().hex, "name": name, "n_rows": n_rows, "n_features": n_features,
                  "n_classes": n_classes, "size": len(blob), "now": time.time(), "blob": blob,
                  "tenant": tenant, "owner": owner}

        def op(conn: psycopg.Connection) -> Dataset:
            with conn.transaction():
                if max_bytes is not None:
                    conn.execute(QUOTA_LOCK, (owner,))
                    if conn.execute("SELECT 1 FROM datasets WHERE id = %s", (params["id"],)).fetchone():
                        return self._fetch_dataset(conn, params["id"])  # our own earlier try
                    used = conn.execute("""SELECT COALESCE(SUM(size_bytes), 0) FROM datasets
                                           WHERE owner IS NOT DISTINCT FROM %s""", (owner,)).fetchone()[0]
                    check_storage(owner, int(used), len(blob), max_bytes)
                conn.execute("""INSERT INTO datasets (id, name, n_rows, n_features, n_classes, size_bytes,
                                                      created_at, tenant, owner, blob)
                                VALUES (%(id)s, %(name)s, %(n_rows)s, %(n_features)s, %(n_classes)s,
                                        %(size)s, %(now)s, %(tenant)s, %(owner)s, %(blob)s)
                                ON CONFLICT (id) DO NOTHING""", params)
                return self._fetch_dataset(conn, params["id"])
        return self._run(op)

    @staticmethod
    def _fetch_dataset(conn: psycopg.Connection, dataset_id: str, tenant: str | None = None) -> Dataset:
        row = conn.execute(f"SELECT {DATASET_COLUMNS} FROM datasets WHERE id = %(id)s{scope(tenant)}",
                           {"id": dataset_id, "tenant": tenant}).fetchone()
        if row is None:
            raise NotFound(f"dataset {dataset_id} not found")
        return _dataset_from_row(row)

    def get_dataset(self, dataset_id: str, *, tenant: str | None = None) -> Dataset:
        """Metadata, or NotFound."""
        return self._run(lambda conn: self._fetch_dataset(conn, dataset_id, tenant))

    def get_dataset_blob(self, dataset_id: str, *, tenant: str | None = None) -> bytes:
        """The .npz bytes, or NotFound."""
        def op(conn: psycopg.Connection) -> bytes:
            row = conn.execute(f"SELECT blob FROM datasets WHERE id = %(id)s{scope(tenant)}",
                               {"id": dataset_id, "tenant": tenant}).fetchone()
            if row is None:
                raise NotFound(f"dataset {dataset_id} not found")
            return bytes(row[0])
        return self._run(op)

    def list_datasets(self, *, tenant: str | None = None) -> list[Dataset]:
        """Newest first."""
        return self._run(lambda conn: [_dataset_from_row(row) for row in conn.execute(
            f"SELECT {DATASET_COLUMNS} FROM datasets WHERE TRUE{scope(tenant)} ORDER BY seq DESC",
            {"tenant": tenant}).fetchall()])

    def delete_dataset(self, dataset_id: str, *, tenant: str | None = None) -> None:
        """Remove it; jobs that still need it fail when their worker loads the data."""
        params = {"id": dataset_id, "tenant": tenant}

        def op(conn: psycopg.Connection) -> None:
            if conn.execute(f"DELETE FROM datasets WHERE id = %(id)s{scope(tenant)}",
                            params).rowcount == 0:
                raise NotFound(f"dataset {dataset_id} not found")

        def recover(conn: psycopg.Connection) -> Any:
            gone = conn.execute("SELECT 1 FROM datasets WHERE id = %s", (dataset_id,)).fetchone() is None
            return None if gone else NOT_RECOVERED
        self._run(op, recover)

    # ---- API keys ----
    def create_key(self, key: ApiKey, token_hash: str) -> ApiKey:
        """Store a new key (Conflict on a taken name)."""
        values = (key.name, key.tenant, key.admin, key.max_active_jobs, key.max_dataset_bytes,
                  key.max_priority, key.rate_limit, key.max_job_cost, key.created_at,
                  key.revoked_at, token_hash)

        def op(conn: psycopg.Connection) -> ApiKey:
            row = conn.execute(f"""INSERT INTO api_keys ({KEY_COLUMNS}, token_hash)
                                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                                   ON CONFLICT DO NOTHING RETURNING name""", values).fetchone()
            if row is None:
                existing = conn.execute("SELECT token_hash FROM api_keys WHERE name = %s",
                                        (key.name,)).fetchone()
                if existing is None or existing[0] != token_hash:  # not our own earlier try
                    raise Conflict(f"a key named {key.name!r} already exists")
            return key
        return self._run(op)

    def find_key(self, token_hash: str) -> ApiKey | None:
        """The key with this token hash, or None."""
        def op(conn: psycopg.Connection) -> ApiKey | None:
            row = conn.execute(f"SELECT {KEY_COLUMNS} FROM api_keys WHERE token_hash = %s",
                               (token_hash,)).fetchone()
            return None if row is None else _key_from_row(row)
        return self._run(op)

    def list_keys(self) -> list[ApiKey]:
        """Every key, oldest first."""
        return self._run(lambda conn: [_key_from_row(row) for row in conn.execute(
            f"SELECT {KEY_COLUMNS} FROM api_keys ORDER BY seq").fetchall()])

    def revoke_key(self, name: str) -> ApiKey:
        """Mark the key revoked (keeps the first revocation time)."""
        def op(conn: psycopg.Connection) -> ApiKey:
            row = conn.execute(f"""UPDATE api_keys SET revoked_at = COALESCE(revoked_at, %s)
                                   WHERE name = %s RETURNING {KEY_COLUMNS}""",
                               (time.time(), name)).fetchone()
            if row is None:
                raise NotFound(f"no key named {name!r}")
            return _key_from_row(row)
        return self._run(op)


def _hold(conn: psycopg.Connection, lease: Lease) -> bool:
    """Lock the job row if the lease still holds (serialises the job's writers); False if lost."""
    return conn.execute(f"SELECT 1 FROM jobs WHERE {FENCE} FOR UPDATE", _fence(lease)).fetchone() is not None


def _lease_state(row: tuple | None) -> LeaseState:
    """LeaseState from a fenced row's (cancel_requested, pruned_at); None: the lease is gone.
    A client's cancel wins over its sweep's prune."""
    if row is None:
        return LeaseState.lost
    return LeaseState.cancel if row[0] else LeaseState.prune if row[1] is not None else LeaseState.ok


def _parse_cursor(cursor: str | None) -> int | None:
    """A list_jobs cursor is a job seq; anything else is a client error."""
    if cursor is None:
        return None
    try:
        return int(cursor)
    except ValueError:
        raise ValueError(f"invalid cursor {cursor!r}") from None
