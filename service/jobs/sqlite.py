"""JobStore on SQLite (WAL): the jobs table is the queue, claimed with one atomic UPDATE."""
import json
import os
import sqlite3
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Iterator

from .briefs import brief_spec
from . import sweep_sql
from .records import (DEFAULT_TENANT, ApiKey, Dataset, Job, JobMark, JobStats, Lease, MetricCurve,
                      MetricPoint, PruneDecision, Status, Sweep, TrialPlan)
from .sqlite_schema import apply_migrations
from .store import (Conflict, JobStore, LeaseState, NotFound, check_active_jobs,
                    check_storage)
from .watch_sql import MARK_COLUMNS, curve_from_rows, mark_from_row, stats_from_rows, stats_query

_DECODER = json.JSONDecoder()


def _values(blob: bytes) -> dict:
    """A metric point's stored values (json.dumps output, ours): raw_decode skips json.loads'
    encoding detection and wrappers, 2.5x faster, and streams decode thousands a second."""
    return _DECODER.raw_decode(blob.decode())[0]

# jobs.spec holds the brief spec; the full one is in job_specs.full_spec (schema version 2)
JOB_COLUMNS = ("id, status, spec, param_count, created_at, started_at, finished_at, epoch, epochs, "
               "step, steps, attempt, worker_id, lease_expires_at, cancel_requested, error, result, "
               "has_parameters, idempotency_key, tenant, owner, priority, sweep_id, params, trial, objective, "
               "pruned_at")
DATASET_COLUMNS = "id, name, n_rows, n_features, n_classes, size_bytes, created_at, tenant, owner"
KEY_COLUMNS = ("name, tenant, admin, max_active_jobs, max_dataset_bytes, max_priority, rate_limit, "
               "max_job_cost, created_at, revoked_at")
FENCE = "id = ? AND status = 'running' AND worker_id = ? AND attempt = ?"
ACTIVE = ("queued", "running")
# The claim order (see JobStore.claim). `prios` and `pairs` walk the (priority, tenant) pairs of
# queued jobs through the jobs_queue_order index (a skip scan: one probe per pair, not a pass over
# the queue); `heads` is each pair's oldest job; the winner has the highest priority, then the
# fewest running jobs, the oldest last claim, the oldest job.
FAIR_CLAIM = f"""
    WITH RECURSIVE
    prios (p) AS (SELECT MIN(priority) FROM jobs WHERE status = 'queued'
                  UNION ALL
                  SELECT (SELECT MIN(priority) FROM jobs WHERE status = 'queued' AND priority > p)
                  FROM prios WHERE p IS NOT NULL),
    pairs (p, t) AS (SELECT p, (SELECT MIN(tenant) FROM jobs WHERE status = 'queued' AND priority = p)
                     FROM prios WHERE p IS NOT NULL
                     UNION ALL
                     SELECT p, (SELECT MIN(tenant) FROM jobs WHERE status = 'queued' AND priority = p
                                AND tenant > t)
                     FROM pairs WHERE t IS NOT NULL),
    heads AS (SELECT p AS priority, t AS tenant,
                     (SELECT MIN(seq) FROM jobs WHERE status = 'queued' AND priority = p
                      AND tenant = t) AS seq
              FROM pairs WHERE t IS NOT NULL)
    UPDATE jobs SET status = 'running', worker_id = ?, attempt = attempt + 1,
           lease_expires_at = ?, started_at = COALESCE(started_at, ?), claimed_at = ?
    WHERE seq = (SELECT h.seq FROM heads h ORDER BY h.priority DESC,
                     (SELECT COUNT(*) FROM jobs r WHERE r.status = 'running' AND r.tenant = h.tenant),
                     (SELECT MAX(c.claimed_at) FROM jobs c WHERE c.tenant = h.tenant) NULLS FIRST,
                     h.seq
                 LIMIT 1)
      AND status = 'queued' RETURNING {JOB_COLUMNS}"""


def _scope(tenant: str | None, column: str = "tenant") -> tuple[str, tuple]:
    """An extra WHERE condition limiting a query to one tenant (none for None: admins)."""
    return ("", ()) if tenant is None else (f" AND {column} = ?", (tenant,))


def _fence(lease: Lease) -> tuple:
    return (lease.job_id, lease.worker_id, lease.attempt)


def _job(row: tuple, full_spec: str | None = None) -> Job:
    """A Job from JOB_COLUMNS; `spec` only when the full spec's JSON is given."""
    (id_, status, brief, param_count, created_at, started_at, finished_at, epoch, epochs, step, steps,
     attempt, worker_id, lease_expires_at, cancel_requested, error, result, has_parameters, key,
     tenant, owner, priority, sweep_id, params, trial, objective, pruned_at) = row
    spec = json.loads(full_spec) if full_spec is not None else None
    return Job(id=id_, status=Status(status), spec=spec, param_count=param_count,
               created_at=created_at, started_at=started_at, finished_at=finished_at, epoch=epoch,
               epochs=epochs, step=step, steps=steps, attempt=attempt, worker_id=worker_id,
               lease_expires_at=lease_expires_at, cancel_requested=bool(cancel_requested),
               error=error, result=json.loads(result) if result is not None else None,
               has_parameters=bool(has_parameters), idempotency_key=key,
               brief=_brief(brief), tenant=tenant, owner=owner, priority=priority, sweep_id=sweep_id,
               params=json.loads(params) if params is not None else None, trial=trial,
               objective=objective, pruned_at=pruned_at)


def _brief(text: str) -> dict:
    """The stored brief; rows from schema version 1 hold a full spec, briefed here (the substring
    test spares the walk for the usual spec without inline data)."""
    spec = json.loads(text)
    return brief_spec(spec) if '"inline"' in text else spec


def _lease_state(row: tuple | None) -> LeaseState:
    """From a fenced row's (cancel_requested, pruned_at); None: the lease is gone. A client's
    cancel wins over its sweep's prune."""
    if row is None:
        return LeaseState.lost
    return LeaseState.cancel if row[0] else LeaseState.prune if row[1] is not None else LeaseState.ok


def _dataset(row: tuple) -> Dataset:
    return Dataset(id=row[0], name=row[1], n_rows=row[2], n_features=row[3], n_classes=row[4],
                   size_bytes=row[5], created_at=row[6], tenant=row[7], owner=row[8])


def _key(row: tuple) -> ApiKey:
    (name, tenant, admin, max_active_jobs, max_dataset_bytes, max_priority, rate_limit,
     max_job_cost, created_at, revoked_at) = row
    return ApiKey(name=name, tenant=tenant, admin=bool(admin), max_active_jobs=max_active_jobs,
                  max_dataset_bytes=max_dataset_bytes, max_priority=max_priority,
                  rate_limit=rate_limit, max_job_cost=max_job_cost, created_at=created_at,
                  revoked_at=revoked_at)


class _Db(sweep_sql.Db):
    """sweep_sql over one SQLite connection (inside BEGIN IMMEDIATE, which locks every sweep)."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def all(self, sql: str, args: tuple = ()) -> list[tuple]:
        return self.conn.execute(sql, args).fetchall()

    def run(self, sql: str, args: tuple = ()) -> int:
        return self.conn.execute(sql, args).rowcount

    def json_param(self, value) -> str:
        return json.dumps(value)

    def lock_sweep(self, sweep_id: str) -> str | None:
        row = self.one("SELECT tenant FROM sweeps WHERE id = ?", (sweep_id,))
        return None if row is None else row[0]

    def active_jobs(self, owner: str | None) -> int:
        return self.one("SELECT COUNT(*) FROM jobs WHERE owner IS ? AND status IN (?, ?)",
                        (owner, *ACTIVE))[0]

    def jobs(self, where: str, args: tuple = ()) -> list[Job]:
        return [_job(row) for row in self.all(f"SELECT {JOB_COLUMNS} FROM jobs WHERE {where}", args)]

    def brief(self, spec: dict) -> dict:
        return brief_spec(spec)


def _promote(conn: sqlite3.Connection, job_ids) -> None:
    """Queue the next waiting trials of the sweeps these (just ended) jobs belong to."""
    db = _Db(conn)
    for sweep_id in {sweep_id for job_id in job_ids
                     if (sweep_id := sweep_sql.lock_trial_sweep(db, job_id)) is not None}:
        sweep_sql.promote_waiting(db, sweep_id)


class SQLiteStore(JobStore):
    """Embedded store: one connection per thread and process, WAL so readers never block writers."""

    local_reads = True  # WAL reads never wait for writers

    def __init__(self, path: str | Path, *, busy_timeout_ms: int = 30_000):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    # ---- connections ----
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None or self._local.pid != os.getpid():  # never share a connection across fork
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                   timeout=self._busy_timeout_ms / 1000)
            conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
            self._enable_wal(conn)
            conn.execute("PRAGMA synchronous = NORMAL")  # durable across app crashes in WAL mode
            self._local.conn, self._local.pid = conn, os.getpid()
            with self._lock:
                self._all.append(conn)
        return conn

    def _enable_wal(self, conn: sqlite3.Connection) -> None:
        """Switch to WAL once per database; the switch needs a moment with no other writer and
        does not wait on busy_timeout, so retry it while concurrent processes are starting."""
        deadline = time.monotonic() + self._busy_timeout_ms / 1000
        while True:
            try:
                if conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
                    return
                conn.execute("PRAGMA journal_mode = WAL")
            except sqlite3.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes the database lock up front (no upgrade deadlocks)."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _one(self, sql: str, args: tuple = ()) -> tuple | None:
        return self._conn().execute(sql, args).fetchone()

    # ---- lifecycle ----
    def migrate(self) -> None:
        """Create or upgrade the schema (idempotent)."""
        apply_migrations(self._conn())

    def close(self) -> None:
        """Close every connection this store opened."""
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            try:
                conn.close()
            except sqlite3.Error:
                pass
        self._local = threading.local()

    def ping(self) -> bool:
        """True when the database file answers a query."""
        try:
            return self._one("SELECT 1") == (1,)
        except sqlite3.Error:
            return False

    # ---- jobs: API side ----
    def create_job(self, spec: dict, *, param_count: int, epochs: int, steps: int,
                   idempotency_key: str | None = None, request_hash: str | None = None,
                   tenant: str = DEFAULT_TENANT, owner: str | None = None, priority: int = 0,
                   max_active_jobs: int | None = None) -> tuple[Job, bool]:
        """Insert a queued job, or return the one already created with this idempotency key.
        BEGIN IMMEDIATE holds the database's write lock from the quota count to the insert."""
        with self._write() as conn:
            if idempotency_key is not None:
                row = conn.execute("SELECT request_hash, id FROM jobs WHERE tenant = ? AND "
                                   "idempotency_key = ?", (tenant, idempotency_key)).fetchone()
                if row is not None:
                    if row[0] != request_hash:
                        raise Conflict(f"idempotency key {idempotency_key!r} was used with another request")
                    return replace(self._get(conn, row[1]), spec=spec), False  # same hash, same spec
            if max_active_jobs is not None:
                self._check_active_jobs(conn, owner, max_active_jobs)
            job_id = uuid.uuid4().hex
            conn.execute(
                "INSERT INTO jobs (id, status, spec, param_count, created_at, epochs, steps, "
                "idempotency_key, request_hash, tenant, owner, priority) "
                "VALUES (?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (job_id, json.dumps(brief_spec(spec)), param_count, time.time(), epochs, steps,
                 idempotency_key, request_hash, tenant, owner, priority))
            conn.execute("INSERT INTO job_specs (job_id, full_spec) VALUES (?, ?)",
                         (job_id, json.dumps(spec)))
            conn.execute("UPDATE jobs SET name = ? WHERE id = ?", (spec.get("name"), job_id))
            conn.executemany("INSERT INTO job_tags (job_id, key, value) VALUES (?, ?, ?)",
                             [(job_id, key, value) for key, value in (spec.get("tags") or {}).items()])
            # the caller's spec as is: parsing megabytes of inline data back would cost ~0.1 s
            return replace(self._get(conn, job_id), spec=spec), True

    @staticmethod
    def _check_active_jobs(conn: sqlite3.Connection, owner: str | None, limit: int) -> None:
        used = conn.execute("SELECT COUNT(*) FROM jobs WHERE owner IS ? AND status IN (?, ?)",
                            (owner, *ACTIVE)).fetchone()[0]
        check_active_jobs(owner, used, limit)

    def _get(self, conn: sqlite3.Connection, job_id: str, *, with_spec: bool = False,
             tenant: str | None = None) -> Job:
        scope, args = _scope(tenant)
        row = conn.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?{scope}",
                           (job_id, *args)).fetchone()
        if row is None:
            raise NotFound(f"job {job_id} not found")
        return _job(row, self._full_spec(conn, job_id) if with_spec else None)

    def _full_spec(self, conn: sqlite3.Connection, job_id: str) -> str:
        return conn.execute("SELECT full_spec FROM job_specs WHERE job_id = ?", (job_id,)).fetchone()[0]

    def get_job(self, job_id: str, *, with_spec: bool = True, tenant: str | None = None) -> Job:
        """The job, or NotFound; with_spec=False skips the full spec (Job.brief is enough to poll)."""
        return self._get(self._conn(), job_id, with_spec=with_spec, tenant=tenant)

    def list_jobs(self, *, status: Status | None = None, limit: int = 50,
                  cursor: str | None = None, tenant: str | None = None,
                  tags: list[tuple[str, str]] | None = None,
                  name_prefix: str | None = None,
                  sweep_id: str | None = None) -> tuple[list[Job], str | None]:
        """Newest first; the cursor is the last returned job's queue position."""
        where, args = [], []
        if tenant is not None:
            where.append("tenant = ?")
            args.append(tenant)
        if status is not None:
            where.append("status = ?")
            args.append(Status(status).value)
        for key, value in tags or []:
            where.append("EXISTS (SELECT 1 FROM job_tags t WHERE t.job_id = jobs.id AND t.key = ? "
                         "AND t.value = ?)")
            args += [key, value]
        if name_prefix is not None:  # substr, not LIKE: exact and case-sensitive, no escaping
            where.append("substr(name, 1, ?) = ?")
            args += [len(name_prefix), name_prefix]
        if sweep_id is not None:
            where.append("sweep_id = ?")
            args.append(sweep_id)
        if cursor is not None:
            try:
                where.append("seq < ?")
                args.append(int(cursor))
            except ValueError:
                raise ValueError(f"bad cursor {cursor!r}") from None
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._conn().execute(
            f"SELECT seq, {JOB_COLUMNS} FROM jobs {clause} ORDER BY seq DESC LIMIT ?",
            (*args, limit + 1)).fetchall()
        page = rows[:limit]
        next_cursor = str(page[-1][0]) if len(rows) > limit and page else None
        return [_job(r[1:]) for r in page], next_cursor

    def request_cancel(self, job_id: str, *, tenant: str | None = None) -> Job:
        """Cancel a queued job at once; flag a running one for its worker."""
        with self._write() as conn:
            job = self._get(conn, job_id, tenant=tenant)
            if job.status.terminal:
                raise Conflict(f"job {job_id} is already {job.status.value}")
            if job.status in (Status.queued, Status.waiting):
                conn.execute("UPDATE jobs SET status = 'cancelled', finished_at = ?, cancel_requested = 1 "
                             "WHERE id = ?", (time.time(), job_id))
                conn.execute("DELETE FROM checkpoints WHERE job_id = ?", (job_id,))
                _promote(conn, [job_id])
            else:
                conn.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", (job_id,))
            return self._get(conn, job_id)

    def delete_job(self, job_id: str, *, tenant: str | None = None) -> None:
        """Remove a terminal job with its metrics, checkpoint and parameters."""
        with self._write() as conn:
            job = self._get(conn, job_id, tenant=tenant)
            if not job.status.terminal:
                raise Conflict(f"job {job_id} is {job.status.value}; cancel it first")
            sweep_sql.ensure_not_trial(_Db(conn), job_id)
            for table in ("metrics", "checkpoints", "parameters", "job_specs", "job_tags"):
                conn.execute(f"DELETE FROM {table} WHERE job_id = ?", (job_id,))
            conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def get_metrics(self, job_id: str, *, after: int = 0, limit: int = 10_000,
                    tenant: str | None = None) -> list[MetricPoint]:
        """Points after the cursor, oldest first."""
        conn = self._conn()
        scope, args = _scope(tenant)
        if conn.execute(f"SELECT 1 FROM jobs WHERE id = ?{scope}", (job_id, *args)).fetchone() is None:
            raise NotFound(f"job {job_id} not found")
        rows = conn.execute("SELECT seq, kind, epoch, step, vals FROM metrics WHERE job_id = ? AND seq > ? "
                            "ORDER BY seq LIMIT ?", (job_id, after, limit)).fetchall()
        return [MetricPoint(seq=s, kind=k, epoch=e, step=st, values=_values(v)) for s, k, e, st, v in rows]

    def metric_curve(self, job_id: str, key: str, *, tenant: str | None = None) -> MetricCurve:
        """Step values and epoch points up to the newest seq, in one read transaction."""
        conn = self._conn()
        scope, args = _scope(tenant, "j.tenant")
        conn.execute("BEGIN")  # one snapshot for the three reads
        try:
            row = conn.execute("SELECT (SELECT MAX(seq) FROM metrics WHERE job_id = j.id) FROM jobs j "
                               f"WHERE j.id = ?{scope}", (job_id, *args)).fetchone()
            if row is None:
                raise NotFound(f"job {job_id} not found")
            last = row[0] or 0
            steps = conn.execute("SELECT step, vals FROM metrics WHERE job_id = ? AND kind = 'step' "
                                 "AND seq <= ? ORDER BY seq", (job_id, last)).fetchall()
            epochs = conn.execute("SELECT seq, epoch, step, vals FROM metrics WHERE job_id = ? AND "
                                  "kind = 'epoch' AND seq <= ? ORDER BY seq", (job_id, last)).fetchall()
        finally:
            conn.execute("COMMIT")
        return curve_from_rows(key, steps, epochs, last)

    def get_parameters(self, job_id: str, *, tenant: str | None = None) -> bytes | None:
        """The trained state as safetensors bytes, or None."""
        scope, args = _scope(tenant, "j.tenant")
        row = self._one("SELECT p.blob FROM parameters p JOIN jobs j ON j.id = p.job_id "
                        f"WHERE p.job_id = ?{scope}", (job_id, *args))
        return bytes(row[0]) if row else None

    # ---- following jobs and monitoring ----
    def watch_marks(self, job_ids) -> dict[str, JobMark]:
        """Marks of the existing jobs among job_ids, in one query."""
        ids = list(dict.fromkeys(job_ids))
        if not ids:
            return {}
        rows = self._conn().execute(f"SELECT {MARK_COLUMNS} FROM jobs j WHERE j.id IN "
                                    f"({', '.join('?' * len(ids))})", ids).fetchall()
        return dict(mark_from_row(row) for row in rows)

    def job_stats(self, duration_bounds: tuple[float, ...]) -> JobStats:
        """Counts, durations and steps in one grouped scan."""
        return stats_from_rows(self._conn().execute(stats_query(duration_bounds)).fetchall())

    # ---- jobs: worker side ----
    def claim(self, worker_id: str, lease_seconds: float) -> Job | None:
        """Take the next job in the fair order (JobStore.claim) in one atomic statement."""
        now = time.time()
        with self._write() as conn:
            row = conn.execute(FAIR_CLAIM, (worker_id, now + lease_seconds, now, now)).fetchone()
            full_spec = self._full_spec(conn, row[0]) if row else None
        return _job(row, full_spec) if row else None

    def expire_leases(self, max_attempts: int) -> int:
        """Re-queue (or give up on) running jobs whose worker stopped renewing its lease."""
        return self._recover("lease_expires_at < ?", (time.time(),), max_attempts)

    def _recover(self, condition: str, args: tuple, max_attempts: int) -> int:
        now = time.time()
        base = f"WHERE status = 'running' AND {condition}"
        with self._write() as conn:
            ended = conn.execute(
                f"UPDATE jobs SET status = 'cancelled', finished_at = ?, lease_expires_at = NULL "
                f"{base} AND cancel_requested = 1 RETURNING id", (now, *args)).fetchall()
            ended += conn.execute(  # its sweep pruned it before its worker could end it
                f"UPDATE jobs SET status = 'pruned', finished_at = ?, lease_expires_at = NULL "
                f"{base} AND pruned_at IS NOT NULL RETURNING id", (now, *args)).fetchall()
            ended += conn.execute(
                "UPDATE jobs SET status = 'failed', finished_at = ?, lease_expires_at = NULL, "
                "error = 'worker lost; gave up after ' || attempt || ' attempts' "
                f"{base} AND attempt >= ? RETURNING id", (now, *args, max_attempts)).fetchall()
            requeued = conn.execute(
                f"UPDATE jobs SET status = 'queued', worker_id = NULL, lease_expires_at = NULL {base}",
                args).rowcount
            conn.executemany("DELETE FROM checkpoints WHERE job_id = ?", ended)
            _promote(conn, [job_id for (job_id,) in ended])
        return len(ended) + requeued

    def heartbeat(self, lease: Lease, lease_seconds: float) -> LeaseState:
        """Extend the lease while it is still ours."""
        with self._write() as conn:
            row = conn.execute(f"UPDATE jobs SET lease_expires_at = ? WHERE {FENCE} "
                               "RETURNING cancel_requested, pruned_at",
                               (time.time() + lease_seconds, *_fence(lease))).fetchone()
        return _lease_state(row)

    def check(self, lease: Lease) -> LeaseState:
        """One primary-key read: is the job still ours, and was it cancelled?"""
        row = self._one("SELECT status, worker_id, attempt, cancel_requested, pruned_at FROM jobs "
                        "WHERE id = ?", (lease.job_id,))
        if row is None or row[:3] != (Status.running.value, lease.worker_id, lease.attempt):
            return LeaseState.lost
        return _lease_state(row[3:])

    def set_progress(self, lease: Lease, *, epoch: int, step: int, epochs: int, steps: int) -> bool:
        """Record completed epoch/step and planned totals."""
        with self._write() as conn:
            return conn.execute(f"UPDATE jobs SET epoch = ?, step = ?, epochs = ?, steps = ? WHERE {FENCE}",
                                (epoch, step, epochs, steps, *_fence(lease))).rowcount == 1

    def _holds(self, conn: sqlite3.Connection, lease: Lease) -> bool:
        return conn.execute(f"SELECT 1 FROM jobs WHERE {FENCE}", _fence(lease)).fetchone() is not None

    def add_metrics(self, lease: Lease, points: list[tuple[str, int, int, dict]]) -> bool:
        """Append metric points under the lease."""
        with self._write() as conn:
            if not self._holds(conn, lease):
                return False
            conn.executemany("INSERT INTO metrics (job_id, kind, epoch, step, vals) VALUES (?, ?, ?, ?, ?)",
                             [(lease.job_id, kind, epoch, step, json.dumps(values).encode())
                              for kind, epoch, step, values in points])
            sweep_sql.record_epochs(_Db(conn), lease.job_id, points)
            return True

    def truncate_metrics(self, lease: Lease, *, after_step: int) -> bool:
        """Drop points a resumed job will record again."""
        with self._write() as conn:
            if not self._holds(conn, lease):
                return False
            conn.execute("DELETE FROM metrics WHERE job_id = ? AND step > ?", (lease.job_id, after_step))
            return True

    def save_checkpoint(self, lease: Lease, blob: bytes) -> bool:
        """Replace the job's checkpoint under the lease."""
        with self._write() as conn:
            if not self._holds(conn, lease):
                return False
            conn.execute("INSERT OR REPLACE INTO checkpoints (job_id, blob, saved_at) VALUES (?, ?, ?)",
                         (lease.job_id, blob, time.time()))
            return True

    def load_checkpoint(self, job_id: str) -> bytes | None:
        """The last checkpoint, or None."""
        row = self._one("SELECT blob FROM checkpoints WHERE job_id = ?", (job_id,))
        return bytes(row[0]) if row else None

    def finish(self, lease: Lease, status: Status, *, error: str | None = None,
               result: dict | None = None, parameters: bytes | None = None) -> bool:
        """End the job under the lease; keep parameters, drop the checkpoint."""
        status = Status(status)
        if not status.terminal:
            raise ValueError(f"finish needs a terminal status, got {status.value}")
        with self._write() as conn:
            updated = conn.execute(
                "UPDATE jobs SET status = ?, finished_at = ?, lease_expires_at = NULL, error = ?, result = ?, "
                f"has_parameters = ? WHERE {FENCE}",
                (status.value, time.time(), error, json.dumps(result) if result is not None else None,
                 int(parameters is not None), *_fence(lease))).rowcount
            if updated != 1:
                return False
            if parameters is not None:
                conn.execute("INSERT OR REPLACE INTO parameters (job_id, blob) VALUES (?, ?)",
                             (lease.job_id, parameters))
            conn.execute("DELETE FROM checkpoints WHERE job_id = ?", (lease.job_id,))
            _promote(conn, [lease.job_id])
            return True

    def release(self, lease: Lease) -> bool:
        """Hand the job back to the queue, keeping its checkpoint."""
        with self._write() as conn:
            return conn.execute(
                f"UPDATE jobs SET status = 'queued', worker_id = NULL, lease_expires_at = NULL WHERE {FENCE}",
                _fence(lease)).rowcount == 1

    # ---- sweeps ----
    def create_sweep(self, spec: dict, trials: list[TrialPlan], *, tenant: str = DEFAULT_TENANT,
                     owner: str | None = None, max_active_jobs: int | None = None) -> Sweep:
        """Insert the sweep and its trials (the first max_parallel queued) in one transaction;
        BEGIN IMMEDIATE holds the write lock from the quota count to the inserts."""
        sweep_id = sweep_sql.new_sweep_id()
        with self._write() as conn:
            sweep_sql.insert_sweep(_Db(conn), sweep_id, spec, trials, tenant=tenant, owner=owner,
                                   max_active_jobs=max_active_jobs)
            return sweep_sql.get_sweep(_Db(conn), sweep_id)

    def get_sweep(self, sweep_id: str, *, tenant: str | None = None) -> Sweep:
        """The sweep with its trial counts, or NotFound."""
        return sweep_sql.get_sweep(_Db(self._conn()), sweep_id, tenant)

    def list_sweeps(self, *, limit: int = 50, cursor: str | None = None,
                    tenant: str | None = None) -> tuple[list[Sweep], str | None]:
        """Newest first, with cursor pagination."""
        return sweep_sql.list_sweeps(_Db(self._conn()), limit, cursor, tenant)

    def sweep_trials(self, sweep_id: str, *, tenant: str | None = None) -> list[Job]:
        """Trials in trial order."""
        return sweep_sql.sweep_trials(_Db(self._conn()), sweep_id, tenant)

    def sweep_decisions(self, sweep_id: str, *, tenant: str | None = None) -> list[PruneDecision]:
        """Early-stopping decisions in the order they were made."""
        return sweep_sql.decisions(_Db(self._conn()), sweep_id, tenant)

    def cancel_sweep(self, sweep_id: str, *, tenant: str | None = None) -> Sweep:
        """Cancel every trial that has not ended (running ones at their next step)."""
        with self._write() as conn:
            sweep_sql.cancel_sweep(_Db(conn), sweep_id, tenant)
            return sweep_sql.get_sweep(_Db(conn), sweep_id)

    def delete_sweep(self, sweep_id: str, *, tenant: str | None = None) -> None:
        """Remove an ended sweep and its trials."""
        with self._write() as conn:
            sweep_sql.delete_sweep(_Db(conn), sweep_id, tenant)

    # ---- workers registry ----
    def register_worker(self, worker_id: str, info: dict) -> None:
        """Insert or refresh a worker's heartbeat row."""
        with self._write() as conn:
            conn.execute("INSERT INTO workers (worker_id, info, last_seen) VALUES (?, ?, ?) "
                         "ON CONFLICT (worker_id) DO UPDATE SET info = excluded.info, last_seen = excluded.last_seen",
                         (worker_id, json.dumps(info), time.time()))

    def unregister_worker(self, worker_id: str) -> None:
        """Forget a worker."""
        with self._write() as conn:
            conn.execute("DELETE FROM workers WHERE worker_id = ?", (worker_id,))

    def live_workers(self, within_seconds: float) -> int:
        """Workers seen recently."""
        return self._one("SELECT COUNT(*) FROM workers WHERE last_seen >= ?", (time.time() - within_seconds,))[0]

    # ---- datasets ----
    def create_dataset(self, *, name: str | None, blob: bytes, n_rows: int, n_features: int,
                       n_classes: int, tenant: str = DEFAULT_TENANT, owner: str | None = None,
                       max_bytes: int | None = None) -> Dataset:
        """Store an uploaded .npz blob with its metadata (quota checked under the write lock)."""
        dataset = Dataset(id=uuid.uuid4().hex, name=name, n_rows=n_rows, n_features=n_features,
                          n_classes=n_classes, size_bytes=len(blob), created_at=time.time(),
                          tenant=tenant, owner=owner)
        with self._write() as conn:
            if max_bytes is not None:
                used = conn.execute("SELECT COALESCE(SUM(size_bytes), 0) FROM datasets WHERE owner IS ?",
                                    (owner,)).fetchone()[0]
                check_storage(owner, used, len(blob), max_bytes)
            conn.execute(f"INSERT INTO datasets ({DATASET_COLUMNS}, blob) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (dataset.id, name, n_rows, n_features, n_classes, len(blob),
                          dataset.created_at, tenant, owner, blob))
        return dataset

    def get_dataset(self, dataset_id: str, *, tenant: str | None = None) -> Dataset:
        """Metadata, or NotFound."""
        scope, args = _scope(tenant)
        row = self._one(f"SELECT {DATASET_COLUMNS} FROM datasets WHERE id = ?{scope}", (dataset_id, *args))
        if row is None:
            raise NotFound(f"dataset {dataset_id} not found")
        return _dataset(row)

    def get_dataset_blob(self, dataset_id: str, *, tenant: str | None = None) -> bytes:
        """The .npz bytes, or NotFound."""
        scope, args = _scope(tenant)
        row = self._one(f"SELECT blob FROM datasets WHERE id = ?{scope}", (dataset_id, *args))
        if row is None:
            raise NotFound(f"dataset {dataset_id} not found")
        return bytes(row[0])

    def list_datasets(self, *, tenant: str | None = None) -> list[Dataset]:
        """Newest first."""
        where, args = ("", ()) if tenant is None else ("WHERE tenant = ?", (tenant,))
        rows = self._conn().execute(f"SELECT {DATASET_COLUMNS} FROM datasets {where} ORDER BY seq DESC",
                                    args).fetchall()
        return [_dataset(r) for r in rows]

    def delete_dataset(self, dataset_id: str, *, tenant: str | None = None) -> None:
        """Remove a dataset; jobs that still need it fail when they load it."""
        scope, args = _scope(tenant)
        with self._write() as conn:
            if conn.execute(f"DELETE FROM datasets WHERE id = ?{scope}", (dataset_id, *args)).rowcount == 0:
                raise NotFound(f"dataset {dataset_id} not found")

    # ---- API keys ----
    def create_key(self, key: ApiKey, token_hash: str) -> ApiKey:
        """Store a new key (Conflict on a taken name)."""
        try:
            with self._write() as conn:
                conn.execute(f"INSERT INTO api_keys ({KEY_COLUMNS}, token_hash) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             (key.name, key.tenant, int(key.admin), key.max_active_jobs,
                              key.max_dataset_bytes, key.max_priority, key.rate_limit,
                              key.max_job_cost, key.created_at, key.revoked_at, token_hash))
        except sqlite3.IntegrityError:
            raise Conflict(f"a key named {key.name!r} already exists") from None
        return key

    def find_key(self, token_hash: str) -> ApiKey | None:
        """The key with this token hash, or None."""
        row = self._one(f"SELECT {KEY_COLUMNS} FROM api_keys WHERE token_hash = ?", (token_hash,))
        return None if row is None else _key(row)

    def list_keys(self) -> list[ApiKey]:
        """Every key, oldest first."""
        return [_key(r) for r in self._conn().execute(
            f"SELECT {KEY_COLUMNS} FROM api_keys ORDER BY seq").fetchall()]

    def revoke_key(self, name: str) -> ApiKey:
        """Mark the key revoked (keeps the first revocation time)."""
        with self._write() as conn:
            row = conn.execute("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE name = ? "
                               f"RETURNING {KEY_COLUMNS}", (time.time(), name)).fetchone()
        if row is None:
            raise NotFound(f"no key named {name!r}")
        return _key(row)

