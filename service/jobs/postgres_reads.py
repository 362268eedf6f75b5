"""The job row's columns, and the reads the API makes on every poll and stream change (a job,
job marks, metric points) as sans-I/O steps: each read is a generator that yields its queries as
(sql, params) and is sent back each query's rows. So one definition runs on a blocking connection
(`run_steps`, the store's pool) and on an async one (`run_steps_async`, the API's event loop:
postgres_async.py).
"""
import json
from collections.abc import Generator
from typing import Any, TypeVar

import psycopg

from .briefs import brief_spec
from .records import Job, JobMark, MetricPoint, Status
from .store import NotFound
from .watch_sql import MARK_COLUMNS, mark_from_row

T = TypeVar("T")
Query = tuple[str, Any]
Steps = Generator[Query, list[tuple], T]  # yields queries, is sent their rows, returns T

JOB_COLUMNS = ("id, status, spec, param_count, created_at, started_at, finished_at, epoch, epochs, "
               "step, steps, attempt, worker_id, lease_expires_at, cancel_requested, error, result, "
               "has_parameters, idempotency_key, tenant, owner, priority, sweep_id, params, trial, objective, "
               "pruned_at")
# A job row with its full spec (claim and get_job(with_spec=True)); `j` is the jobs row or CTE.
FULL_SPEC = "(SELECT full_spec FROM job_specs WHERE job_id = j.id)"


def job_from_row(row: tuple, spec: dict | None = None) -> Job:
    """Build a Job from a row selected with JOB_COLUMNS (whose spec column is the brief spec)."""
    (job_id, status, brief, param_count, created_at, started_at, finished_at, epoch, epochs, step,
     steps, attempt, worker_id, lease_expires_at, cancel_requested, error, result, has_parameters,
     idempotency_key, tenant, owner, priority, sweep_id, params, trial, objective, pruned_at) = row
    return Job(id=job_id, status=Status(status), spec=spec, param_count=param_count,
               created_at=created_at, started_at=started_at, finished_at=finished_at, epoch=epoch,
               epochs=epochs, step=step, steps=steps, attempt=attempt, worker_id=worker_id,
               lease_expires_at=lease_expires_at, cancel_requested=cancel_requested, error=error,
               result=None if result is None else json.loads(result),
               has_parameters=has_parameters, idempotency_key=idempotency_key,
               brief=brief_spec(brief), tenant=tenant, owner=owner, priority=priority,
               sweep_id=sweep_id, params=None if params is None else json.loads(params), trial=trial,
               objective=objective, pruned_at=pruned_at)


def scope(tenant: str | None, column: str = "tenant") -> str:
    """An extra WHERE condition on the %(tenant)s parameter (none for None: admins)."""
    return "" if tenant is None else f" AND {column} = %(tenant)s"


# ---- the reads ----
def read_job(job_id: str, *, lock: bool = False, with_spec: bool = False,
             tenant: str | None = None) -> Steps[Job]:
    """The job (NotFound if missing or another tenant's); lock: FOR UPDATE."""
    spec_column = FULL_SPEC if with_spec else "NULL"
    rows = yield (f"SELECT {JOB_COLUMNS}, {spec_column} FROM jobs j WHERE id = %(id)s{scope(tenant)}"
                  + (" FOR UPDATE" if lock else ""), {"id": job_id, "tenant": tenant})
    if not rows:
        raise NotFound(f"job {job_id} not found")
    return job_from_row(rows[0][:-1], rows[0][-1])


def read_marks(job_ids) -> Steps[dict[str, JobMark]]:
    """Marks of the existing jobs among job_ids, in one query."""
    ids = list(dict.fromkeys(job_ids))
    if not ids:
        return {}
    rows = yield f"SELECT {MARK_COLUMNS} FROM jobs j WHERE j.id = ANY(%s)", (ids,)
    return dict(mark_from_row(row) for row in rows)


def read_metrics(job_id: str, *, after: int, limit: int,
                 tenant: str | None = None) -> Steps[list[MetricPoint]]:
    """Points with seq > after, in seq order (NotFound for an unknown or another tenant's job)."""
    if tenant is not None:
        yield from read_job(job_id, tenant=tenant)
    rows = yield ("SELECT seq, kind, epoch, step, vals FROM metrics WHERE job_id = %s AND seq > %s "
                  "ORDER BY seq LIMIT %s", (job_id, after, limit))
    if not rows and tenant is None:
        yield from read_job(job_id)
    return [MetricPoint(seq=seq, kind=kind, epoch=epoch, step=step, values=json.loads(vals))
            for seq, kind, epoch, step, vals in rows]


# ---- the drivers ----
def run_steps(conn: psycopg.Connection, steps: Steps[T]) -> T:
    """Run a read on a blocking connection."""
    try:
        query = next(steps)
        while True:
            query = steps.send(conn.execute(*query).fetchall())
    except StopIteration as done:
        return done.value


async def run_steps_async(conn: psycopg.AsyncConnection, steps: Steps[T]) -> T:
    """Run a read on an async connection."""
    try:
        query = next(steps)
        while True:
            cursor = await conn.execute(*query)
            query = steps.send(await cursor.fetchall())
    except StopIteration as done:
        return done.value
